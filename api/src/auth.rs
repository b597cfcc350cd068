//! API keys: a random secret shown once, stored only as its SHA-256, sent as `X-API-Key`.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::StatusCode;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::app::AppState;
use crate::error::ApiError;

/// The header that carries an API key.
pub const API_KEY_HEADER: &str = "x-api-key";

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Write readings (and, until roles arrive, register machines).
    Ingest,
    /// Read machines and readings.
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

/// Generates a key with 256 bits of entropy.
pub fn generate_key() -> NewKey {
    let secret = format!("hlk_{}", hex::encode(rand::random::<[u8; 32]>()));
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

/// The caller, authenticated by a valid, unrevoked API key.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ApiKey {
    /// The key's id.
    pub key_id: Uuid,
    /// The tenant the key belongs to; every query filters by it.
    pub tenant_id: Uuid,
    scopes: Vec<String>,
    machine_ids: Option<Vec<Uuid>>,
}

impl ApiKey {
    /// Refuses with 403 unless the key has `scope`.
    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        if self.scopes.iter().any(|s| s == scope.as_str()) {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!("this API key lacks the `{}` scope", scope.as_str()),
            ))
        }
    }

    /// Whether the key may touch `machine` (keys can be restricted to some machines).
    pub fn may_access(&self, machine: Uuid) -> bool {
        self.machine_ids
            .as_ref()
            .is_none_or(|ids| ids.contains(&machine))
    }
}

impl FromRequestParts<AppState> for ApiKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let unauthorized = |msg: &str| ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", msg);
        let secret = parts
            .headers
            .get(API_KEY_HEADER)
            .ok_or_else(|| unauthorized("missing X-API-Key header"))?
            .to_str()
            .map_err(|_| unauthorized("unknown API key"))?;
        sqlx::query_as::<_, ApiKey>(
            "SELECT id AS key_id, tenant_id, scopes, machine_ids FROM api_keys
             WHERE key_hash = $1 AND revoked_at IS NULL",
        )
        .bind(hash_key(secret.trim()))
        .fetch_optional(state.pool())
        .await?
        .ok_or_else(|| unauthorized("unknown or revoked API key"))
    }
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
