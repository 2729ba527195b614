//! Secrets at rest (DESIGN §11): the access tokens stored through the admin API are sealed
//! with AES-256-GCM under `storage.encryption_key`, a fresh random nonce per value. Older keys
//! (`storage.previous_encryption_keys`) still open what they sealed, until `storage rekey`
//! seals everything under the current key again.
//!
//! A sealed value is text: `v1:` and the standard base64 of nonce (12 bytes) ‖ ciphertext ‖
//! tag. What it belongs to (the phone number id) is bound as associated data, so a sealed
//! token copied onto another row does not open.

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

const VERSION: &str = "v1:";
const NONCE_LEN: usize = 12;
/// Bytes of a key: AES-256.
pub const KEY_LEN: usize = 32;

/// One AES-256-GCM key. Its bytes are never shown (`Debug` names only its fingerprint).
#[derive(Clone)]
pub struct EncryptionKey {
    cipher: Aes256Gcm,
    /// First 8 hex digits of SHA-256 of the key: tells keys apart in messages.
    fingerprint: String,
}

impl std::fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EncryptionKey({})", self.fingerprint)
    }
}

impl EncryptionKey {
    /// A key written as standard base64 of 32 bytes (surrounding whitespace ignored).
    pub fn parse(written: &str) -> Result<Self, String> {
        let bytes = STANDARD
            .decode(written.trim())
            .map_err(|_| format!("must be {KEY_LEN} random bytes in standard base64"))?;
        if bytes.len() != KEY_LEN {
            return Err(format!(
                "must be {KEY_LEN} random bytes in standard base64 (it holds {})",
                bytes.len()
            ));
        }
        let cipher =
            Aes256Gcm::new_from_slice(&bytes).map_err(|_| format!("must be {KEY_LEN} bytes"))?;
        Ok(EncryptionKey {
            cipher,
            fingerprint: fingerprint(&bytes),
        })
    }

    /// A new random key, as written in configuration (standard base64).
    pub fn generate() -> String {
        let bytes: [u8; KEY_LEN] = rand::random();
        STANDARD.encode(bytes)
    }

    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Seals `secret` for `owner` (bound as associated data) with a fresh random nonce.
    pub fn seal(&self, owner: &str, secret: &SecretString) -> String {
        let nonce_bytes: [u8; NONCE_LEN] = rand::random();
        let nonce = aes_gcm::Nonce::from(nonce_bytes);
        let sealed = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: secret.expose_secret().as_bytes(),
                    aad: owner.as_bytes(),
                },
            )
            // AES-GCM fails only beyond 64 GiB of plaintext; a token is far below.
            .unwrap_or_default();
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce_bytes);
        out.extend_from_slice(&sealed);
        format!("{VERSION}{}", STANDARD.encode(out))
    }

    /// The secret `sealed` holds, if this key sealed it for `owner`.
    pub fn open(&self, owner: &str, sealed: &str) -> Option<SecretString> {
        let bytes = STANDARD.decode(sealed.strip_prefix(VERSION)?).ok()?;
        if bytes.len() < NONCE_LEN {
            return None;
        }
        let (nonce, body) = bytes.split_at(NONCE_LEN);
        let nonce = aes_gcm::Nonce::try_from(nonce).ok()?;
        let plain = self
            .cipher
            .decrypt(
                &nonce,
                Payload {
                    msg: body,
                    aad: owner.as_bytes(),
                },
            )
            .ok()?;
        String::from_utf8(plain).ok().map(SecretString::from)
    }
}

/// The keys of `storage.encryption_key` and `storage.previous_encryption_keys`.
#[derive(Debug, Clone, Default)]
pub struct Keyring {
    /// Seals every new value; None: nothing may be stored.
    pub current: Option<EncryptionKey>,
    /// Open what they sealed, never seal.
    pub previous: Vec<EncryptionKey>,
}

/// Which key of a keyring opened a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenedWith {
    Current,
    Previous,
}

impl Keyring {
    /// The secret and the key that opened it: the current key first, then the previous ones.
    pub fn open(&self, owner: &str, sealed: &str) -> Option<(SecretString, OpenedWith)> {
        if let Some(secret) = self.current.as_ref().and_then(|k| k.open(owner, sealed)) {
            return Some((secret, OpenedWith::Current));
        }
        self.previous
            .iter()
            .find_map(|k| k.open(owner, sealed))
            .map(|secret| (secret, OpenedWith::Previous))
    }
}

/// First 8 hex digits of SHA-256 of `bytes`: which secret is in use, without showing it.
pub fn fingerprint(bytes: &[u8]) -> String {
    hex::encode(&Sha256::digest(bytes)[..4])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> EncryptionKey {
        EncryptionKey::parse(&EncryptionKey::generate()).expect("a generated key parses")
    }

    #[test]
    fn a_sealed_value_opens_with_its_key_and_owner_only() {
        let (k, other) = (key(), key());
        let secret = SecretString::from("EAAG-very-secret-token");
        let sealed = k.seal("111", &secret);
        assert!(!sealed.contains("very-secret"), "{sealed}");
        assert_eq!(
            k.open("111", &sealed).map(|s| s.expose_secret().to_owned()),
            Some("EAAG-very-secret-token".to_owned())
        );
        assert!(
            other.open("111", &sealed).is_none(),
            "another key opened it"
        );
        assert!(k.open("222", &sealed).is_none(), "another owner opened it");
        assert!(k.open("111", "v1:AAAA").is_none());
        assert!(k.open("111", "not sealed").is_none());
    }

    #[test]
    fn every_seal_takes_a_fresh_nonce() {
        let k = key();
        let secret = SecretString::from("same");
        assert_ne!(k.seal("1", &secret), k.seal("1", &secret));
    }

    #[test]
    fn keys_must_be_32_bytes_of_standard_base64() {
        assert!(EncryptionKey::parse(&STANDARD.encode([7u8; 32])).is_ok());
        assert!(EncryptionKey::parse(&STANDARD.encode([7u8; 16])).is_err());
        assert!(EncryptionKey::parse("not base64!").is_err());
        assert!(EncryptionKey::parse("").is_err());
    }

    #[test]
    fn a_keyring_opens_with_previous_keys_and_says_so() {
        let (old, new) = (key(), key());
        let secret = SecretString::from("t");
        let ring = Keyring {
            current: Some(new.clone()),
            previous: vec![old.clone()],
        };
        assert_eq!(
            ring.open("1", &old.seal("1", &secret)).map(|(_, w)| w),
            Some(OpenedWith::Previous)
        );
        assert_eq!(
            ring.open("1", &new.seal("1", &secret)).map(|(_, w)| w),
            Some(OpenedWith::Current)
        );
    }

    #[test]
    fn the_fingerprint_is_the_first_8_hex_digits_of_sha256() {
        // SHA-256("abc") = ba7816bf…
        assert_eq!(fingerprint(b"abc"), "ba7816bf");
    }
}
