//! The core's random source: masking keys, `Sec-WebSocket-Key` nonces,
//! session ids, resume secrets and reconnect jitter.
//!
//! It is ChaCha20 used as a CSPRNG (`chacha20::ChaCha20Rng`, RustCrypto),
//! seeded with 32 bytes. The core never reads an OS entropy source on its
//! own (it is sans-IO): the seed comes from the caller.
//!
//! * [`Config::rng_seed`](crate::Config::rng_seed): `hookup-driver` (and so
//!   `hookup-tokio` and `hookup-async-std`) always fills it from the
//!   operating system (`getrandom`) when it is not set; tests set it for
//!   deterministic runs.
//! * When a user of `hookup-proto` alone leaves it unset, the fallback is
//!   a seed derived from the standard library's per-process hash keys
//!   ([`std::collections::hash_map::RandomState`]): std draws those from
//!   the OS on the usual platforms but does not promise it, so this
//!   fallback is documented as unfit where unpredictability matters
//!   (masking keys, RFC 6455 §10.3): set a seed from the OS.
//! * A [`SessionStore`](crate::reliable::SessionStore), which mints
//!   session ids and resume secrets, takes its seed as a required argument:
//!   there is no fallback for what protects session ownership.

use std::hash::{BuildHasher, Hasher};

use chacha20::ChaCha20Rng;
use chacha20::rand_core::{Rng as _, SeedableRng as _};

/// ChaCha20 as a random generator, from a 32-byte seed.
pub(crate) struct Rng {
    inner: ChaCha20Rng,
}

/// The state is not shown: it predicts every later key and secret.
impl std::fmt::Debug for Rng {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Rng(..)")
    }
}

impl Rng {
    /// A generator from a 32-byte seed.
    pub(crate) fn from_seed(seed: [u8; 32]) -> Self {
        Self {
            inner: ChaCha20Rng::from_seed(seed),
        }
    }

    /// The documented fallback when no seed is given: a seed from the
    /// standard library's random hash keys (see the module docs).
    pub(crate) fn from_std() -> Self {
        let mut seed = [0u8; 32];
        for (i, chunk) in seed.chunks_exact_mut(8).enumerate() {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_usize(i);
            chunk.copy_from_slice(&h.finish().to_le_bytes());
        }
        Self::from_seed(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.inner.next_u64()
    }

    pub(crate) fn fill(&mut self, out: &mut [u8]) {
        self.inner.fill_bytes(out);
    }

    /// A uniformly distributed value in `0..=bound`.
    pub(crate) fn below_inclusive(&mut self, bound: u64) -> u64 {
        if bound == u64::MAX {
            return self.next_u64();
        }
        // Multiply-shift; bias is below 2^-64 * bound, irrelevant for jitter.
        ((u128::from(self.next_u64()) * (u128::from(bound) + 1)) >> 64) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_different_seed_different_stream() {
        let mut a = Rng::from_seed([7; 32]);
        let mut b = Rng::from_seed([7; 32]);
        let mut c = Rng::from_seed([8; 32]);
        let xs: Vec<u64> = (0..8).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..8).map(|_| b.next_u64()).collect();
        let zs: Vec<u64> = (0..8).map(|_| c.next_u64()).collect();
        assert_eq!(xs, ys);
        assert_ne!(xs, zs);
    }

    /// The generator is ChaCha20 (RFC 8439 block function, counter and
    /// nonce 0): the all-zero key gives the keystream of RFC 8439 A.1
    /// test vector #1. xoshiro256++ does not.
    #[test]
    fn is_chacha20() {
        let mut r = Rng::from_seed([0; 32]);
        let mut out = [0u8; 16];
        r.fill(&mut out);
        assert_eq!(
            out,
            [
                0x76, 0xb8, 0xe0, 0xad, 0xa0, 0xf1, 0x3d, 0x90, 0x40, 0x5d, 0x6a, 0xe5, 0x53, 0x86,
                0xbd, 0x28
            ]
        );
    }

    #[test]
    fn below_inclusive_stays_in_range() {
        let mut r = Rng::from_seed([1; 32]);
        for bound in [0u64, 1, 2, 9, 1000] {
            for _ in 0..1000 {
                assert!(r.below_inclusive(bound) <= bound);
            }
        }
    }
}
