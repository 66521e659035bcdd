//! Tokens at rest: AES-256-GCM (the RustCrypto `aes-gcm` crate) under a key ring.
//!
//! `CONNECTOR_TOKEN_KEYS=k1:<base64 32 bytes>,k2:<base64 32 bytes>` holds every key that may
//! still be needed to decrypt; `CONNECTOR_TOKEN_KEY_ID` names the one new secrets are sealed
//! with. Each sealed value records its key id, so keys rotate without a migration: add the new
//! key, make it active, and values move to it as they are rewritten (tokens are rewritten on
//! every refresh); drop the old key once nothing refers to it. A fresh random 96-bit nonce per
//! value; the associated data binds a ciphertext to its row (e.g. the integration id), so a
//! ciphertext copied to another row does not decrypt.

use std::collections::HashMap;
use std::fmt;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rand::RngCore;

const NONCE_LEN: usize = 12;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    #[error("sealed with key {0:?}, which is not in CONNECTOR_TOKEN_KEYS any more")]
    UnknownKey(String),
    #[error("a sealed value did not decrypt (wrong key, wrong row, or tampered with)")]
    Tampered,
    #[error("encryption failed")]
    Seal,
}

/// A value sealed under one key of the ring.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed {
    pub key_id: String,
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealed")
            .field("key_id", &self.key_id)
            .field("bytes", &self.ciphertext.len())
            .finish()
    }
}

#[derive(Clone)]
pub struct KeyRing {
    active: String,
    keys: HashMap<String, Aes256Gcm>,
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ids: Vec<&String> = self.keys.keys().collect();
        ids.sort();
        f.debug_struct("KeyRing")
            .field("active", &self.active)
            .field("key_ids", &ids)
            .finish()
    }
}

fn valid_key_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 32
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl KeyRing {
    /// Parses `k1:<base64>,k2:<base64>` and the active key id. Errors never echo key material.
    pub fn parse(keys: &str, active: &str) -> Result<Self, String> {
        let mut ring = HashMap::new();
        for (i, entry) in keys
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .enumerate()
        {
            let (id, b64) = entry
                .split_once(':')
                .ok_or_else(|| format!("entry {} is not <key id>:<base64 of 32 bytes>", i + 1))?;
            let id = id.trim();
            if !valid_key_id(id) {
                return Err(format!(
                    "entry {}: key id {id:?} must be 1-32 letters, digits, '-' or '_'",
                    i + 1
                ));
            }
            let bytes = STANDARD
                .decode(b64.trim())
                .map_err(|_| format!("key {id}: not valid base64"))?;
            if bytes.len() != 32 {
                return Err(format!(
                    "key {id}: must be 32 bytes (AES-256), got {}; generate one with \
                     `openssl rand -base64 32`",
                    bytes.len()
                ));
            }
            let cipher =
                Aes256Gcm::new_from_slice(&bytes).map_err(|_| format!("key {id}: unusable"))?;
            if ring.insert(id.to_string(), cipher).is_some() {
                return Err(format!("key {id} is listed twice"));
            }
        }
        if ring.is_empty() {
            return Err("no keys given".into());
        }
        let active = active.trim().to_string();
        if !ring.contains_key(&active) {
            let mut ids: Vec<&String> = ring.keys().collect();
            ids.sort();
            return Err(format!(
                "the active key id {active:?} is not one of the keys ({ids:?})"
            ));
        }
        Ok(Self { active, keys: ring })
    }

    pub fn active_key_id(&self) -> &str {
        &self.active
    }

    /// Encrypts under the active key; `aad` must be given again to open.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Sealed, CryptoError> {
        let cipher = self.keys.get(&self.active).ok_or(CryptoError::Seal)?;
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let ciphertext = cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .map_err(|_| CryptoError::Seal)?;
        Ok(Sealed {
            key_id: self.active.clone(),
            nonce: nonce.to_vec(),
            ciphertext,
        })
    }

    /// Decrypts with the key the value was sealed with.
    pub fn open(&self, sealed: &Sealed, aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let cipher = self
            .keys
            .get(&sealed.key_id)
            .ok_or_else(|| CryptoError::UnknownKey(sealed.key_id.clone()))?;
        let nonce: [u8; NONCE_LEN] = sealed
            .nonce
            .as_slice()
            .try_into()
            .map_err(|_| CryptoError::Tampered)?;
        cipher
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: &sealed.ciphertext,
                    aad,
                },
            )
            .map_err(|_| CryptoError::Tampered)
    }

    /// True when `sealed` should be rewritten under the active key.
    pub fn is_stale(&self, sealed: &Sealed) -> bool {
        sealed.key_id != self.active
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> String {
        STANDARD.encode([b; 32])
    }

    #[test]
    fn sealed_values_open_with_the_same_associated_data_only() {
        let ring = KeyRing::parse(&format!("k1:{}", key(1)), "k1").unwrap();
        let s = ring.seal(b"refresh-token", b"integration-a").unwrap();
        assert!(!s.ciphertext.windows(7).any(|w| w == b"refresh"));
        assert_eq!(ring.open(&s, b"integration-a").unwrap(), b"refresh-token");
        assert_eq!(ring.open(&s, b"integration-b"), Err(CryptoError::Tampered));
        let mut t = s.clone();
        t.ciphertext[0] ^= 1;
        assert_eq!(ring.open(&t, b"integration-a"), Err(CryptoError::Tampered));
        // A fresh nonce each time.
        assert_ne!(
            ring.seal(b"x", b"a").unwrap().nonce,
            ring.seal(b"x", b"a").unwrap().nonce
        );
    }

    #[test]
    fn keys_rotate_old_values_open_by_their_key_id_and_new_ones_use_the_active_key() {
        let old = KeyRing::parse(&format!("k1:{}", key(1)), "k1").unwrap();
        let sealed_old = old.seal(b"token", b"row").unwrap();
        let rotated = KeyRing::parse(&format!("k1:{},k2:{}", key(1), key(2)), "k2").unwrap();
        assert_eq!(rotated.open(&sealed_old, b"row").unwrap(), b"token");
        assert!(rotated.is_stale(&sealed_old));
        let sealed_new = rotated.seal(b"token", b"row").unwrap();
        assert_eq!(sealed_new.key_id, "k2");
        assert!(!rotated.is_stale(&sealed_new));
        let dropped = KeyRing::parse(&format!("k2:{}", key(2)), "k2").unwrap();
        assert_eq!(
            dropped.open(&sealed_old, b"row"),
            Err(CryptoError::UnknownKey("k1".into()))
        );
    }

    #[test]
    fn bad_configuration_is_explained_without_echoing_keys() {
        let k = key(7);
        for (keys, active, words) in [
            ("", "k1", "no keys"),
            ("k1", "k1", "<key id>:<base64"),
            ("k1:!!!", "k1", "base64"),
            ("k1:AAAA", "k1", "32 bytes"),
            (&format!("k1:{k}"), "k9", "active key id"),
            (&format!("k 1:{k}"), "k 1", "key id"),
            (&format!("k1:{k},k1:{k}"), "k1", "twice"),
        ] {
            let e = KeyRing::parse(keys, active).unwrap_err();
            assert!(e.contains(words), "{keys}: {e}");
            assert!(!e.contains(&k), "{e}");
        }
        let ring = KeyRing::parse(&format!("k1:{k}"), "k1").unwrap();
        assert!(!format!("{ring:?}").contains(&k));
    }
}
