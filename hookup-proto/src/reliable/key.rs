//! Resume secrets: proof that a HELLO comes from a session's owner.
//!
//! A server hands the client a random 32-byte secret in WELCOME(new); the
//! client presents it in every HELLO that resumes the session. The server
//! keeps only its SHA-256 digest (in memory and in its journal) and checks
//! a presented secret by comparing digests in constant time (`subtle`).

use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use crate::rng::Rng;

/// Length of a resume secret, and of its digest.
pub const RESUME_KEY_LEN: usize = 32;

/// A session's resume secret (32 random bytes from the server's CSPRNG).
///
/// Whoever presents it can resume the session: keep it as secret as the
/// messages themselves. `Debug` does not show it.
#[derive(Clone)]
pub struct ResumeKey([u8; RESUME_KEY_LEN]);

impl ResumeKey {
    /// A key from its bytes (as received in WELCOME, or kept in a journal).
    pub fn from_bytes(bytes: [u8; RESUME_KEY_LEN]) -> Self {
        Self(bytes)
    }

    /// The key's bytes (to keep it in a journal).
    pub fn as_bytes(&self) -> &[u8; RESUME_KEY_LEN] {
        &self.0
    }

    pub(crate) fn generate(rng: &mut Rng) -> Self {
        let mut k = [0u8; RESUME_KEY_LEN];
        rng.fill(&mut k);
        Self(k)
    }

    /// The SHA-256 digest a server keeps instead of the key.
    pub fn digest(&self) -> [u8; RESUME_KEY_LEN] {
        Sha256::digest(self.0).into()
    }

    /// Whether this key's digest is `digest`, compared in constant time.
    pub fn matches(&self, digest: &[u8; RESUME_KEY_LEN]) -> bool {
        bool::from(self.digest().ct_eq(digest))
    }
}

impl std::fmt::Debug for ResumeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResumeKey(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_only_its_own_digest() {
        let mut rng = Rng::from_seed([5; 32]);
        let a = ResumeKey::generate(&mut rng);
        let b = ResumeKey::generate(&mut rng);
        assert_ne!(a.as_bytes(), b.as_bytes());
        assert!(a.matches(&a.digest()));
        assert!(!b.matches(&a.digest()));
        assert!(!a.matches(a.as_bytes()), "the digest is not the key");
        assert_eq!(format!("{a:?}"), "ResumeKey(..)");
    }
}
