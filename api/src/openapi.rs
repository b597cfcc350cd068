//! The OpenAPI document of the endpoints, generated from the handlers' `#[utoipa::path]` annotations and
//! served at `GET /api/v1/openapi.json`; [`crate::assets`] serves the docs page that renders it.

use axum::routing::get;
use axum::Router;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{Modify, OpenApi};

use crate::error::{ErrorBody, ErrorDetail};
use crate::routes;
use crate::routes::bodies::{AlertState, FleetStatus, MaintenanceKind, Severity, WorkOrderStatus};
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

/// Names every operation after its method and path (`getMachines`, `postMachinesByMachineRetire`,
/// `getReportsAlertsCsv`): utoipa names them after the handler functions, and several modules have a
/// `list` or a `create`, while generated clients need each name once.
struct OperationIds;

impl Modify for OperationIds {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            let operations = [
                ("get", item.get.as_mut()),
                ("put", item.put.as_mut()),
                ("post", item.post.as_mut()),
                ("delete", item.delete.as_mut()),
                ("patch", item.patch.as_mut()),
            ];
            for (method, operation) in operations {
                if let Some(operation) = operation {
                    operation.operation_id = Some(operation_id(method, path));
                }
            }
        }
    }
}

/// `get` and `/api/v1/machines/{machine}/readings.csv`: `getMachinesByMachineReadingsCsv`.
fn operation_id(method: &str, path: &str) -> String {
    let mut id = method.to_owned();
    for segment in path.trim_start_matches("/api/v1/").split('/') {
        let (segment, by) = match segment.strip_prefix('{') {
            Some(param) => (param.trim_end_matches('}'), true),
            None => (segment, false),
        };
        if by {
            id.push_str("By");
        }
        for word in segment.split(|c: char| !c.is_ascii_alphanumeric()) {
            let mut chars = word.chars();
            if let Some(first) = chars.next() {
                id.push(first.to_ascii_uppercase());
                id.extend(chars);
            }
        }
    }
    id
}

/// An answer that shows a request body with more fields (`PolicyView`: a `PolicySpec` with its id and
/// times) is `allOf` the body's schema and its own fields; a body that refuses unknown fields says
/// `additionalProperties: false`, which no such answer could meet. This copies the body's schema into the
/// answer's `allOf` without that line.
struct OpenViews;

impl Modify for OpenViews {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let Some(components) = openapi.components.as_mut() else {
            return;
        };
        let closed = |name: &str| match components.schemas.get(name) {
            Some(RefOr::T(Schema::Object(object))) if object.additional_properties.is_some() => {
                let mut open = object.clone();
                open.additional_properties = None;
                Some(RefOr::T(Schema::Object(open)))
            }
            _ => None,
        };
        let mut changes = Vec::new();
        for (view, schema) in &components.schemas {
            let RefOr::T(Schema::AllOf(all)) = schema else {
                continue;
            };
            for (i, item) in all.items.iter().enumerate() {
                if let RefOr::Ref(r) = item {
                    let name = r.ref_location.trim_start_matches("#/components/schemas/");
                    if let Some(open) = closed(name) {
                        changes.push((view.clone(), i, open));
                    }
                }
            }
        }
        for (view, i, open) in changes {
            if let Some(RefOr::T(Schema::AllOf(all))) = components.schemas.get_mut(&view) {
                all.items[i] = open;
            }
        }
    }
}

/// The document. The schemas listed are query parameters' types, which utoipa does not collect from
/// `IntoParams` by itself.
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
        routes::rule_preview::preview,
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
        crate::live::socket::dashboard,
        routes::predictions::history,
        routes::predictions::fleet,
        routes::models::train,
        routes::models::list,
        routes::models::show,
        routes::models::activate,
    ),
    components(schemas(
        ErrorBody,
        ErrorDetail,
        Severity,
        AlertState,
        FleetStatus,
        MaintenanceKind,
        WorkOrderStatus
    )),
    modifiers(&Security, &OperationIds, &OpenViews),
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
        (name = "live", description = "The dashboard WebSocket: live readings, alerts, actions and machine statuses"),
    )
)]
pub struct ApiDoc;

/// `GET /api/v1/openapi.json` and the docs page `GET /api/v1/docs` (Swagger UI, embedded; both public).
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/openapi.json",
            get(|| async { axum::Json(ApiDoc::openapi()) }),
        )
        .merge(crate::assets::docs_router())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn refs(value: &serde_json::Value, out: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    match (k.as_str(), v.as_str()) {
                        ("$ref", Some(r)) => out.push(r.to_owned()),
                        _ => refs(v, out),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }

    #[test]
    fn operation_ids_are_unique() {
        assert_eq!(
            operation_id("get", "/api/v1/machines/{machine}/readings.csv"),
            "getMachinesByMachineReadingsCsv"
        );
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let mut seen = std::collections::HashSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let id = op["operationId"].as_str().unwrap();
                assert!(seen.insert(id.to_owned()), "{method} {path}: {id} twice");
            }
        }
    }

    /// Every success answer but 204 has a schema (a client generated from the document types it).
    #[test]
    fn every_answer_has_a_schema() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                for (status, answer) in op["responses"].as_object().unwrap() {
                    if status == "204" || status == "101" {
                        continue;
                    }
                    let content = answer["content"].as_object();
                    let typed =
                        content.is_some_and(|c| c.values().all(|m| m["schema"].is_object()));
                    assert!(typed, "{method} {path} {status} has no schema");
                }
            }
        }
    }

    /// An answer that extends a request body (`allOf`) does not inherit its refusal of other fields.
    #[test]
    fn answers_that_extend_a_body_allow_their_own_fields() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let policy = &doc["components"]["schemas"]["PolicyView"]["allOf"];
        assert!(policy.is_array(), "{policy}");
        for item in policy.as_array().unwrap() {
            assert!(item["$ref"].is_null(), "{item}");
            assert!(item["additionalProperties"].is_null(), "{item}");
        }
        assert_eq!(
            doc["components"]["schemas"]["PolicySpec"]["additionalProperties"],
            false
        );
    }

    #[test]
    fn every_reference_of_the_document_resolves() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let mut found = Vec::new();
        refs(&doc, &mut found);
        assert!(!found.is_empty());
        for r in found {
            let path = r.trim_start_matches('#');
            assert!(doc.pointer(path).is_some(), "{r} does not resolve");
        }
    }

    #[test]
    fn request_bodies_that_handlers_check_field_by_field_are_typed() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        for (path, method) in [
            ("/api/v1/ingest", "post"),
            ("/api/v1/sources", "post"),
            ("/api/v1/rules", "post"),
        ] {
            let schema =
                &doc["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"];
            let name = schema["$ref"].as_str().unwrap().rsplit('/').next().unwrap();
            let body = &doc["components"]["schemas"][name];
            assert!(
                body["properties"].is_object() || body["oneOf"].is_array(),
                "{path}: {body}"
            );
        }
        let rule = &doc["components"]["schemas"]["Rule"];
        assert!(rule["properties"]["when"].is_object(), "{rule}");
    }
}
