//! The one error type of the API: a status and a uniform JSON body
//! `{"error": {"code", "message", "details"}}`. Internal details are logged, never sent.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use utoipa::ToSchema;

/// The uniform error body (`{"error": {"code", "message", "details"}}`).
#[derive(Debug, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable code, e.g. `not_found`, `forbidden`, `rate_limited`, `tier_limit`.
    pub code: String,
    /// For people.
    pub message: String,
    /// Structured details, when there are any.
    #[schema(value_type = Option<Object>)]
    pub details: Option<serde_json::Value>,
}

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    details: Option<Value>,
    retry_after_secs: Option<u64>,
}

impl ApiError {
    /// An answer with `status`, a stable machine-readable `code` and a human `message`.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: None,
            retry_after_secs: None,
        }
    }

    /// Adds structured details (e.g. the offending entries).
    pub fn with_details(mut self, details: impl serde::Serialize) -> Self {
        self.details = serde_json::to_value(details).ok();
        self
    }

    /// Adds a `Retry-After` header.
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after_secs = Some(secs);
        self
    }

    /// 400 with code `bad_request`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 404 with code `not_found`.
    pub fn not_found(what: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", what)
    }

    /// 422 with code `validation_failed`.
    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            message,
        )
    }

    /// 500; `cause` is logged, the client only learns that something failed.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "an internal error occurred; it has been logged",
        )
    }

    /// 503 with code `unavailable` and `Retry-After: 1`: a service the answer needs is unreachable (an
    /// outage, not a fault of the request or a bug); `cause` is logged.
    pub fn unavailable(service: &str, cause: impl std::fmt::Display) -> Self {
        tracing::warn!(service, error = %cause, "service unavailable; answering 503");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            format!("{service} is unavailable; retry shortly"),
        )
        .retry_after(1)
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The message the caller reads.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = json!({ "code": self.code, "message": self.message });
        if let Some(details) = self.details {
            error["details"] = details;
        }
        let mut response = (self.status, axum::Json(json!({ "error": error }))).into_response();
        if let Some(secs) = self.retry_after_secs {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        // An outage (no connection within the acquire timeout, a dropped connection, a server going down)
        // is not the request's fault nor a bug: 503, so that clients retry.
        if haltless_connectors::admission::cache::is_unavailable(&e) {
            return Self::unavailable("the database", e);
        }
        if let sqlx::Error::Database(db) = &e {
            match db.constraint() {
                Some("machines_tenant_name_key") => {
                    return Self::new(
                        StatusCode::CONFLICT,
                        "conflict",
                        "a machine with this name already exists",
                    )
                }
                Some("tenants_name_key") => {
                    return Self::new(
                        StatusCode::CONFLICT,
                        "conflict",
                        "a tenant with this name already exists",
                    )
                }
                Some("notification_channels_tenant_name_key") => {
                    return Self::new(
                        StatusCode::CONFLICT,
                        "conflict",
                        "a channel with this name already exists",
                    )
                }
                Some("escalation_policies_tenant_name_key") => {
                    return Self::new(
                        StatusCode::CONFLICT,
                        "conflict",
                        "an escalation policy with this name already exists",
                    )
                }
                Some("inhibition_rules_tenant_name_key") => {
                    return Self::new(
                        StatusCode::CONFLICT,
                        "conflict",
                        "an inhibition rule with this name already exists",
                    )
                }
                Some("users_tenant_email_key") => {
                    return Self::new(
                        StatusCode::CONFLICT,
                        "conflict",
                        "this tenant already has a user with this email",
                    )
                }
                Some(name) if db.is_check_violation() => {
                    return Self::validation(format!("a value breaks the rule `{name}`"))
                }
                _ => {}
            }
            // PostgreSQL text cannot hold NUL (22021) or characters the encoding lacks (22P05).
            if matches!(db.code().as_deref(), Some("22021" | "22P05")) {
                return Self::validation("text must not contain NUL characters");
            }
            // A timestamp or number outside what PostgreSQL stores.
            if matches!(db.code().as_deref(), Some("22008" | "22003")) {
                return Self::validation("a value lies outside the supported range");
            }
        }
        Self::internal(e)
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        let status = match r.status() {
            StatusCode::PAYLOAD_TOO_LARGE => StatusCode::PAYLOAD_TOO_LARGE,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            StatusCode::UNPROCESSABLE_ENTITY => StatusCode::UNPROCESSABLE_ENTITY,
            _ => StatusCode::BAD_REQUEST,
        };
        Self::new(status, "invalid_body", r.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_query", r.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_path", r.body_text())
    }
}

/// `axum::Json` whose rejections answer with [`ApiError`].
#[derive(Debug, axum::extract::FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct Json<T>(pub T);

impl<T: serde::Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// `axum::extract::Query` whose rejections answer with [`ApiError`].
#[derive(Debug, axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);

/// `axum::extract::Path` whose rejections answer with [`ApiError`].
#[derive(Debug, axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

/// Answers unknown routes with the uniform body.
pub async fn not_found_fallback() -> ApiError {
    ApiError::not_found("no such endpoint")
}
