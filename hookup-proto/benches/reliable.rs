//! Reliable mode (`hookup.v1` sessions) beside raw connections, whole
//! sans-IO path, in the same run: what the session layer itself costs per
//! message, without sockets, tasks or locks.
//!
//! Each iteration sends 1,000 binary messages of 1 KiB from a client to a
//! server in memory: the client queues them (`Connection::send_binary`, or
//! `Session::send` without an ack deadline), and whenever 64 KiB are queued
//! its output is moved to the server (`handle_input`), the server's events
//! are drained (each message taken, as an application would), and the
//! server's output (the session's cumulative ACKs) is moved back to the
//! client, whose events are drained too. Throughput counts messages; the
//! ratio `session / raw` is the session layer's share of the sans-IO cost.
//!
//! Run: `cargo bench -p hookup-proto --bench reliable`.

use std::hint::black_box;
use std::time::Instant;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hookup_proto::bytes::Bytes;
use hookup_proto::reliable::{
    Action, SUBPROTOCOL, Session, SessionConfig, SessionEvent, SessionStore, StoreConfig,
};
use hookup_proto::{Accept, ClientRequest, Config, Connection, Event, Message, Role};

const MESSAGES: usize = 1000;
const SIZE: usize = 1024;
/// Queued output moved to the peer at once (an adapter's write).
const FLUSH: usize = 64 << 10;

fn config() -> Config {
    let mut c = Config::default();
    c.rng_seed = Some([7; 32]);
    c
}

/// Moves `from`'s output into `to`.
fn carry(from: &mut Session, to: &mut Session, buf: &mut Vec<u8>, now: Instant) {
    buf.clear();
    while from.poll_transmit(buf) {}
    if !buf.is_empty() {
        to.handle_input(now, buf);
    }
}

/// A client and a server session, established (HELLO/WELCOME done).
struct SessionPair {
    client: Session,
    server: Session,
    store: SessionStore,
    buf: Vec<u8>,
    now: Instant,
}

impl SessionPair {
    fn new() -> Self {
        let now = Instant::now();
        let mut client = Session::client(
            ClientRequest::new("ws://127.0.0.1/count").expect("valid url"),
            SessionConfig::default(),
            config(),
            now,
        );
        assert_eq!(client.poll_action(), Some(Action::Connect));
        client.handle_connected(now);
        let mut conn = Connection::server(config(), now);
        let mut buf = Vec::new();
        while client.poll_transmit(&mut buf) {}
        conn.handle_input(now, &buf);
        match conn.poll_event() {
            Some(Event::Request(_)) => conn
                .accept(Accept::new().subprotocol(SUBPROTOCOL))
                .expect("accept"),
            other => panic!("expected the upgrade request, got {other:?}"),
        }
        let server = Session::server(conn, SessionConfig::default(), now);
        let mut pair = Self {
            client,
            server,
            store: SessionStore::new(StoreConfig::default(), [9; 32]),
            buf,
            now,
        };
        for _ in 0..4 {
            pair.exchange();
        }
        assert!(pair.client.is_established() && pair.server.is_established());
        pair
    }

    /// Moves output both ways and drains both sides' events; returns the
    /// messages the server delivered.
    fn exchange(&mut self) -> usize {
        let now = self.now;
        self.buf.clear();
        while self.client.poll_transmit(&mut self.buf) {}
        if !self.buf.is_empty() {
            self.server.handle_input(now, &self.buf);
        }
        let mut delivered = 0;
        while let Some(ev) = self.server.poll_event() {
            match ev {
                SessionEvent::Message(m) => {
                    black_box(m);
                    delivered += 1;
                }
                SessionEvent::Hello { session, proof } => {
                    let (state, resumed) = self
                        .store
                        .open(&session, proof.as_ref(), now)
                        .expect("store");
                    self.server.attach(state, resumed);
                }
                _ => {}
            }
        }
        carry(&mut self.server, &mut self.client, &mut self.buf, now);
        while let Some(ev) = self.client.poll_event() {
            black_box(ev);
        }
        while let Some(o) = self.client.poll_outcome() {
            black_box(o);
        }
        delivered
    }

    fn run(&mut self, payload: &Bytes) -> usize {
        let mut delivered = 0;
        for _ in 0..MESSAGES {
            self.client
                .send(self.now, Message::Binary(payload.clone()), None)
                .expect("send");
            if self.client.transmit_len() >= FLUSH {
                delivered += self.exchange();
            }
        }
        delivered + self.exchange()
    }
}

/// The same with two raw connections.
struct RawPair {
    client: Connection,
    server: Connection,
    buf: Vec<u8>,
    now: Instant,
}

impl RawPair {
    fn new() -> Self {
        let now = Instant::now();
        Self {
            client: Connection::new_open(Role::Client, config(), now),
            server: Connection::new_open(Role::Server, config(), now),
            buf: Vec::new(),
            now,
        }
    }

    fn exchange(&mut self) -> usize {
        self.buf.clear();
        self.client.poll_transmit(&mut self.buf);
        self.server.handle_input(self.now, &self.buf);
        let mut delivered = 0;
        while let Some(ev) = self.server.poll_event() {
            if let Event::Message(m) = ev {
                black_box(m);
                delivered += 1;
            }
        }
        delivered
    }

    fn run(&mut self, payload: &Bytes) -> usize {
        let mut delivered = 0;
        for _ in 0..MESSAGES {
            self.client
                .send(Message::Binary(payload.clone()))
                .expect("send");
            if self.client.transmit_len() >= FLUSH {
                delivered += self.exchange();
            }
        }
        delivered + self.exchange()
    }
}

fn bench(c: &mut Criterion) {
    let payload = Bytes::from(vec![0x5a; SIZE]);
    let mut g = c.benchmark_group("reliable_1KiB");
    g.throughput(Throughput::Elements(MESSAGES as u64));

    let mut raw = RawPair::new();
    assert_eq!(raw.run(&payload), MESSAGES);
    g.bench_function("raw", |b| b.iter(|| raw.run(black_box(&payload))));

    let mut session = SessionPair::new();
    assert_eq!(session.run(&payload), MESSAGES);
    g.bench_function("session", |b| b.iter(|| session.run(black_box(&payload))));
    // Everything was acknowledged on the way: the outbox stays small.
    assert!(session.client.unacked() <= MESSAGES);
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
