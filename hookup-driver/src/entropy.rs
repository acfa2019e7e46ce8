//! Seeds from the operating system for the core's ChaCha20 generators.
//!
//! `hookup-proto` is sans-IO and reads no entropy itself: everything the
//! driver builds on it — connections (masking keys, `Sec-WebSocket-Key`),
//! reliable sessions (the seeds of their connections) and session stores
//! (session ids, resume keys) — is seeded here, from `getrandom`.

use hookup_proto::Config as ProtoConfig;

/// 32 bytes from the operating system's CSPRNG.
///
/// # Panics
/// If the OS has no random source to give (`getrandom` fails): nothing
/// here may go on with predictable keys. On the supported platforms it
/// does not fail once the system is up (Linux's `getrandom(2)` waits for
/// its pool to be initialised).
pub(crate) fn os_seed() -> [u8; 32] {
    let mut seed = [0u8; 32];
    if let Err(e) = getrandom::fill(&mut seed) {
        panic!("hookup: the operating system's random source failed: {e}");
    }
    seed
}

/// Fills `config.rng_seed` from the OS unless it is set (a seed given
/// explicitly is kept: that is for deterministic tests).
pub(crate) fn seed(config: &mut ProtoConfig) {
    if config.rng_seed.is_none() {
        config.rng_seed = Some(os_seed());
    }
}

/// A copy of `config` with its seed filled in (see [`seed`]).
pub(crate) fn seeded(config: &ProtoConfig) -> ProtoConfig {
    let mut c = config.clone();
    seed(&mut c);
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_only_a_missing_seed() {
        let c = seeded(&ProtoConfig::default());
        let d = seeded(&ProtoConfig::default());
        assert!(c.rng_seed.is_some());
        assert_ne!(c.rng_seed, d.rng_seed, "a fresh seed each time");
        let mut fixed = ProtoConfig::default();
        fixed.rng_seed = Some([7; 32]);
        assert_eq!(seeded(&fixed).rng_seed, Some([7; 32]));
    }
}
