//! The network model shared by hookup's simulations: hookup-proto's
//! `tests/sim.rs` (a `Pair` of connections) and `tests/reliable_sim.rs`
//! (sessions, a server and a store under chaos), and the fuzz crate's
//! chunked delivery. In the spirit of quinn's test `Pair` and str0m's
//! `netem`: everything is seeded and sans-IO, time is a number that jumps
//! from event to event, and nothing sleeps or reads the real clock after the
//! start.
//!
//! * [`Rng`]: SplitMix64, small and seedable (not for security).
//! * [`Clock`]: a fake clock, a real `Instant` base plus a simulated offset.
//! * [`Wire`]: one direction of a byte stream (a TCP socket's half): writes
//!   are split into chunks ([`Netem::chunking`]), each delayed by a latency
//!   drawn from [`Netem::latency`], delivered in order, then EOF. A wire
//!   can be a blackhole (it swallows what is written) or cut (it keeps a
//!   random prefix of what is in flight).
//! * [`Link`]: two wires, client to server ([`C2S`]) and back ([`S2C`]),
//!   cut together.
//!
//! The model draws from a caller's [`Rng`] (none is kept inside), so a
//! harness that also draws its application's choices from the same stream
//! keeps one reproducible sequence per seed.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

// ------------------------------------------------------------------ rng

/// SplitMix64: small, seedable, good enough for a network model.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator for this seed (every seed is fine, 0 too).
    pub fn new(seed: u64) -> Self {
        Self(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 when `n` is 0; nothing is drawn then).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        ((self.next_u64() >> 11) as f64) / ((1u64 << 53) as f64) < p
    }

    /// Uniform in `lo..=hi` milliseconds.
    pub fn ms(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(self.range(lo, hi))
    }

    /// Exponentially distributed with this mean (at most 20 times it).
    pub fn exp(&mut self, mean: Duration) -> Duration {
        let u = ((self.next_u64() >> 11) as f64 + 1.0) / ((1u64 << 53) as f64 + 1.0);
        mean.mul_f64(-u.ln()).min(mean * 20)
    }

    /// 32 random bytes (a seed for a connection's or a store's own RNG).
    pub fn seed32(&mut self) -> [u8; 32] {
        let mut s = [0u8; 32];
        for c in s.chunks_mut(8) {
            c.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        s
    }

    /// A chunk length, uniform in `1..=max` (1 when `max` is 0).
    pub fn chunk(&mut self, max: usize) -> usize {
        1 + self.below(max as u64) as usize
    }

    /// Splits `data` into chunks of at most `max` bytes ([`Rng::chunk`]).
    pub fn split<'a>(&mut self, data: &'a [u8], max: usize) -> Vec<&'a [u8]> {
        let mut out = Vec::new();
        let mut rest = data;
        while !rest.is_empty() {
            let n = self.chunk(max).min(rest.len());
            let (a, b) = rest.split_at(n);
            out.push(a);
            rest = b;
        }
        out
    }
}

// ------------------------------------------------------------------ clock

/// A fake clock: a real `Instant` taken once (the base), plus simulated time.
/// It only moves forward, and only when told to.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    start: Instant,
    now: Instant,
}

impl Clock {
    /// A clock at `start` (read from the real clock once, by the caller).
    pub fn new(start: Instant) -> Self {
        Self { start, now: start }
    }

    /// The base instant.
    pub fn start(&self) -> Instant {
        self.start
    }

    /// The simulated now.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Simulated time since the start.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// Moves to `t` if it is later; returns whether the clock moved.
    pub fn advance_to(&mut self, t: Instant) -> bool {
        let moved = t > self.now;
        self.now = self.now.max(t);
        moved
    }

    /// Moves forward by `d`.
    pub fn advance(&mut self, d: Duration) {
        self.now += d;
    }
}

// ------------------------------------------------------------------ link

/// The index of the client-to-server wire of a [`Link`].
pub const C2S: usize = 0;
/// The index of the server-to-client wire of a [`Link`].
pub const S2C: usize = 1;

/// What a wire delivers.
#[derive(Debug)]
pub enum Chunk {
    /// Bytes, in the order they were written.
    Data(Vec<u8>),
    /// The writer closed its socket; nothing follows.
    Eof,
}

/// How a wire treats what is written on it.
#[derive(Clone, Copy, Debug)]
pub struct Netem {
    /// One-way latency per chunk, uniform in this range, drawn in whole
    /// milliseconds (a draw is made even when both ends are equal).
    pub latency: (Duration, Duration),
    /// Split every write into random chunks: with probability 0.6 a chunk
    /// is `1..=rest` bytes of what is left, else all of it.
    pub chunking: bool,
}

impl Netem {
    /// A fixed latency, every write in one chunk.
    pub fn fixed(latency: Duration) -> Self {
        Self {
            latency: (latency, latency),
            chunking: false,
        }
    }

    /// A latency uniform in `lo..=hi` ms.
    pub fn uniform_ms(lo: u64, hi: u64, chunking: bool) -> Self {
        Self {
            latency: (Duration::from_millis(lo), Duration::from_millis(hi)),
            chunking,
        }
    }

    /// One latency draw.
    pub fn draw_latency(&self, rng: &mut Rng) -> Duration {
        let (lo, hi) = self.latency;
        let ms = |d: Duration| u64::try_from(d.as_millis()).expect("latency in ms fits u64");
        rng.ms(ms(lo), ms(hi))
    }
}

/// One direction of a simulated byte stream.
#[derive(Debug, Default)]
pub struct Wire {
    /// What is on its way, with arrival times (never decreasing, unless a
    /// test pushes here by hand).
    pub in_flight: VecDeque<(Instant, Chunk)>,
    /// Arrival time of the last chunk queued (TCP keeps order).
    pub last: Option<Instant>,
    /// No more bytes will be put on this wire (EOF queued, or cut).
    pub closed: bool,
    /// Drop everything written from now on (a peer that never hears us).
    pub blackhole: bool,
    /// Keep a copy of every write in [`Wire::sent`].
    pub record: bool,
    /// Every write (when [`Wire::record`]), with its time since the start,
    /// also those a blackhole swallowed.
    pub sent: Vec<(Duration, Vec<u8>)>,
}

impl Wire {
    /// A wire that records every write in [`Wire::sent`].
    pub fn recording() -> Self {
        Self {
            record: true,
            ..Self::default()
        }
    }

    /// Every byte recorded in [`Wire::sent`], concatenated.
    pub fn bytes(&self) -> Vec<u8> {
        self.sent
            .iter()
            .flat_map(|(_, b)| b.iter().copied())
            .collect()
    }

    /// Puts `data` on the wire at `clock`'s now. Returns false when it is
    /// dropped (empty, a blackhole, or closed).
    pub fn write(&mut self, rng: &mut Rng, netem: &Netem, clock: &Clock, data: &[u8]) -> bool {
        if data.is_empty() {
            return false;
        }
        if self.record {
            self.sent.push((clock.elapsed(), data.to_vec()));
        }
        if self.blackhole || self.closed {
            return false;
        }
        let mut rest = data;
        while !rest.is_empty() {
            let n = if netem.chunking && !rng.chance(0.4) {
                rng.chunk(rest.len())
            } else {
                rest.len()
            };
            let lat = netem.draw_latency(rng);
            self.push_after(clock.now() + lat, Chunk::Data(rest[..n].to_vec()));
            rest = &rest[n..];
        }
        true
    }

    /// The writer closes its socket: EOF after what is in flight. Nothing
    /// happens on a closed wire; a blackhole swallows the EOF too.
    pub fn close(&mut self, rng: &mut Rng, netem: &Netem, clock: &Clock) {
        if self.closed {
            return;
        }
        self.closed = true;
        if self.blackhole {
            return;
        }
        let lat = netem.draw_latency(rng);
        self.push_after(clock.now() + lat, Chunk::Eof);
    }

    /// Cuts the wire: it keeps a random prefix of the bytes in flight
    /// (possibly mid-write; none with `lose_all`), and the EOF if all of
    /// them are kept. If no EOF is left, the reader sees one 0 to 2 s later,
    /// or never (`silent`).
    pub fn cut(&mut self, rng: &mut Rng, clock: &Clock, lose_all: bool, silent: bool) {
        let total: usize = self
            .in_flight
            .iter()
            .map(|(_, c)| match c {
                Chunk::Data(d) => d.len(),
                Chunk::Eof => 0,
            })
            .sum();
        let mut keep = if lose_all {
            0
        } else {
            rng.below(total as u64 + 1) as usize
        };
        let all = keep == total;
        let mut kept = VecDeque::new();
        for (t, c) in self.in_flight.drain(..) {
            match c {
                Chunk::Data(mut b) if keep > 0 => {
                    b.truncate(keep);
                    keep -= b.len();
                    kept.push_back((t, Chunk::Data(b)));
                }
                Chunk::Eof if all => kept.push_back((t, Chunk::Eof)),
                _ => {}
            }
        }
        let had_eof = kept.iter().any(|(_, c)| matches!(c, Chunk::Eof));
        self.in_flight = kept;
        self.closed = true;
        if !had_eof && !silent {
            let extra = rng.ms(0, 2000);
            self.push_after(clock.now() + extra, Chunk::Eof);
        }
    }

    /// When the next chunk arrives.
    pub fn next_at(&self) -> Option<Instant> {
        self.in_flight.front().map(|(t, _)| *t)
    }

    /// Whether a chunk has arrived by `now`.
    pub fn due(&self, now: Instant) -> bool {
        self.next_at().is_some_and(|t| t <= now)
    }

    /// The next chunk, if it has arrived by `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<Chunk> {
        if self.due(now) {
            self.in_flight.pop_front().map(|(_, c)| c)
        } else {
            None
        }
    }

    /// Queues `c` at `t`, or after the last chunk if that is later.
    fn push_after(&mut self, t: Instant, c: Chunk) {
        let t = self.last.map_or(t, |l| l.max(t));
        self.last = Some(t);
        self.in_flight.push_back((t, c));
    }
}

/// A connection's two wires, [`C2S`] and [`S2C`].
#[derive(Debug, Default)]
pub struct Link {
    /// Indexed by [`C2S`] and [`S2C`].
    pub dirs: [Wire; 2],
    /// When the link was cut (both directions die).
    pub cut_at: Option<Instant>,
}

impl Link {
    /// Whether nothing more can be written on `dir`.
    pub fn closed(&self, dir: usize) -> bool {
        self.cut_at.is_some() || self.dirs[dir].closed
    }

    /// Cuts both wires ([`Wire::cut`], `C2S` first) unless already cut;
    /// returns whether it did.
    pub fn cut(&mut self, rng: &mut Rng, clock: &Clock, lose_all: bool, silent: [bool; 2]) -> bool {
        if self.cut_at.is_some() {
            return false;
        }
        self.cut_at = Some(clock.now());
        for (wire, silent) in self.dirs.iter_mut().zip(silent) {
            wire.cut(rng, clock, lose_all, silent);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_stream_is_stable() {
        // The simulations' seeds in regression files rely on this stream.
        let mut r = Rng::new(0);
        let first = r.next_u64();
        let mut again = Rng::new(0);
        assert_eq!(again.next_u64(), first);
        assert_ne!(Rng::new(1).next_u64(), first);
    }

    #[test]
    fn wire_keeps_order_and_eof_last() {
        let mut rng = Rng::new(7);
        let clock = Clock::new(Instant::now());
        let netem = Netem::uniform_ms(5, 40, true);
        let mut w = Wire::default();
        let data: Vec<u8> = (0..=255).collect();
        assert!(w.write(&mut rng, &netem, &clock, &data));
        w.close(&mut rng, &netem, &clock);
        assert!(!w.write(&mut rng, &netem, &clock, b"late"));
        let times: Vec<Instant> = w.in_flight.iter().map(|(t, _)| *t).collect();
        assert!(times.windows(2).all(|p| p[0] <= p[1]));
        let mut got = Vec::new();
        let mut eof = false;
        let end = clock.now() + Duration::from_secs(1);
        while let Some(c) = w.pop_due(end) {
            match c {
                Chunk::Data(d) => got.extend(d),
                Chunk::Eof => eof = true,
            }
        }
        assert_eq!(got, data);
        assert!(eof);
    }
}
