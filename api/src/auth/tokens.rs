//! Short-lived access tokens: HS256 JWTs carrying the user, tenant, role, session and a unique `jti` that
//! logout puts on the Redis blocklist.

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::Role;
use crate::config::AuthConfig;

const ISSUER: &str = "haltless";

/// Why a token or the token settings were refused.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// `auth.jwt_secret` is set but too short.
    #[error("auth.jwt_secret must be at least 32 bytes long")]
    WeakSecret,
    /// The token is malformed, forged or expired.
    #[error("invalid access token: {0}")]
    Invalid(#[from] jsonwebtoken::errors::Error),
}

/// What an access token says.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// The user.
    pub sub: Uuid,
    /// The user's tenant.
    pub tid: Uuid,
    /// The user's role when the token was issued.
    pub role: Role,
    /// The login session the token belongs to.
    pub sid: Uuid,
    /// This token's unique id (the blocklist key).
    pub jti: Uuid,
    /// Issued at, seconds since the epoch.
    pub iat: u64,
    /// Issued at, milliseconds since the epoch (compared with a user's revocation cut-off).
    pub iat_ms: i64,
    /// Expires at, seconds since the epoch.
    pub exp: u64,
    /// Always `haltless`.
    pub iss: String,
}

/// Issues and verifies access tokens with the configured secret.
#[derive(Clone)]
pub struct TokenSigner {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSigner")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl TokenSigner {
    /// A signer with `auth.jwt_secret`, or a random per-process secret when that is empty.
    pub fn new(config: &AuthConfig) -> Result<Self, TokenError> {
        let configured = config.jwt_secret.expose_secret().as_bytes();
        let secret: Vec<u8> = if configured.is_empty() {
            tracing::warn!(
                "auth.jwt_secret is not set: access tokens are signed with a random per-process secret"
            );
            rand::random::<[u8; 32]>().to_vec()
        } else if configured.len() < 32 {
            return Err(TokenError::WeakSecret);
        } else {
            configured.to_vec()
        };
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        validation.leeway = 5;
        Ok(Self {
            encoding: EncodingKey::from_secret(&secret),
            decoding: DecodingKey::from_secret(&secret),
            validation,
            ttl: Duration::from_secs(config.access_token_ttl_secs.max(1)),
        })
    }

    /// The lifetime of the tokens this signer issues.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Issues a token for `user` of `tenant` with `role` in `session`.
    pub fn issue(
        &self,
        user: Uuid,
        tenant: Uuid,
        role: Role,
        session: Uuid,
    ) -> Result<(String, Claims), TokenError> {
        let now = jsonwebtoken::get_current_timestamp();
        let claims = Claims {
            sub: user,
            tid: tenant,
            role,
            sid: session,
            jti: Uuid::new_v4(),
            iat: now,
            iat_ms: crate::time::now_ms(),
            exp: now + self.ttl.as_secs(),
            iss: ISSUER.into(),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)?;
        Ok((token, claims))
    }

    /// Checks the signature, issuer and expiry of `token` (not the blocklist).
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        Ok(jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)?.claims)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    fn signer(secret: &str) -> TokenSigner {
        TokenSigner::new(&AuthConfig {
            jwt_secret: SecretString::from(secret),
            ..AuthConfig::default()
        })
        .unwrap()
    }

    #[test]
    fn tokens_round_trip_and_forgeries_fail() {
        let a = signer("a-secret-that-is-long-enough-for-hs256!!");
        let b = signer("another-secret-that-is-long-enough-too!!");
        let (user, tenant, session) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let (token, claims) = a.issue(user, tenant, Role::Operator, session).unwrap();
        let back = a.verify(&token).unwrap();
        assert_eq!(
            (back.sub, back.tid, back.sid, back.jti),
            (user, tenant, session, claims.jti)
        );
        assert_eq!(back.role, Role::Operator);
        assert!(b.verify(&token).is_err(), "another secret refuses it");
        let mut tampered = token.clone();
        tampered.push('x');
        assert!(a.verify(&tampered).is_err());
        assert!(matches!(
            TokenSigner::new(&AuthConfig {
                jwt_secret: SecretString::from("short"),
                ..AuthConfig::default()
            }),
            Err(TokenError::WeakSecret)
        ));
    }
}
