//! BMC passwords at rest. kiln must hand each password to its BMC, so it
//! cannot store a hash; it stores the password sealed with a key the
//! database does not hold (`bmc.secret_key` or `bmc.secret_key_file`), so
//! a dump of the database or a backup gives away no credentials.
//!
//! A sealed value is `v1:` followed by the hex of a random 96-bit nonce
//! and the ChaCha20-Poly1305 ciphertext with its tag; opening it with
//! another key fails, which is how a start with the wrong key is refused.

use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::Secret;

const PREFIX: &str = "v1:";
const NONCE_LEN: usize = 12;

/// Why a key could not be loaded or a value not be opened.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    #[error("cannot read the BMC key file {path}: {reason}")]
    KeyFile { path: String, reason: String },
    #[error("the BMC secret key is shorter than 16 characters")]
    WeakKey,
    #[error(
        "a stored BMC password cannot be opened with this key (a wrong or changed bmc.secret_key)"
    )]
    WrongKey,
    #[error("a stored BMC password is not a sealed value")]
    Malformed,
}

/// The key BMC passwords are sealed with.
#[derive(Clone)]
pub struct SecretKey(Key);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(***)")
    }
}

impl SecretKey {
    /// The key from `passphrase` (at least 16 characters), stretched to
    /// 256 bits with SHA-256: the operator's setting is the secret, its
    /// length is what makes it hard to guess.
    pub fn from_passphrase(passphrase: &str) -> Result<Self, SealError> {
        let passphrase = passphrase.trim();
        if passphrase.chars().count() < 16 {
            return Err(SealError::WeakKey);
        }
        let digest = Sha256::digest(passphrase.as_bytes());
        Ok(Self(digest))
    }

    /// The key from the settings: `key` itself, else the contents of
    /// `key_file`; `None` when neither is set.
    pub fn from_settings(key: &str, key_file: &str) -> Result<Option<Self>, SealError> {
        if !key.trim().is_empty() {
            return Self::from_passphrase(key).map(Some);
        }
        if key_file.trim().is_empty() {
            return Ok(None);
        }
        let contents = std::fs::read_to_string(key_file).map_err(|e| SealError::KeyFile {
            path: key_file.to_string(),
            reason: e.to_string(),
        })?;
        Self::from_passphrase(&contents).map(Some)
    }

    /// `secret` sealed for storage; a fresh nonce each time, so two nodes
    /// with one password store different values.
    pub fn seal(&self, secret: &Secret) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        rand::thread_rng().fill_bytes(&mut nonce);
        let cipher = ChaCha20Poly1305::new(&self.0);
        let sealed = cipher
            .encrypt(&Nonce::from(nonce), secret.expose().as_bytes())
            .expect("ChaCha20-Poly1305 encrypts any length kiln stores");
        format!("{PREFIX}{}{}", hex::encode(nonce), hex::encode(sealed))
    }

    /// The password in `sealed`.
    pub fn open(&self, sealed: &str) -> Result<Secret, SealError> {
        let body = sealed.strip_prefix(PREFIX).ok_or(SealError::Malformed)?;
        let bytes = hex::decode(body).map_err(|_| SealError::Malformed)?;
        if bytes.len() < NONCE_LEN {
            return Err(SealError::Malformed);
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| SealError::Malformed)?;
        let plain = ChaCha20Poly1305::new(&self.0)
            .decrypt(&Nonce::from(nonce), ciphertext)
            .map_err(|_| SealError::WrongKey)?;
        String::from_utf8(plain)
            .map(Secret::new)
            .map_err(|_| SealError::Malformed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> SecretKey {
        SecretKey::from_passphrase(s).unwrap()
    }

    #[test]
    fn a_sealed_password_opens_with_its_key_only() {
        let sealed = key("correct horse battery staple").seal(&Secret::new("calvin"));
        assert!(!sealed.contains("calvin"));
        assert_eq!(
            key("correct horse battery staple").open(&sealed).unwrap(),
            Secret::new("calvin")
        );
        assert_eq!(
            key("another key of enough length").open(&sealed),
            Err(SealError::WrongKey)
        );
    }

    #[test]
    fn each_seal_uses_a_new_nonce() {
        let k = key("correct horse battery staple");
        assert_ne!(k.seal(&Secret::new("x")), k.seal(&Secret::new("x")));
    }

    #[test]
    fn short_keys_and_garbage_are_refused() {
        assert_eq!(
            SecretKey::from_passphrase("short").unwrap_err(),
            SealError::WeakKey
        );
        let k = key("correct horse battery staple");
        assert_eq!(k.open("calvin"), Err(SealError::Malformed));
        assert_eq!(k.open("v1:zz"), Err(SealError::Malformed));
        assert!(SecretKey::from_settings("", "").unwrap().is_none());
    }

    #[test]
    fn a_secret_never_prints() {
        let s = Secret::new("calvin");
        assert_eq!(format!("{s} {s:?}"), "*** ***");
    }
}
