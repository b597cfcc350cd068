//! The [`Caller`] extractor and the [`enforce`] middleware.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use uuid::Uuid;

use crate::auth::keys::{hash_key, Scope, API_KEY_HEADER};
use crate::auth::Role;
use crate::error::ApiError;
use crate::state::AppState;
use crate::tenants::{TenantLimits, Tier};
use haltless_connectors::admission::cache::{is_unavailable, Breaker, Fallback};
use haltless_connectors::admission::quota::{reads_counter, writes_counter, Window};
use haltless_schemas::metric_names;
use haltless_schemas::outbound::Cidr;

/// What an endpoint requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Read the tenant's machines, readings, rules and alerts: every role, and keys with `read`.
    Read,
    /// Post readings: admins, operators, and keys with `ingest`.
    Ingest,
    /// Change machines and rules, acknowledge and snooze alerts: admins and operators.
    Operate,
    /// Users, API keys and settings: admins only.
    Admin,
}

impl From<Scope> for Permission {
    fn from(scope: Scope) -> Self {
        match scope {
            Scope::Ingest => Permission::Ingest,
            Scope::Read => Permission::Read,
        }
    }
}

/// How the caller authenticated.
#[derive(Debug, Clone)]
pub enum Principal {
    /// A user with an access token.
    User {
        /// The user.
        user_id: Uuid,
        /// The role the token carries.
        role: Role,
        /// The login session.
        session_id: Uuid,
        /// The token's id.
        jti: Uuid,
        /// When the token expires (seconds since the epoch).
        expires_at: u64,
    },
    /// An API key.
    Key {
        /// The key.
        key_id: Uuid,
        /// Its scopes.
        scopes: Vec<Scope>,
    },
}

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The caller's tenant; every query filters by it.
    pub tenant_id: Uuid,
    /// A user or a key.
    pub principal: Principal,
    /// The tenant's tier and limits.
    pub limits: TenantLimits,
    machine_ids: Option<Vec<Uuid>>,
}

impl Caller {
    /// Whether the caller holds `permission`.
    pub fn allows(&self, permission: impl Into<Permission>) -> bool {
        let permission = permission.into();
        match &self.principal {
            Principal::User { role, .. } => match role {
                Role::Admin => true,
                Role::Operator => permission != Permission::Admin,
                Role::Viewer => permission == Permission::Read,
            },
            Principal::Key { scopes, .. } => {
                scopes.iter().any(|s| Permission::from(*s) == permission)
            }
        }
    }

    /// Refuses with 403 unless the caller holds `permission`.
    pub fn require(&self, permission: impl Into<Permission>) -> Result<(), ApiError> {
        let permission = permission.into();
        if self.allows(permission) {
            return Ok(());
        }
        let message = match (&self.principal, permission) {
            (Principal::Key { .. }, Permission::Ingest) => "this API key lacks the `ingest` scope",
            (Principal::Key { .. }, Permission::Read) => "this API key lacks the `read` scope",
            (Principal::Key { .. }, _) => "API keys may only ingest or read; sign in as a user",
            (Principal::User { .. }, Permission::Admin) => "this needs the admin role",
            (Principal::User { .. }, _) => "this needs the operator or admin role",
        };
        Err(ApiError::new(StatusCode::FORBIDDEN, "forbidden", message))
    }

    /// Whether the caller may touch `machine` (API keys can be restricted to some machines).
    pub fn may_access(&self, machine: Uuid) -> bool {
        self.machine_ids
            .as_ref()
            .is_none_or(|ids| ids.contains(&machine))
    }

    /// The machines the caller is restricted to, if any (for SQL `machine_id = ANY(..)` filters).
    pub fn machine_restriction(&self) -> Option<&[Uuid]> {
        self.machine_ids.as_deref()
    }

    /// The user, when the caller is one.
    pub fn user_id(&self) -> Option<Uuid> {
        match &self.principal {
            Principal::User { user_id, .. } => Some(*user_id),
            Principal::Key { .. } => None,
        }
    }

    /// Who did it, for histories: `user:<id>` or `api-key:<id>`.
    pub fn actor(&self) -> String {
        match &self.principal {
            Principal::User { user_id, .. } => format!("user:{user_id}"),
            Principal::Key { key_id, .. } => format!("api-key:{key_id}"),
        }
    }
}

fn unauthorized(message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
}

fn unavailable(cause: impl std::fmt::Display) -> ApiError {
    tracing::warn!(%cause, "token blocklist unreachable");
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "the token blocklist cannot be checked; retry shortly",
    )
    .retry_after(1)
}

#[derive(sqlx::FromRow, Clone)]
struct KeyRow {
    key_id: Uuid,
    tenant_id: Uuid,
    scopes: Vec<String>,
    machine_ids: Option<Vec<Uuid>>,
    tier: String,
    max_machines: Option<i32>,
    writes_per_minute: Option<i32>,
    reads_per_minute: Option<i32>,
}

/// API keys a cache holds at most.
const KEY_CACHE_CAPACITY: usize = 100_000;

/// API key lookups that survive a database outage: the database is asked each time while it answers (a
/// revoked key is refused at once), and while it does not, a key seen in the last `max_age` still works.
#[derive(Clone)]
pub struct KeyCache {
    cache: Fallback<Vec<u8>, KeyRow>,
    breaker: Breaker,
}

impl KeyCache {
    /// A cache whose answers serve for `max_age` during an outage (zero: keys need the database), skipping
    /// the database while `breaker` is open.
    pub fn new(max_age: Duration, breaker: Breaker) -> Self {
        Self {
            cache: Fallback::new(max_age, KEY_CACHE_CAPACITY),
            breaker,
        }
    }

    /// Forgets the key `key_id` (after this instance revoked it).
    pub fn forget(&self, key_id: Uuid) {
        self.cache.forget(|_, row| row.key_id == key_id);
    }

    /// Forgets every key of `tenant` (after its tier or limits changed).
    pub fn forget_tenant(&self, tenant: Uuid) {
        self.cache.forget(|_, row| row.tenant_id == tenant);
    }

    async fn lookup(&self, pool: &sqlx::PgPool, hash: Vec<u8>) -> Result<Option<KeyRow>, ApiError> {
        let cached = || {
            let row = self.cache.fresh(&hash);
            if row.is_some() {
                metrics::counter!(metric_names::LOOKUP_CACHE_FALLBACKS, "lookup" => "api_key")
                    .increment(1);
            }
            row
        };
        if self.breaker.is_open() {
            if let Some(row) = cached() {
                return Ok(Some(row));
            }
        }
        let row: Result<Option<KeyRow>, sqlx::Error> = sqlx::query_as(
            "SELECT k.id AS key_id, k.tenant_id, k.scopes, k.machine_ids, t.tier, t.max_machines,
                    t.writes_per_minute, t.reads_per_minute
             FROM api_keys k JOIN tenants t ON t.id = k.tenant_id
             WHERE k.key_hash = $1 AND k.revoked_at IS NULL",
        )
        .bind(&hash)
        .fetch_optional(pool)
        .await;
        match row {
            Ok(row) => {
                self.breaker.reset();
                match &row {
                    Some(row) => self.cache.put(hash, row.clone()),
                    None => self.cache.forget(|h, _| *h == hash),
                }
                Ok(row)
            }
            Err(e) if is_unavailable(&e) => {
                self.breaker.trip();
                cached().map(Some).ok_or_else(|| ApiError::from(e))
            }
            Err(e) => Err(e.into()),
        }
    }
}

fn has_credentials(headers: &HeaderMap) -> bool {
    headers.contains_key(API_KEY_HEADER) || headers.contains_key(header::AUTHORIZATION)
}

/// Authenticates the request's credentials: a bearer token first, else an API key.
async fn authenticate(headers: &HeaderMap, state: &AppState) -> Result<Caller, ApiError> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let token = value
            .to_str()
            .ok()
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .ok_or_else(|| unauthorized("the Authorization header must be `Bearer <token>`"))?;
        return authenticate_token(token.trim(), state).await;
    }
    let secret = headers
        .get(API_KEY_HEADER)
        .ok_or_else(|| unauthorized("sign in (Authorization: Bearer) or send an X-API-Key"))?
        .to_str()
        .map_err(|_| unauthorized("unknown API key"))?;
    authenticate_key(secret.trim(), state).await
}

/// The caller an access token names: signed by this platform, not expired, not logged out or revoked.
pub async fn authenticate_token(token: &str, state: &AppState) -> Result<Caller, ApiError> {
    let claims = state
        .tokens()
        .verify(token)
        .map_err(|_| unauthorized("invalid or expired access token"))?;
    if state
        .auth_store()
        .is_revoked(&claims)
        .await
        .map_err(unavailable)?
    {
        return Err(unauthorized("this access token has been revoked"));
    }
    let limits = crate::tenants::load_limits(state.pool(), claims.tid)
        .await?
        .ok_or_else(|| unauthorized("the tenant no longer exists"))?;
    Ok(Caller {
        tenant_id: claims.tid,
        principal: Principal::User {
            user_id: claims.sub,
            role: claims.role,
            session_id: claims.sid,
            jti: claims.jti,
            expires_at: claims.exp,
        },
        limits,
        machine_ids: None,
    })
}

/// The caller an API key names, unless it is unknown or revoked.
pub async fn authenticate_key(secret: &str, state: &AppState) -> Result<Caller, ApiError> {
    let row = state
        .key_cache()
        .lookup(state.pool(), hash_key(secret))
        .await?
        .ok_or_else(|| unauthorized("unknown or revoked API key"))?;
    Ok(Caller {
        tenant_id: row.tenant_id,
        principal: Principal::Key {
            key_id: row.key_id,
            scopes: row.scopes.iter().filter_map(|s| Scope::parse(s)).collect(),
        },
        limits: TenantLimits::from_row(
            Tier::parse(&row.tier),
            row.max_machines,
            row.writes_per_minute,
            row.reads_per_minute,
        ),
        machine_ids: row.machine_ids,
    })
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        // Set by `enforce`; authenticating again only happens where that middleware is missing or the
        // credentials were refused there (this gives the precise refusal).
        if let Some(caller) = parts.extensions.get::<Caller>() {
            return Ok(caller.clone());
        }
        authenticate(&parts.headers, state).await
    }
}

/// The client's address, for throttles and the session list: the peer, or, when the peer is a trusted
/// proxy, the rightmost untrusted hop of `X-Forwarded-For` ([`forwarded_client`]).
pub fn client_address(parts: &Parts, state: &AppState) -> String {
    let Some(peer) = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
    else {
        return "unknown".into();
    };
    let auth = &state.settings().auth;
    let hops: Vec<&str> = parts
        .headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .collect();
    forwarded_client(peer, &hops, &auth.trusted_proxies, auth.trust_forwarded_for).to_string()
}

/// Walks `X-Forwarded-For` (`hops`, leftmost first) from the right: each trusted proxy appended the
/// address it was reached from, so the first address from the right that is not a trusted proxy is the
/// client. Entries further left are whatever the client wrote and are never taken. An untrusted peer's
/// header is ignored; a malformed entry stops the walk at the last trusted hop.
pub fn forwarded_client(peer: IpAddr, hops: &[&str], trusted: &[Cidr], trust_peer: bool) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    if !(trust_peer || is_trusted(peer)) {
        return peer;
    }
    let mut current = peer;
    for hop in hops.iter().rev() {
        let Ok(ip) = hop.trim().parse::<IpAddr>() else {
            return current;
        };
        current = ip;
        if !is_trusted(ip) {
            break;
        }
    }
    current
}

fn rate_headers(headers: &mut HeaderMap, window: &Window) {
    headers.insert("x-ratelimit-limit", HeaderValue::from(window.limit));
    headers.insert(
        "x-ratelimit-remaining",
        HeaderValue::from(window.remaining()),
    );
    headers.insert("x-ratelimit-reset", HeaderValue::from(window.reset_secs));
}

/// Authenticates a request that carries credentials, charges its tenant's rate limit (reads: GET and
/// HEAD; every other method, ingest included, is one write) and hands the [`Caller`] to the handler.
/// Requests without credentials pass through: public endpoints serve them, the others answer 401.
pub async fn enforce(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if !has_credentials(request.headers()) {
        return next.run(request).await;
    }
    let (mut parts, body) = request.into_parts();
    let caller = match authenticate(&parts.headers, &state).await {
        Ok(caller) => caller,
        // An outage answers here: authenticating again in the handler would wait for it twice.
        Err(e) if e.status() == StatusCode::SERVICE_UNAVAILABLE => return e.into_response(),
        Err(_) => return next.run(Request::from_parts(parts, body)).await,
    };
    let window = if state.settings().limits.rate_limits {
        let read = matches!(parts.method, Method::GET | Method::HEAD);
        let (counter, limit) = if read {
            (
                reads_counter(caller.tenant_id),
                caller.limits.reads_per_minute,
            )
        } else {
            (
                writes_counter(caller.tenant_id),
                caller.limits.writes_per_minute,
            )
        };
        // None when Redis is unreachable: availability over strictness, a Redis outage must not stop
        // ingest (the counters log and count the outage once).
        let kind = if read { "reads" } else { "writes" };
        state.counters().limit(&counter, 60, limit, kind).await
    } else {
        None
    };
    if let Some(w) = window.filter(Window::exceeded) {
        let kind = if matches!(parts.method, Method::GET | Method::HEAD) {
            "reads"
        } else {
            "writes"
        };
        metrics::counter!(haltless_schemas::metric_names::RATE_LIMITED, "kind" => kind)
            .increment(1);
        let mut response = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!(
                "this tenant ({} tier) may make {} API {kind} per minute; retry in {} s",
                caller.limits.tier.as_str(),
                w.limit,
                w.reset_secs.max(1)
            ),
        )
        .retry_after(w.reset_secs.max(1))
        .into_response();
        rate_headers(response.headers_mut(), &w);
        return response;
    }
    parts.extensions.insert(caller);
    let mut response = next.run(Request::from_parts(parts, body)).await;
    if let Some(w) = window {
        rate_headers(response.headers_mut(), &w);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::unwrap_used)]
    fn the_client_is_the_rightmost_untrusted_hop() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let trusted: Vec<Cidr> = vec!["10.0.0.0/8".parse().unwrap()];
        let proxy = ip("10.0.0.2");
        // The client wrote the leftmost entry; the proxy appended what it saw.
        let spoofed = ["1.2.3.4", "198.51.100.7"];
        assert_eq!(
            forwarded_client(proxy, &spoofed, &trusted, false),
            ip("198.51.100.7")
        );
        // Two trusted proxies in a row.
        let chain = ["1.2.3.4", "198.51.100.7", "10.0.0.9"];
        assert_eq!(
            forwarded_client(proxy, &chain, &trusted, false),
            ip("198.51.100.7")
        );
        // An untrusted peer's header is ignored.
        assert_eq!(
            forwarded_client(ip("203.0.113.5"), &spoofed, &trusted, false),
            ip("203.0.113.5")
        );
        // No header, or a malformed entry: the last trusted hop.
        assert_eq!(forwarded_client(proxy, &[], &trusted, false), proxy);
        assert_eq!(
            forwarded_client(proxy, &["1.2.3.4", "junk"], &trusted, false),
            proxy
        );
        // trust_forwarded_for alone: one proxy, whatever its address; the rightmost entry.
        assert_eq!(
            forwarded_client(ip("203.0.113.5"), &spoofed, &[], true),
            ip("198.51.100.7")
        );
    }

    fn caller(principal: Principal) -> Caller {
        Caller {
            tenant_id: Uuid::new_v4(),
            principal,
            limits: TenantLimits::from_row(Tier::Free, None, None, None),
            machine_ids: None,
        }
    }

    fn user(role: Role) -> Caller {
        caller(Principal::User {
            user_id: Uuid::new_v4(),
            role,
            session_id: Uuid::new_v4(),
            jti: Uuid::new_v4(),
            expires_at: 0,
        })
    }

    fn key(scopes: &[Scope]) -> Caller {
        caller(Principal::Key {
            key_id: Uuid::new_v4(),
            scopes: scopes.to_vec(),
        })
    }

    #[test]
    fn roles_and_scopes_grant_what_the_readme_says() {
        use Permission::*;
        let all = [Read, Ingest, Operate, Admin];
        let grants = |c: &Caller| all.map(|p| c.allows(p));
        assert_eq!(grants(&user(Role::Admin)), [true, true, true, true]);
        assert_eq!(grants(&user(Role::Operator)), [true, true, true, false]);
        assert_eq!(grants(&user(Role::Viewer)), [true, false, false, false]);
        assert_eq!(grants(&key(&[Scope::Read])), [true, false, false, false]);
        assert_eq!(grants(&key(&[Scope::Ingest])), [false, true, false, false]);
        assert_eq!(
            grants(&key(&[Scope::Ingest, Scope::Read])),
            [true, true, false, false]
        );
        assert_eq!(
            user(Role::Viewer).require(Operate).map_err(|e| e.status()),
            Err(StatusCode::FORBIDDEN)
        );
    }

    #[test]
    fn a_restricted_key_sees_only_its_machines() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let mut k = key(&[Scope::Read]);
        assert!(k.may_access(a) && k.may_access(b));
        k.machine_ids = Some(vec![a]);
        assert!(k.may_access(a) && !k.may_access(b));
    }
}
