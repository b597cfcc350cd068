//! What auth keeps in Redis: the blocklist of access tokens (by `jti`, by session, by user). Every key
//! carries `redis.key_prefix` and expires by itself. The login and sign-up throttles and the tenants' rate
//! limits count on [`haltless_connectors::admission::quota::Counters`].

use fred::clients::Client;
use fred::error::{Error as RedisError, ErrorKind};
use fred::prelude::{ClientLike, Expiration, KeysInterface};
use uuid::Uuid;

use crate::auth::tokens::Claims;

/// Redis commands of auth, under one key prefix.
#[derive(Clone)]
pub struct AuthStore {
    redis: Client,
    prefix: String,
}

impl std::fmt::Debug for AuthStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

fn now_secs() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

impl AuthStore {
    /// A store on `redis` whose keys start with `prefix`.
    pub fn new(redis: Client, prefix: &str) -> Self {
        Self {
            redis,
            prefix: prefix.to_owned(),
        }
    }

    fn key(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.prefix)
    }

    /// Refuses the access token `jti` until it would have expired anyway.
    pub async fn block_token(&self, jti: Uuid, exp: u64) -> Result<(), fred::error::Error> {
        let ttl = exp.saturating_sub(now_secs()).max(1) as i64;
        self.redis
            .set::<(), _, _>(
                self.key(&format!("auth:revoked:jti:{jti}")),
                1,
                Some(Expiration::EX(ttl)),
                None,
                false,
            )
            .await
    }

    /// Refuses every access token of `session` issued so far (they live at most `ttl_secs`).
    pub async fn block_session(
        &self,
        session: Uuid,
        ttl_secs: u64,
    ) -> Result<(), fred::error::Error> {
        self.redis
            .set::<(), _, _>(
                self.key(&format!("auth:revoked:sid:{session}")),
                1,
                Some(Expiration::EX(ttl_secs.max(1) as i64)),
                None,
                false,
            )
            .await
    }

    /// Refuses every access token of `user` issued up to now (after a role change or deactivation).
    pub async fn block_user_until_now(
        &self,
        user: Uuid,
        ttl_secs: u64,
    ) -> Result<(), fred::error::Error> {
        self.redis
            .set::<(), _, _>(
                self.key(&format!("auth:revoked:user:{user}")),
                crate::time::now_ms(),
                Some(Expiration::EX(ttl_secs.max(1) as i64 + 5)),
                None,
                false,
            )
            .await
    }

    /// Whether the token of `claims` was revoked: itself, its session, or every token of its user. Fails at
    /// once while Redis is not connected rather than waiting for the reconnection.
    pub async fn is_revoked(&self, claims: &Claims) -> Result<bool, fred::error::Error> {
        if !self.redis.is_connected() {
            return Err(RedisError::new(ErrorKind::IO, "not connected to Redis"));
        }
        let keys = vec![
            self.key(&format!("auth:revoked:jti:{}", claims.jti)),
            self.key(&format!("auth:revoked:sid:{}", claims.sid)),
            self.key(&format!("auth:revoked:user:{}", claims.sub)),
        ];
        let values: Vec<Option<i64>> = self.redis.mget(keys).await?;
        let user_cutoff_ms = values.get(2).copied().flatten();
        Ok(values.first().copied().flatten().is_some()
            || values.get(1).copied().flatten().is_some()
            || user_cutoff_ms.is_some_and(|cutoff| claims.iat_ms <= cutoff))
    }
}
