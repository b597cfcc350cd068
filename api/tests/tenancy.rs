//! Tenant isolation: two tenants signed up from scratch; tenant A's credentials on tenant B's machine,
//! alert, rule, API key, user and session ids answer 404, and no list shows B's rows.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

mod common;

use common::TestApp;
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

/// Signs a tenant up from scratch and signs its admin in: (tenant id, admin token).
async fn sign_up(app: &TestApp, name: &str) -> (Uuid, String) {
    let email = format!("admin@{name}.example");
    let body = json!({"tenant": name, "email": email, "password": "correct horse battery"});
    let r = app
        .client
        .post(format!("{}/api/v1/signup", app.url))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await.unwrap();
    let (s, login) = app.login(&email, "correct horse battery").await;
    assert_eq!(s, 200);
    let tenant = created["tenant"]["id"].as_str().unwrap().parse().unwrap();
    (tenant, login["access_token"].as_str().unwrap().to_owned())
}

/// An alert of `tenant` on `machine`, as the alerts projection writes it.
pub async fn insert_alert(app: &TestApp, tenant: Uuid, machine: Uuid, name: &str) -> Uuid {
    let id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO alerts (id, tenant_id, machine_id, machine, rule_id, rule_name, severity, detector, metric,
            state, observed, expected, score, score_limit, raised_at, updated_at)
         VALUES ($1, $2, $3, $4, 'r', 'R', 'warning', 'above', 't', 'open', 1, 0, 1, 0.5, now(), now())",
    )
    .bind(id)
    .bind(tenant)
    .bind(machine)
    .bind(name)
    .execute(&app.iso.pool)
    .await
    .unwrap();
    id
}

fn ids(list: &Value, field: &str) -> Vec<String> {
    list[field]
        .as_array()
        .unwrap_or_else(|| panic!("no {field} in {list}"))
        .iter()
        .map(|x| x["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn another_tenants_resources_answer_404_and_lists_do_not_leak() {
    let app = TestApp::spawn(&[]).await;
    let (_, a) = sign_up(&app, "alpha").await;
    let (tenant_b, b) = sign_up(&app, "bravo").await;

    // Tenant B's resources, made through the API by B's admin.
    let (s, machine) = app
        .call(
            Method::POST,
            "/api/v1/machines",
            &b,
            Some(&json!({"name": "b-press"})),
        )
        .await;
    assert_eq!(s, 201, "{machine}");
    let machine_id: Uuid = machine["id"].as_str().unwrap().parse().unwrap();
    let rule = json!({"rule": {"id": "b-rule", "name": "B", "when": {"metric": "t", "detector": "above", "value": 1}}});
    assert_eq!(
        app.call(Method::POST, "/api/v1/rules", &b, Some(&rule))
            .await
            .0,
        201
    );
    let key_body = json!({"name": "b-key", "scopes": ["ingest", "read"]});
    let (_, key) = app
        .call(Method::POST, "/api/v1/api-keys", &b, Some(&key_body))
        .await;
    let key_id = key["id"].as_str().unwrap().to_owned();
    let b_secret = key["secret"].as_str().unwrap().to_owned();
    let user_body =
        json!({"email": "viewer@bravo.example", "role": "viewer", "password": "viewer password"});
    let (_, user) = app
        .call(Method::POST, "/api/v1/users", &b, Some(&user_body))
        .await;
    let user_id = user["id"].as_str().unwrap().to_owned();
    let (_, b_login) = app.login("viewer@bravo.example", "viewer password").await;
    let session_id = b_login["session_id"].as_str().unwrap().to_owned();
    let alert = insert_alert(&app, tenant_b, machine_id, "b-press").await;

    // Tenant A: an admin token, and a read+ingest key made through the API.
    let (_, a_key) = app
        .call(Method::POST, "/api/v1/api-keys", &a, Some(&key_body))
        .await;
    let a_secret = a_key["secret"].as_str().unwrap().to_owned();
    let snooze = json!({"until": "2099-01-01T00:00:00Z"});
    let change =
        json!({"rule": {"name": "A", "when": {"metric": "t", "detector": "above", "value": 2}}});
    let cases: Vec<(Method, String, Option<Value>)> = vec![
        (
            Method::GET,
            "/api/v1/machines/b-press/readings".into(),
            None,
        ),
        (Method::GET, "/api/v1/rules/b-rule".into(), None),
        (Method::PUT, "/api/v1/rules/b-rule".into(), Some(change)),
        (Method::DELETE, "/api/v1/rules/b-rule".into(), None),
        (Method::GET, format!("/api/v1/alerts/{alert}"), None),
        (Method::POST, format!("/api/v1/alerts/{alert}/ack"), None),
        (
            Method::POST,
            format!("/api/v1/alerts/{alert}/snooze"),
            Some(snooze),
        ),
        (Method::DELETE, format!("/api/v1/api-keys/{key_id}"), None),
        (Method::GET, format!("/api/v1/users/{user_id}"), None),
        (
            Method::PATCH,
            format!("/api/v1/users/{user_id}"),
            Some(json!({"active": false})),
        ),
        (
            Method::DELETE,
            format!("/api/v1/sessions/{session_id}"),
            None,
        ),
    ];
    for (method, path, body) in &cases {
        let (s, answer) = app.call(method.clone(), path, &a, body.as_ref()).await;
        assert_eq!(
            s, 404,
            "{method} {path} with tenant A's admin token: {answer}"
        );
        assert_eq!(
            answer["error"]["code"],
            json!("not_found"),
            "{method} {path}"
        );
    }
    // With A's API key, the reads answer 404 too.
    for path in [
        "/api/v1/machines/b-press/readings".to_owned(),
        "/api/v1/rules/b-rule".into(),
        format!("/api/v1/alerts/{alert}"),
    ] {
        let r = app
            .client
            .get(format!("{}{path}", app.url))
            .header("x-api-key", &a_secret)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{path} with tenant A's key");
    }
    // A's key cannot write B's machine: it does not exist for A.
    let reading = json!({"readings": [{"machine": "b-press", "metric": "t", "ts": 1_795_687_200_000_i64, "value": 1.0}]});
    let r = app
        .client
        .post(format!("{}/api/v1/ingest", app.url))
        .header("x-api-key", &a_secret)
        .json(&reading)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);

    // No list of A shows B's rows.
    for (path, field) in [
        ("/api/v1/machines", "machines"),
        ("/api/v1/alerts", "alerts"),
        ("/api/v1/api-keys", "api_keys"),
        ("/api/v1/users", "users"),
        ("/api/v1/sessions", "sessions"),
    ] {
        let (s, list) = app.call(Method::GET, path, &a, None).await;
        assert_eq!(s, 200, "{path}");
        let text = list.to_string();
        for secret_of_b in [
            machine_id.to_string(),
            alert.to_string(),
            key_id.clone(),
            user_id.clone(),
            session_id.clone(),
        ] {
            assert!(
                !text.contains(&secret_of_b),
                "{path} leaks {secret_of_b}: {text}"
            );
        }
        if field == "users" || field == "api_keys" {
            assert_eq!(ids(&list, field).len(), 1, "{path}: only A's own");
        }
    }
    let (_, rules) = app.call(Method::GET, "/api/v1/rules", &a, None).await;
    assert_eq!(rules["rules"], json!([]));

    // B's resources are intact after A's attempts.
    assert_eq!(
        app.call(Method::GET, "/api/v1/rules/b-rule", &b, None)
            .await
            .0,
        200
    );
    let (_, b_users) = app.call(Method::GET, "/api/v1/users", &b, None).await;
    assert!(b_users["users"]
        .as_array()
        .unwrap()
        .iter()
        .all(|u| u["active"] == json!(true)));
    let r = app
        .client
        .get(format!("{}/api/v1/machines", app.url))
        .header("x-api-key", &b_secret)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "B's key was not revoked");
    let (_, b_alert) = app
        .call(Method::GET, &format!("/api/v1/alerts/{alert}"), &b, None)
        .await;
    assert_eq!(b_alert["id"], json!(alert));
    let (s, _) = app
        .call(
            Method::GET,
            "/api/v1/me",
            b_login["access_token"].as_str().unwrap(),
            None,
        )
        .await;
    assert_eq!(s, 200, "B's session was not revoked");
    app.stop().await;
}
