//! The OAuth `state`: 256 random bits, base64url, single use, bound server-side to a workspace,
//! an integration and a provider. Only its SHA-256 is stored, so a database reader cannot
//! complete someone else's flow.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// A fresh, unguessable state.
pub fn generate() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The stored form of a state: its SHA-256, or `None` when the value cannot be one of ours (so
/// garbage is refused without touching the database).
pub fn hash(state: &str) -> Option<[u8; 32]> {
    if state.len() != 43
        || !state
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return None;
    }
    Some(Sha256::digest(state.as_bytes()).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_are_unique_and_hash_to_32_bytes() {
        let a = generate();
        let b = generate();
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert_eq!(hash(&a).map(|h| h.len()), Some(32));
        assert_ne!(hash(&a), hash(&b));
    }

    #[test]
    fn values_that_cannot_be_ours_are_refused_before_any_lookup() {
        assert_eq!(hash(""), None);
        assert_eq!(hash("short"), None);
        assert_eq!(hash(&"a".repeat(42)), None);
        assert_eq!(hash(&format!("{}!", "a".repeat(42))), None);
    }
}
