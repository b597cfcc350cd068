//! API keys: a random secret shown once, stored only as its SHA-256, sent as `X-API-Key`. The same
//! hashing serves refresh tokens and invitations, which are random secrets too.

use sha2::{Digest, Sha256};

/// The header that carries an API key.
pub const API_KEY_HEADER: &str = "x-api-key";

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Write readings: `POST /api/v1/ingest`.
    Ingest,
    /// Read everything a viewer may read.
    Read,
}

impl Scope {
    /// The scope's name as stored and documented.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Ingest => "ingest",
            Scope::Read => "read",
        }
    }

    /// Parses a stored or requested scope name.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "ingest" => Some(Scope::Ingest),
            "read" => Some(Scope::Read),
            _ => None,
        }
    }
}

/// A freshly generated key: the secret (shown once) and what is stored of it.
#[derive(Debug)]
pub struct NewKey {
    /// The full secret, e.g. `hlk_3f9a...`.
    pub secret: String,
    /// The first characters, stored to tell keys apart.
    pub prefix: String,
    /// SHA-256 of the secret: the only thing the database keeps.
    pub hash: Vec<u8>,
}

/// A random token with 256 bits of entropy and the given prefix (e.g. `hlr_` for refresh tokens).
pub fn random_token(prefix: &str) -> String {
    format!("{prefix}{}", hex::encode(rand::random::<[u8; 32]>()))
}

/// Generates a key with 256 bits of entropy.
pub fn generate_key() -> NewKey {
    let secret = random_token("hlk_");
    NewKey {
        prefix: secret[..12].to_owned(),
        hash: hash_key(&secret),
        secret,
    }
}

/// The stored form of a key. A fast hash suffices: the secret is random, not a password.
pub fn hash_key(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_random_and_hashed() {
        let a = generate_key();
        let b = generate_key();
        assert_ne!(a.secret, b.secret);
        assert_eq!(a.secret.len(), 4 + 64);
        assert!(a.secret.starts_with(&a.prefix));
        assert_eq!(a.hash, hash_key(&a.secret));
        assert_ne!(a.hash, hash_key(&b.secret));
    }
}
