//! The browser assets embedded in the binary at build time (`compose/assets` builds them with npm from
//! `api/portal/`; `api/build.rs` includes every file of `api/portal/dist/`): the portal (built by Vite),
//! served at `GET /` and `GET /assets/{file}`, and the API docs page with Swagger UI from npm, served at
//! `GET /api/v1/docs` and `GET /api/v1/docs/{file}`. Nothing is read from the disk or fetched from
//! elsewhere at run time.

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

/// The portal's content policy: its own scripts and styles only (Vite emits no inline ones), requests and
/// the dashboard socket to this server only.
pub const PORTAL_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; font-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'self'; \
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

/// `GET /` (the portal's page) and `GET /assets/{file}` (its hashed scripts and styles), public.
pub fn portal_router() -> Router<AppState> {
    Router::new()
        .route(
            "/",
            get(|| serve_with("portal/index.html".into(), PORTAL_POLICY, "no-cache")),
        )
        .route(
            "/assets/{file}",
            get(|Path(file): Path<String>| {
                // Their names carry their content's hash: a new build has new names.
                serve_with(
                    format!("portal/assets/{file}"),
                    PORTAL_POLICY,
                    "public, max-age=31536000, immutable",
                )
            }),
        )
}

async fn serve(path: String) -> Response {
    // The docs' files change only with the binary; a browser revalidates them on each visit.
    serve_with(path, DOCS_POLICY, "no-cache").await
}

async fn serve_with(path: String, policy: &'static str, cache: &'static str) -> Response {
    match find(&path) {
        Some((kind, bytes)) => (
            [
                (header::CONTENT_TYPE, kind),
                (header::CONTENT_SECURITY_POLICY, policy),
                (header::CACHE_CONTROL, cache),
            ],
            bytes,
        )
            .into_response(),
        None => ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such file").into_response(),
    }
}
