//! The OpenAPI document of the endpoints, generated from the handlers' `#[utoipa::path]` annotations and
//! served at `GET /api/v1/openapi.json`.

use axum::routing::get;
use axum::Router;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::error::{ErrorBody, ErrorDetail};
use crate::routes;
use crate::state::AppState;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
    }
}

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(title = "Haltless API", description = "Multi-tenant industrial predictive maintenance."),
    paths(
        routes::accounts::signup,
        routes::accounts::login,
        routes::accounts::refresh,
        routes::accounts::logout,
        routes::accounts::accept_invite,
        routes::accounts::me,
        routes::accounts::sessions,
        routes::accounts::revoke_session,
        routes::users::list,
        routes::users::show,
        routes::users::create,
        routes::users::update,
        routes::api_keys::list,
        routes::api_keys::create,
        routes::api_keys::revoke,
        routes::ingest::ingest,
        routes::machines::list,
        routes::machines::create,
        routes::machines::show,
        routes::machines::replace,
        routes::machines::update,
        routes::machines::retire,
        routes::readings::query,
        routes::readings::export_csv,
        routes::readings::latest,
        routes::maintenance::create_event,
        routes::maintenance::list_events,
        routes::maintenance::show_event,
        routes::maintenance::create_signoff,
        routes::maintenance::list_signoffs,
        routes::maintenance::show_signoff,
        routes::maintenance::update_signoff,
        routes::maintenance::sign,
        routes::maintenance::delete_signoff,
        routes::work_orders::create,
        routes::work_orders::list,
        routes::work_orders::show,
        routes::work_orders::update,
        routes::fleet::status,
        routes::fleet::kpis,
        routes::settings::show,
        routes::settings::replace,
        routes::reports::machines_csv,
        routes::reports::machines_pdf,
        routes::reports::alerts_csv,
        routes::reports::alerts_pdf,
        routes::reports::work_orders_csv,
        routes::reports::work_orders_pdf,
        routes::reports::fleet_pdf,
        routes::rules::list,
        routes::rules::show,
        routes::rules::create,
        routes::rules::update,
        routes::rules::remove,
        routes::alerts::list,
        routes::alerts::show,
        routes::alerts::ack,
        routes::alerts::snooze,
        routes::sources::list,
        routes::sources::create,
        routes::sources::show,
        routes::sources::update,
        routes::sources::remove,
        routes::sources::enable,
        routes::sources::disable,
        routes::sources::status,
        routes::sources::trust,
        routes::channels::list,
        routes::channels::create,
        routes::channels::show,
        routes::channels::update,
        routes::channels::remove,
        routes::channels::test,
        routes::policies::list,
        routes::policies::create,
        routes::policies::show,
        routes::policies::update,
        routes::policies::remove,
        routes::policies::list_inhibitions,
        routes::policies::create_inhibition,
        routes::policies::show_inhibition,
        routes::policies::delete_inhibition,
        routes::silences::list_silences,
        routes::silences::create_silence,
        routes::silences::delete_silence,
        routes::silences::list_notifications,
        routes::silences::show_notification,
        routes::push::channels,
        routes::push::list,
        routes::push::create,
        routes::push::remove,
        routes::predictions::history,
        routes::predictions::fleet,
        routes::models::train,
        routes::models::list,
        routes::models::show,
        routes::models::activate,
    ),
    components(schemas(ErrorBody, ErrorDetail)),
    modifiers(&Security),
    tags(
        (name = "accounts", description = "Sign-up, login, tokens, sessions"),
        (name = "users", description = "Users of a tenant (admins)"),
        (name = "api-keys", description = "API keys of a tenant (admins)"),
        (name = "ingest", description = "Readings in"),
        (name = "machines", description = "Machines and their readings"),
        (name = "rules", description = "Detection rules"),
        (name = "alerts", description = "Alerts, acknowledgements and snoozes"),
        (name = "sources", description = "OPC-UA and Modbus TCP ingest sources and their status"),
        (name = "alerting", description = "Notification channels, escalation policies, silences and the delivery log"),
        (name = "maintenance", description = "Maintenance events, work orders, compliance sign-offs"),
        (name = "fleet", description = "Machine statuses and KPIs"),
        (name = "settings", description = "The tenant's fleet, detection and AI defaults"),
        (name = "predictions", description = "Predictions: remaining useful life per machine, the fleet ranked by it, and the tenant's RUL models (training, metrics, activation)"),
        (name = "reports", description = "CSV and PDF exports, the fleet summary"),
    )
)]
pub struct ApiDoc;

/// The interactive docs page: self-contained HTML and script that read `openapi.json` from the same
/// server, list the operations and send requests (no asset is fetched from anywhere else).
const DOCS_PAGE: &str = include_str!("docs.html");

/// `GET /api/v1/openapi.json` and the docs page `GET /api/v1/docs` (both public).
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/openapi.json",
            get(|| async { axum::Json(ApiDoc::openapi()) }),
        )
        .route("/docs", get(docs))
}

/// The docs page's content policy: its own script and style only, by their SHA-256 (no `'unsafe-inline'`,
/// so a script injected into the page would not run), and requests to this server only.
static DOCS_POLICY: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "default-src 'none'; script-src {}; style-src {}; connect-src 'self'; img-src 'self' data:; \
         frame-ancestors 'none'",
        inline_hash(DOCS_PAGE, "script"),
        inline_hash(DOCS_PAGE, "style")
    )
});

/// The CSP source of the first inline `<tag>` block of `page`: `'sha256-<base64>'` of its text (`'none'`
/// when the page has no such block).
fn inline_hash(page: &str, tag: &str) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let text = page
        .find(&open)
        .map(|start| &page[start + open.len()..])
        .and_then(|rest| rest.find(&close).map(|end| &rest[..end]));
    match text {
        Some(text) => format!(
            "'sha256-{}'",
            base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(text.as_bytes()))
        ),
        None => "'none'".into(),
    }
}

async fn docs() -> impl axum::response::IntoResponse {
    use axum::http::header;
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            // The page may talk to this server only: nothing is loaded from elsewhere.
            (header::CONTENT_SECURITY_POLICY, DOCS_POLICY.as_str()),
        ],
        DOCS_PAGE,
    )
}
