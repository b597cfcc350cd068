//! The browser assets embedded in the binary at build time (`compose/assets` builds them with npm from
//! `api/portal/`; `api/build.rs` includes every file of `api/portal/dist/`): the API docs page, Swagger UI
//! from npm, served at `GET /api/v1/docs` and `GET /api/v1/docs/{file}`. Nothing is read from the disk or
//! fetched from elsewhere at run time.

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::error::ApiError;
use crate::state::AppState;

include!(concat!(env!("OUT_DIR"), "/assets.rs"));

/// The docs page's content policy: scripts, styles and requests from this server only (no inline script or
/// style, no `eval`), so a script injected into the page would not run.
pub const DOCS_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; font-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; \
    frame-ancestors 'none'";

/// An embedded file by its path under `dist/`.
pub fn find(path: &str) -> Option<(&'static str, &'static [u8])> {
    ASSETS
        .iter()
        .find(|(name, _, _)| *name == path)
        .map(|(_, kind, bytes)| (*kind, *bytes))
}

/// `GET /api/v1/docs` and its files (public).
pub fn docs_router() -> Router<AppState> {
    Router::new()
        .route("/docs", get(|| serve("docs/index.html".into())))
        .route(
            "/docs/{file}",
            get(|Path(file): Path<String>| serve(format!("docs/{file}"))),
        )
}

async fn serve(path: String) -> Response {
    match find(&path) {
        Some((kind, bytes)) => (
            [
                (header::CONTENT_TYPE, kind),
                (header::CONTENT_SECURITY_POLICY, DOCS_POLICY),
                // The files change only with the binary; a browser revalidates them on each visit.
                (header::CACHE_CONTROL, "no-cache"),
            ],
            bytes,
        )
            .into_response(),
        None => ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such file").into_response(),
    }
}
