//! The OpenAPI document of the endpoints, generated from the handlers' `#[utoipa::path]` annotations and
//! served at `GET /api/v1/openapi.json`; [`crate::assets`] serves the docs page that renders it.

use axum::routing::get;
use axum::Router;
use utoipa::openapi::schema::{ArrayItems, Object};
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

/// A schema that is `allOf` a closed object (`additionalProperties: false`: a body that refuses unknown
/// fields) and other branches with fields of their own could never be met: an answer that shows a request
/// body with more fields (`PolicyView`: a `PolicySpec` with its id and times), a tagged variant (a rule's
/// `ewma` test: its settings with the `detector` tag and the condition's `metric`). Wherever such an `allOf`
/// sits in the document, this copies the closed branch into it without that line; the closed schema itself
/// stays closed where it is used alone.
struct OpenViews;

impl Modify for OpenViews {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let Some(components) = openapi.components.as_mut() else {
            return;
        };
        let named = components.schemas.clone();
        for schema in components.schemas.values_mut() {
            open_all_of(schema, &named);
        }
    }
}

type Named = std::collections::BTreeMap<String, RefOr<Schema>>;

/// The object a branch is, inline or by reference.
fn object_of<'a>(branch: &'a RefOr<Schema>, named: &'a Named) -> Option<&'a Object> {
    match branch {
        RefOr::T(Schema::Object(object)) => Some(object),
        RefOr::Ref(r) => {
            match named.get(r.ref_location.trim_start_matches("#/components/schemas/")) {
                Some(RefOr::T(Schema::Object(object))) => Some(object),
                _ => None,
            }
        }
        _ => None,
    }
}

fn open_all_of(schema: &mut RefOr<Schema>, named: &Named) {
    let RefOr::T(schema) = schema else {
        return;
    };
    match schema {
        Schema::AllOf(all) => {
            let fields: Vec<Vec<&String>> = all
                .items
                .iter()
                .map(|b| object_of(b, named).map_or(Vec::new(), |o| o.properties.keys().collect()))
                .collect();
            let mut opened = Vec::new();
            for (i, branch) in all.items.iter().enumerate() {
                let Some(object) = object_of(branch, named) else {
                    continue;
                };
                let foreign = fields
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .any(|(_, names)| names.iter().any(|n| !object.properties.contains_key(*n)));
                if object.additional_properties.is_some() && foreign {
                    let mut open = object.clone();
                    open.additional_properties = None;
                    opened.push((i, RefOr::T(Schema::Object(open))));
                }
            }
            for (i, open) in opened {
                all.items[i] = open;
            }
            all.items.iter_mut().for_each(|b| open_all_of(b, named));
        }
        Schema::OneOf(one) => one.items.iter_mut().for_each(|b| open_all_of(b, named)),
        Schema::AnyOf(any) => any.items.iter_mut().for_each(|b| open_all_of(b, named)),
        Schema::Object(object) => object
            .properties
            .values_mut()
            .for_each(|p| open_all_of(p, named)),
        Schema::Array(array) => {
            if let ArrayItems::RefOrSchema(items) = &mut array.items {
                open_all_of(items, named);
            }
        }
        _ => {}
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

    /// No `allOf` anywhere in the document has a closed branch (`additionalProperties: false`) while another
    /// branch brings fields it does not list: no value could meet such a schema (an answer that extends a
    /// request body, a rule's `ewma` test with its `detector` tag and `metric`).
    #[test]
    fn no_all_of_closes_a_branch_against_the_fields_of_another() {
        fn object<'a>(
            doc: &'a serde_json::Value,
            branch: &'a serde_json::Value,
        ) -> &'a serde_json::Value {
            match branch["$ref"].as_str() {
                Some(r) => doc.pointer(r.trim_start_matches('#')).unwrap(),
                None => branch,
            }
        }
        fn walk(doc: &serde_json::Value, value: &serde_json::Value, at: &str, seen: &mut usize) {
            match value {
                serde_json::Value::Object(map) => {
                    if let Some(branches) = map.get("allOf").and_then(|b| b.as_array()) {
                        *seen += 1;
                        for (i, branch) in branches.iter().enumerate() {
                            let closed = object(doc, branch);
                            if closed["additionalProperties"] != false {
                                continue;
                            }
                            for (j, other) in branches.iter().enumerate().filter(|(j, _)| *j != i) {
                                if let Some(fields) = object(doc, other)["properties"].as_object() {
                                    for name in fields.keys() {
                                        assert!(
                                            closed["properties"][name].is_object(),
                                            "{at}: allOf branch {i} is closed, branch {j} brings `{name}`"
                                        );
                                    }
                                }
                            }
                        }
                    }
                    for (key, v) in map {
                        walk(doc, v, &format!("{at}/{key}"), seen);
                    }
                }
                serde_json::Value::Array(items) => {
                    for (i, v) in items.iter().enumerate() {
                        walk(doc, v, &format!("{at}/{i}"), seen);
                    }
                }
                _ => {}
            }
        }
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let mut seen = 0;
        walk(&doc, &doc, "", &mut seen);
        assert!(seen > 5, "{seen} allOf schemas");
        // The bodies themselves still refuse unknown fields where they are used alone.
        for closed in ["PolicySpec", "EwmaConfig", "DriftConfig"] {
            assert_eq!(
                doc["components"]["schemas"][closed]["additionalProperties"], false,
                "{closed}"
            );
        }
    }

    /// The answer of `GET /api/v1/rules/{id}` with an `ewma` test (seen refused by the document's own
    /// schema in a schemathesis run) is valid against the document.
    #[test]
    fn a_rule_with_a_detector_test_meets_its_schema() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let test = &doc["components"]["schemas"]["Test"]["oneOf"];
        let ewma = test
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v.to_string().contains("\"ewma\""))
            .unwrap();
        for branch in ewma["allOf"].as_array().unwrap() {
            assert!(branch["additionalProperties"].is_null(), "{branch}");
        }
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
