//! The endpoint × caller matrix: every endpoint called as admin, operator, viewer, an ingest key, a read
//! key and anonymously, with the status each must answer.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

mod common;

use common::TestApp;
use haltless_api::auth::Scope;
use haltless_api::tenants::create_api_key;
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Who {
    Admin,
    Operator,
    Viewer,
    IngestKey,
    ReadKey,
    Anonymous,
}

const EVERYONE: [Who; 6] = [
    Who::Admin,
    Who::Operator,
    Who::Viewer,
    Who::IngestKey,
    Who::ReadKey,
    Who::Anonymous,
];

/// What each kind of endpoint answers to each caller: (admin, operator, viewer, ingest key, read key);
/// anonymous callers always get 401.
fn expected(class: &str, ok: u16) -> [u16; 5] {
    match class {
        "read" => [ok, ok, ok, 403, ok],
        "ingest" => [ok, ok, 403, ok, 403],
        "operate" => [ok, ok, 403, 403, 403],
        "admin" => [ok, 403, 403, 403, 403],
        "user" => [ok, ok, ok, 403, 403],
        "any" => [ok, ok, ok, ok, ok],
        other => panic!("unknown class {other}"),
    }
}

struct Callers {
    admin: String,
    operator: String,
    viewer: String,
    ingest_key: String,
    read_key: String,
}

async fn send(
    app: &TestApp,
    c: &Callers,
    who: Who,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut req = app.client.request(method, format!("{}{path}", app.url));
    req = match who {
        Who::Admin => req.bearer_auth(&c.admin),
        Who::Operator => req.bearer_auth(&c.operator),
        Who::Viewer => req.bearer_auth(&c.viewer),
        Who::IngestKey => req.header("x-api-key", &c.ingest_key),
        Who::ReadKey => req.header("x-api-key", &c.read_key),
        Who::Anonymous => req,
    };
    if let Some(b) = body {
        req = req.json(b);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn every_endpoint_answers_each_role_as_documented() {
    let app = TestApp::spawn(&["m-1"]).await;
    let pool = &app.iso.pool;
    let machine: Uuid =
        sqlx::query_scalar("SELECT id FROM machines WHERE tenant_id = $1 AND name = 'm-1'")
            .bind(app.tenant)
            .fetch_one(pool)
            .await
            .unwrap();
    let c = Callers {
        admin: app.admin.clone(),
        operator: app.token_for(app.tenant, "operator").await,
        viewer: app.token_for(app.tenant, "viewer").await,
        ingest_key: create_api_key(pool, app.tenant, "i", &[Scope::Ingest])
            .await
            .unwrap()
            .secret,
        read_key: create_api_key(pool, app.tenant, "r", &[Scope::Read])
            .await
            .unwrap()
            .secret,
    };
    let rule = |id: &str| json!({"rule": {"id": id, "name": "R", "when": {"metric": "t", "detector": "above", "value": 1}}});
    for who in EVERYONE {
        let id = format!("{who:?}").to_lowercase();
        assert_eq!(
            app.call(
                Method::POST,
                "/api/v1/rules",
                &app.admin,
                Some(&rule(&format!("del-{id}")))
            )
            .await
            .0,
            201
        );
    }
    assert_eq!(
        app.call(
            Method::POST,
            "/api/v1/rules",
            &app.admin,
            Some(&rule("r-1"))
        )
        .await
        .0,
        201
    );
    let alert = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO alerts (id, tenant_id, machine_id, machine, rule_id, rule_name, severity, detector, metric,
            state, observed, expected, score, score_limit, raised_at, updated_at)
         VALUES ($1, $2, $3, 'm-1', 'r-1', 'R', 'warning', 'above', 't', 'open', 1, 0, 1, 0.5, now(), now())",
    )
    .bind(alert)
    .bind(app.tenant)
    .bind(machine)
    .execute(pool)
    .await
    .unwrap();
    let (_, target) = app
        .call(
            Method::POST,
            "/api/v1/users",
            &app.admin,
            Some(&json!({"email": "target@t.example", "role": "viewer"})),
        )
        .await;
    let target = target["id"].as_str().unwrap().to_owned();
    // A source whose server presented no certificate: accepting one is the administrators' (409 then).
    let (_, source) = app
        .call(
            Method::POST,
            "/api/v1/sources",
            &app.admin,
            Some(&json!({"name": "trusted", "protocol": "modbus_tcp", "endpoint": "127.0.0.1:1",
                "points": [{"machine": "m-1", "metric": "t", "register": "holding", "address": 0, "data_type": "u16"}]})),
        )
        .await;
    let source = source["id"].as_str().unwrap().to_owned();
    let mut keys_to_revoke = Vec::new();
    for _ in EVERYONE {
        keys_to_revoke.push(
            create_api_key(pool, app.tenant, "victim", &[Scope::Read])
                .await
                .unwrap(),
        );
    }
    let key_ids: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM api_keys WHERE tenant_id = $1 AND name = 'victim' ORDER BY id",
    )
    .bind(app.tenant)
    .fetch_all(pool)
    .await
    .unwrap();

    let reading = json!({"readings": [{"machine": "m-1", "metric": "t", "ts": 1_795_687_200_000_i64, "value": 1.0}]});
    let snooze = json!({"until": "2099-01-01T00:00:00Z"});
    let change =
        json!({"rule": {"name": "R2", "when": {"metric": "t", "detector": "above", "value": 2}}});
    let mut failures = Vec::new();
    let mut checked = 0;
    for (i, who) in EVERYONE.into_iter().enumerate() {
        let id = format!("{who:?}").to_lowercase();
        // (method, path, body, class, status when allowed)
        let endpoints: Vec<(Method, String, Option<Value>, &str, u16)> = vec![
            (Method::GET, "/api/v1/me".into(), None, "any", 200),
            (Method::GET, "/api/v1/machines".into(), None, "read", 200),
            (
                Method::GET,
                "/api/v1/machines/m-1/readings".into(),
                None,
                "read",
                200,
            ),
            (Method::GET, "/api/v1/rules".into(), None, "read", 200),
            (Method::GET, "/api/v1/rules/r-1".into(), None, "read", 200),
            (Method::GET, "/api/v1/alerts".into(), None, "read", 200),
            (Method::GET, "/api/v1/sources".into(), None, "read", 200),
            (
                Method::POST,
                format!("/api/v1/sources/{source}/trust"),
                Some(json!({"fingerprint": "0".repeat(64)})),
                "admin",
                409,
            ),
            (
                Method::POST,
                "/api/v1/sources".into(),
                Some(
                    json!({"name": format!("src-{id}"), "protocol": "modbus_tcp", "endpoint": "127.0.0.1:1",
                    "points": [{"machine": "m-1", "metric": "t", "register": "holding", "address": 0, "data_type": "u16"}]}),
                ),
                "operate",
                201,
            ),
            (
                Method::GET,
                format!("/api/v1/alerts/{alert}"),
                None,
                "read",
                200,
            ),
            (
                Method::POST,
                "/api/v1/ingest".into(),
                Some(reading.clone()),
                "ingest",
                202,
            ),
            (
                Method::POST,
                "/api/v1/machines".into(),
                Some(json!({"name": format!("new-{id}")})),
                "operate",
                201,
            ),
            (
                Method::POST,
                "/api/v1/rules".into(),
                Some(rule(&format!("new-{id}"))),
                "operate",
                201,
            ),
            (
                Method::PUT,
                "/api/v1/rules/r-1".into(),
                Some(change.clone()),
                "operate",
                200,
            ),
            (
                Method::DELETE,
                format!("/api/v1/rules/del-{id}"),
                None,
                "operate",
                204,
            ),
            (
                Method::POST,
                "/api/v1/machines/m-1/preview-rule".into(),
                Some(change.clone()),
                "operate",
                200,
            ),
            (
                Method::POST,
                format!("/api/v1/alerts/{alert}/ack"),
                None,
                "operate",
                202,
            ),
            (
                Method::POST,
                format!("/api/v1/alerts/{alert}/snooze"),
                Some(snooze.clone()),
                "operate",
                202,
            ),
            (Method::GET, "/api/v1/users".into(), None, "admin", 200),
            (
                Method::GET,
                format!("/api/v1/users/{target}"),
                None,
                "admin",
                200,
            ),
            (
                Method::POST,
                "/api/v1/users".into(),
                Some(json!({"email": format!("{id}@t.example"), "role": "viewer"})),
                "admin",
                201,
            ),
            (
                Method::PATCH,
                format!("/api/v1/users/{target}"),
                Some(json!({"role": "viewer"})),
                "admin",
                200,
            ),
            (Method::GET, "/api/v1/api-keys".into(), None, "admin", 200),
            (
                Method::POST,
                "/api/v1/api-keys".into(),
                Some(json!({"name": id, "scopes": ["read"]})),
                "admin",
                201,
            ),
            (
                Method::DELETE,
                format!("/api/v1/api-keys/{}", key_ids[i]),
                None,
                "admin",
                204,
            ),
            (Method::GET, "/api/v1/sessions".into(), None, "user", 200),
            // Last: it ends the caller's session.
            (
                Method::POST,
                "/api/v1/auth/logout".into(),
                None,
                "user",
                204,
            ),
        ];
        for (method, path, body, class, ok) in endpoints {
            let want = match who {
                Who::Anonymous => 401,
                _ => expected(class, ok)[i],
            };
            let (got, answer) = send(&app, &c, who, method.clone(), &path, body.as_ref()).await;
            checked += 1;
            if got != want {
                failures.push(format!(
                    "{who:?} {method} {path}: want {want}, got {got}: {answer}"
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} cases wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(checked, 27 * 6);
    // The public endpoints serve anonymous callers.
    let (s, _) = send(
        &app,
        &c,
        Who::Anonymous,
        Method::POST,
        "/api/v1/auth/login",
        Some(&json!({"email": "a@b.example", "password": "x"})),
    )
    .await;
    assert_eq!(s, 401, "wrong credentials, not a missing token");
    let (s, _) = send(&app, &c, Who::Anonymous, Method::GET, "/healthz", None).await;
    assert_eq!(s, 200);
    app.stop().await;
}

#[tokio::test]
async fn the_openapi_document_lists_every_endpoint_with_its_security() {
    let app = TestApp::spawn(&[]).await;
    let r = app
        .client
        .get(format!("{}/api/v1/openapi.json", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "public");
    let doc: Value = r.json().await.unwrap();
    let public = [
        ("post", "/api/v1/signup"),
        ("post", "/api/v1/auth/login"),
        ("post", "/api/v1/auth/refresh"),
        ("post", "/api/v1/invites/accept"),
        // The socket signs in with its first message, not with HTTP credentials.
        ("get", "/api/v1/ws/dashboard"),
    ];
    let protected = [
        ("post", "/api/v1/auth/logout"),
        ("get", "/api/v1/me"),
        ("get", "/api/v1/sessions"),
        ("delete", "/api/v1/sessions/{id}"),
        ("get", "/api/v1/users"),
        ("post", "/api/v1/users"),
        ("get", "/api/v1/users/{id}"),
        ("patch", "/api/v1/users/{id}"),
        ("get", "/api/v1/api-keys"),
        ("post", "/api/v1/api-keys"),
        ("delete", "/api/v1/api-keys/{id}"),
        ("post", "/api/v1/ingest"),
        ("get", "/api/v1/machines"),
        ("post", "/api/v1/machines"),
        ("get", "/api/v1/machines/{machine}/readings"),
        ("get", "/api/v1/rules"),
        ("post", "/api/v1/rules"),
        ("get", "/api/v1/rules/{id}"),
        ("put", "/api/v1/rules/{id}"),
        ("delete", "/api/v1/rules/{id}"),
        ("post", "/api/v1/machines/{machine}/preview-rule"),
        ("get", "/api/v1/alerts"),
        ("get", "/api/v1/alerts/{id}"),
        ("post", "/api/v1/alerts/{id}/ack"),
        ("post", "/api/v1/alerts/{id}/snooze"),
        ("get", "/api/v1/machines/{machine}"),
        ("put", "/api/v1/machines/{machine}"),
        ("patch", "/api/v1/machines/{machine}"),
        ("post", "/api/v1/machines/{machine}/retire"),
        ("get", "/api/v1/machines/{machine}/readings.csv"),
        ("get", "/api/v1/machines/{machine}/latest"),
        ("get", "/api/v1/maintenance-events"),
        ("post", "/api/v1/maintenance-events"),
        ("get", "/api/v1/maintenance-events/{id}"),
        ("get", "/api/v1/work-orders"),
        ("post", "/api/v1/work-orders"),
        ("get", "/api/v1/work-orders/{id}"),
        ("patch", "/api/v1/work-orders/{id}"),
        ("get", "/api/v1/signoffs"),
        ("post", "/api/v1/signoffs"),
        ("get", "/api/v1/signoffs/{id}"),
        ("patch", "/api/v1/signoffs/{id}"),
        ("delete", "/api/v1/signoffs/{id}"),
        ("post", "/api/v1/signoffs/{id}/sign"),
        ("get", "/api/v1/fleet/status"),
        ("get", "/api/v1/fleet/kpis"),
        ("get", "/api/v1/settings"),
        ("put", "/api/v1/settings"),
        ("get", "/api/v1/reports/machines.csv"),
        ("get", "/api/v1/reports/machines.pdf"),
        ("get", "/api/v1/reports/alerts.csv"),
        ("get", "/api/v1/reports/alerts.pdf"),
        ("get", "/api/v1/reports/work-orders.csv"),
        ("get", "/api/v1/reports/work-orders.pdf"),
        ("get", "/api/v1/reports/fleet.pdf"),
        ("get", "/api/v1/sources"),
        ("post", "/api/v1/sources"),
        ("get", "/api/v1/sources/{id}"),
        ("put", "/api/v1/sources/{id}"),
        ("delete", "/api/v1/sources/{id}"),
        ("post", "/api/v1/sources/{id}/enable"),
        ("post", "/api/v1/sources/{id}/disable"),
        ("get", "/api/v1/sources/{id}/status"),
        ("post", "/api/v1/sources/{id}/trust"),
        ("get", "/api/v1/channels"),
        ("post", "/api/v1/channels"),
        ("get", "/api/v1/channels/{id}"),
        ("put", "/api/v1/channels/{id}"),
        ("delete", "/api/v1/channels/{id}"),
        ("post", "/api/v1/channels/{id}/test"),
        ("get", "/api/v1/escalation-policies"),
        ("post", "/api/v1/escalation-policies"),
        ("get", "/api/v1/escalation-policies/{id}"),
        ("put", "/api/v1/escalation-policies/{id}"),
        ("delete", "/api/v1/escalation-policies/{id}"),
        ("get", "/api/v1/inhibition-rules"),
        ("post", "/api/v1/inhibition-rules"),
        ("get", "/api/v1/inhibition-rules/{id}"),
        ("delete", "/api/v1/inhibition-rules/{id}"),
        ("get", "/api/v1/silences"),
        ("post", "/api/v1/silences"),
        ("delete", "/api/v1/silences/{id}"),
        ("get", "/api/v1/notifications"),
        ("get", "/api/v1/notifications/{id}"),
        ("get", "/api/v1/push/channels"),
        ("get", "/api/v1/push/subscriptions"),
        ("post", "/api/v1/push/subscriptions"),
        ("delete", "/api/v1/push/subscriptions/{id}"),
        ("get", "/api/v1/predictions"),
        ("get", "/api/v1/machines/{machine}/predictions"),
        ("get", "/api/v1/models"),
        ("post", "/api/v1/models"),
        ("get", "/api/v1/models/{id}"),
        ("post", "/api/v1/models/{id}/activate"),
    ];
    for (method, path) in public.iter().chain(&protected) {
        let op = &doc["paths"][path][method];
        assert!(op.is_object(), "{method} {path} is not documented");
        let secured = op["security"].as_array().is_some_and(|s| !s.is_empty());
        assert_eq!(
            secured,
            protected.contains(&(method, path)),
            "{method} {path}: security"
        );
        if secured {
            let codes = op["responses"].as_object().unwrap();
            assert!(
                codes.contains_key("401") && codes.contains_key("429"),
                "{method} {path}"
            );
        }
    }
    let documented: usize = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|p| p.as_object().unwrap().len())
        .sum();
    assert_eq!(
        documented,
        public.len() + protected.len(),
        "nothing undocumented, nothing extra"
    );
    // Every schema a document refers to is in it (clients and schemathesis resolve them).
    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    out.push(r.clone());
                }
                m.values().for_each(|v| refs(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let mut found = Vec::new();
    refs(&doc, &mut found);
    for r in &found {
        let name = r.trim_start_matches("#/components/schemas/");
        assert!(
            doc["components"]["schemas"][name].is_object(),
            "{r} does not resolve"
        );
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    assert!(doc["components"]["securitySchemes"]["api_key"].is_object());
    app.stop().await;
}

#[tokio::test]
async fn the_docs_page_is_served_offline_and_reads_the_document() {
    let app = TestApp::spawn(&[]).await;
    let r = app
        .client
        .get(format!("{}/api/v1/docs", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "public");
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("default-src 'none'") && csp.contains("connect-src 'self'"));
    let page = r.text().await.unwrap();
    assert!(page.contains("swagger-ui-bundle.js"), "Swagger UI: {page}");
    for external in ["http://", "https://", "//cdn", "src=\"//", "href=\"//"] {
        assert!(!page.contains(external), "no external asset: {external}");
    }
    // What its script reads, and its content policy, are in security_headers.rs.
    app.stop().await;
}
