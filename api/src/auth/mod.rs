//! Who is calling and what they may do.
//!
//! Every endpoint takes a [`Caller`]: a user with an access token (`Authorization: Bearer <jwt>`) or an
//! API key (`X-API-Key`). Both yield the tenant, the permissions (a user's role, a key's scopes) and an
//! optional restriction to some machines. The [`enforce`] middleware authenticates once per request,
//! charges the tenant's rate limit and adds the `X-RateLimit-*` headers.
//!
//! - [`keys`]: API key generation and hashing.
//! - [`tokens`]: access tokens (JWT, HS256).
//! - [`passwords`]: argon2id hashing and the password policy.
//! - [`store`]: the Redis side: the token blocklist (counters are `connectors::admission::quota`).
//! - `caller`: the [`Caller`] extractor and the [`enforce`] middleware.

pub mod keys;
pub mod passwords;
pub mod store;
pub mod tokens;

mod caller;

pub use caller::{
    authenticate_key, authenticate_token, client_address, enforce, Caller, KeyCache, Permission,
    Principal,
};
pub use keys::{generate_key, hash_key, random_token, NewKey, Scope, API_KEY_HEADER};

/// The former key-only extractor's name, kept so that handlers written against it still compile: it is
/// now a [`Caller`] (user or key), and `require(Scope::Read | Scope::Ingest)` maps to
/// [`Permission::Read`] / [`Permission::Ingest`]. New code should name [`Caller`] and [`Permission`].
pub type ApiKey = Caller;

use serde::{Deserialize, Serialize};

/// A user's role within a tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything, including users, API keys and settings.
    Admin,
    /// Machines, rules, ingest, alert acknowledgements and snoozes; not users, keys or settings.
    Operator,
    /// Read-only.
    Viewer,
}

impl Role {
    /// The role's name as stored and documented.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Operator => "operator",
            Role::Viewer => "viewer",
        }
    }

    /// Parses a stored or requested role name.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "admin" => Some(Role::Admin),
            "operator" => Some(Role::Operator),
            "viewer" => Some(Role::Viewer),
            _ => None,
        }
    }
}
