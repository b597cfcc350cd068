//! Accounts on the real platform: sign-up, login, logout that refuses the token at once, refresh
//! rotation with reuse detection, login throttling, sessions, users (invitations, roles, deactivation)
//! and API keys.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

mod common;

use common::TestApp;
use reqwest::Method;
use serde_json::{json, Value};

async fn post(app: &TestApp, path: &str, body: Value) -> (u16, Value) {
    let r = app
        .client
        .post(format!("{}{path}", app.url))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn signup(app: &TestApp, tenant: &str, email: &str) -> Value {
    let (s, body) = post(
        app,
        "/api/v1/signup",
        json!({"tenant": tenant, "email": email, "password": "correct horse battery"}),
    )
    .await;
    assert_eq!(s, 201, "{body}");
    body
}

fn access(body: &Value) -> String {
    body["access_token"].as_str().unwrap().to_owned()
}

fn refresh_token(body: &Value) -> String {
    body["refresh_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn signup_login_logout_refuses_the_token_at_once() {
    let app = TestApp::spawn(&[]).await;
    let created = signup(&app, "Acme Plant", "Boss@Acme.example").await;
    assert_eq!(created["tenant"]["tier"], json!("free"));
    assert_eq!(created["user"]["role"], json!("admin"));
    assert_eq!(created["user"]["email"], json!("boss@acme.example"));
    // The same tenant name again, a weak password, a bad email: refused, nothing created.
    let again = json!({"tenant": "Acme Plant", "email": "other@acme.example", "password": "correct horse battery"});
    assert_eq!(post(&app, "/api/v1/signup", again).await.0, 409);
    let weak = json!({"tenant": "Acme 3", "email": "x@acme.example", "password": "short"});
    assert_eq!(post(&app, "/api/v1/signup", weak).await.0, 422);
    let bad =
        json!({"tenant": "Acme 4", "email": "not-an-email", "password": "correct horse battery"});
    assert_eq!(post(&app, "/api/v1/signup", bad).await.0, 422);

    let (s, body) = app.login("boss@acme.example", "wrong password!").await;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (401, Some("invalid_credentials"))
    );
    let (s, login) = app
        .login("BOSS@acme.example", "correct horse battery")
        .await;
    assert_eq!(s, 200, "{login}");
    assert_eq!(login["token_type"], json!("Bearer"));
    let token = access(&login);
    let (s, me) = app.call(Method::GET, "/api/v1/me", &token, None).await;
    assert_eq!(s, 200, "{me}");
    assert_eq!(me["user"]["role"], json!("admin"));
    assert_eq!(me["tenant"]["name"], json!("Acme Plant"));
    assert_eq!(me["tenant"]["limits"]["max_machines"], json!(2));
    let other_session = body_of_login(&app).await;

    let (s, _) = app
        .call(Method::POST, "/api/v1/auth/logout", &token, None)
        .await;
    assert_eq!(s, 204);
    let (s, body) = app.call(Method::GET, "/api/v1/me", &token, None).await;
    assert_eq!(s, 401, "a logged-out token is refused at once: {body}");
    let again = json!({"refresh_token": refresh_token(&login)});
    let (s, _) = post(&app, "/api/v1/auth/refresh", again).await;
    assert_eq!(s, 401, "the logged-out session cannot be refreshed");
    let (s, _) = app
        .call(Method::GET, "/api/v1/me", &access(&other_session), None)
        .await;
    assert_eq!(s, 200, "another session of the same user is unaffected");
    let (s, _) = app.call(Method::GET, "/api/v1/me", "not-a-jwt", None).await;
    assert_eq!(s, 401);
    let (s, _) = app.call(Method::GET, "/api/v1/machines", "", None).await;
    assert_eq!(s, 401);
    app.stop().await;
}

async fn body_of_login(app: &TestApp) -> Value {
    let (s, body) = app
        .login("boss@acme.example", "correct horse battery")
        .await;
    assert_eq!(s, 200, "{body}");
    body
}

#[tokio::test]
async fn refresh_rotates_and_a_reused_refresh_token_revokes_the_session() {
    let app = TestApp::spawn(&[]).await;
    let (email, password) = app.iso.user(app.tenant, "operator").await;
    let (_, first) = app.login(&email, &password).await;
    let r1 = refresh_token(&first);
    let (s, second) = post(&app, "/api/v1/auth/refresh", json!({"refresh_token": r1})).await;
    assert_eq!(s, 200, "{second}");
    let (r2, a2) = (refresh_token(&second), access(&second));
    assert_ne!(r1, r2, "every refresh hands out a new refresh token");
    assert_eq!(second["session_id"], first["session_id"]);
    assert_eq!(second["user"]["role"], json!("operator"));
    assert_eq!(app.call(Method::GET, "/api/v1/me", &a2, None).await.0, 200);

    // r1 is spent: presenting it again revokes the whole session, its newest tokens included.
    let (s, body) = post(&app, "/api/v1/auth/refresh", json!({"refresh_token": r1})).await;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (401, Some("invalid_refresh_token"))
    );
    assert_eq!(app.call(Method::GET, "/api/v1/me", &a2, None).await.0, 401);
    assert_eq!(
        app.call(Method::GET, "/api/v1/me", &access(&first), None)
            .await
            .0,
        401
    );
    assert_eq!(
        post(&app, "/api/v1/auth/refresh", json!({"refresh_token": r2}))
            .await
            .0,
        401
    );
    assert_eq!(
        post(
            &app,
            "/api/v1/auth/refresh",
            json!({"refresh_token": "hlr_nope"})
        )
        .await
        .0,
        401
    );
    // The session shows as revoked for reuse; a new login works.
    let (_, fresh) = app.login(&email, &password).await;
    let (s, list) = app
        .call(Method::GET, "/api/v1/sessions", &access(&fresh), None)
        .await;
    assert_eq!(s, 200);
    let old = list["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["id"] == first["session_id"])
        .unwrap();
    assert_eq!(old["revoked_reason"], json!("reuse"));
    app.stop().await;
}

#[tokio::test]
async fn failed_logins_are_throttled_per_account_and_per_address() {
    let app = TestApp::spawn_with(&[], |s| {
        s.auth.login_failures_per_account = 3;
        s.auth.login_failures_per_address = 5;
    })
    .await;
    let (email, password) = app.iso.user(app.tenant, "viewer").await;
    for _ in 0..3 {
        assert_eq!(app.login(&email, "wrong password!").await.0, 401);
    }
    let r = app
        .client
        .post(format!("{}/api/v1/auth/login", app.url))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        429,
        "even the right password waits once the account is throttled"
    );
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=900).contains(&retry), "{retry}");
    // Another account from the same address still signs in, until the address has failed 5 times.
    let (other, other_pw) = app.iso.user(app.tenant, "viewer").await;
    assert_eq!(app.login(&other, &other_pw).await.0, 200);
    for i in 0..2 {
        assert_eq!(
            app.login(&format!("ghost{i}@nowhere.example"), "whatever!!")
                .await
                .0,
            401
        );
    }
    assert_eq!(
        app.login(&other, &other_pw).await.0,
        429,
        "the address is throttled"
    );
    app.stop().await;
}

#[tokio::test]
async fn sessions_are_listed_and_revocable() {
    let app = TestApp::spawn(&[]).await;
    let (email, password) = app.iso.user(app.tenant, "viewer").await;
    let (_, laptop) = app.login(&email, &password).await;
    let (_, phone) = app.login(&email, &password).await;
    let (s, list) = app
        .call(Method::GET, "/api/v1/sessions", &access(&laptop), None)
        .await;
    assert_eq!(s, 200);
    let sessions = list["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2);
    assert_eq!(
        sessions
            .iter()
            .filter(|x| x["current"] == json!(true))
            .count(),
        1
    );
    let phone_session = phone["session_id"].as_str().unwrap();
    let path = format!("/api/v1/sessions/{phone_session}");
    assert_eq!(
        app.call(Method::DELETE, &path, &access(&laptop), None)
            .await
            .0,
        204
    );
    assert_eq!(
        app.call(Method::GET, "/api/v1/me", &access(&phone), None)
            .await
            .0,
        401
    );
    assert_eq!(
        post(
            &app,
            "/api/v1/auth/refresh",
            json!({"refresh_token": refresh_token(&phone)})
        )
        .await
        .0,
        401
    );
    assert_eq!(
        app.call(Method::GET, "/api/v1/me", &access(&laptop), None)
            .await
            .0,
        200
    );
    // Someone else's session is not found, not forbidden.
    let path = format!(
        "/api/v1/sessions/{}",
        laptop["session_id"].as_str().unwrap()
    );
    assert_eq!(
        app.call(Method::DELETE, &path, &app.admin, None).await.0,
        404
    );
    app.stop().await;
}

#[tokio::test]
async fn admins_invite_users_change_roles_and_deactivate_them() {
    let app = TestApp::spawn(&[]).await;
    // A user with a password signs in at once.
    let body =
        json!({"email": "op@plant.example", "role": "operator", "password": "operator password"});
    let (s, op) = app
        .call(Method::POST, "/api/v1/users", &app.admin, Some(&body))
        .await;
    assert_eq!(s, 201, "{op}");
    assert!(op.get("invite_token").is_none());
    let (s, login) = app.login("op@plant.example", "operator password").await;
    assert_eq!(s, 200);
    let op_token = access(&login);
    let m = json!({"name": "press-1"});
    assert_eq!(
        app.call(Method::POST, "/api/v1/machines", &op_token, Some(&m))
            .await
            .0,
        201
    );
    assert_eq!(
        app.call(Method::GET, "/api/v1/users", &op_token, None)
            .await
            .0,
        403
    );

    // An invited user cannot sign in until the invitation is accepted, and only once.
    let body = json!({"email": "viewer@plant.example", "role": "viewer"});
    let (s, invited) = app
        .call(Method::POST, "/api/v1/users", &app.admin, Some(&body))
        .await;
    assert_eq!(s, 201, "{invited}");
    assert_eq!(invited["invitation_pending"], json!(true));
    let invite = invited["invite_token"].as_str().unwrap();
    assert_eq!(app.login("viewer@plant.example", "!").await.0, 401);
    let accept = json!({"token": invite, "password": "viewer password"});
    assert_eq!(
        post(&app, "/api/v1/invites/accept", accept.clone()).await.0,
        200
    );
    assert_eq!(post(&app, "/api/v1/invites/accept", accept).await.0, 404);
    assert_eq!(
        app.login("viewer@plant.example", "viewer password").await.0,
        200
    );
    let (_, users) = app
        .call(Method::GET, "/api/v1/users", &app.admin, None)
        .await;
    assert_eq!(users["users"].as_array().unwrap().len(), 3);

    // Demoting the operator refuses their current token at once; a refresh carries the new role.
    let path = format!("/api/v1/users/{}", op["id"].as_str().unwrap());
    let (s, changed) = app
        .call(
            Method::PATCH,
            &path,
            &app.admin,
            Some(&json!({"role": "viewer"})),
        )
        .await;
    assert_eq!((s, &changed["role"]), (200, &json!("viewer")));
    assert_eq!(
        app.call(Method::GET, "/api/v1/machines", &op_token, None)
            .await
            .0,
        401
    );
    let (s, refreshed) = post(
        &app,
        "/api/v1/auth/refresh",
        json!({"refresh_token": refresh_token(&login)}),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(refreshed["user"]["role"], json!("viewer"));
    let m = json!({"name": "press-2"});
    assert_eq!(
        app.call(
            Method::POST,
            "/api/v1/machines",
            &access(&refreshed),
            Some(&m)
        )
        .await
        .0,
        403
    );

    // Deactivation ends every session: tokens, refresh and login are refused.
    let (s, _) = app
        .call(
            Method::PATCH,
            &path,
            &app.admin,
            Some(&json!({"active": false})),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        app.call(Method::GET, "/api/v1/machines", &access(&refreshed), None)
            .await
            .0,
        401
    );
    assert_eq!(
        post(
            &app,
            "/api/v1/auth/refresh",
            json!({"refresh_token": refresh_token(&refreshed)})
        )
        .await
        .0,
        401
    );
    assert_eq!(
        app.login("op@plant.example", "operator password").await.0,
        401
    );

    // The last admin cannot demote or deactivate themselves; bad roles are refused.
    let (_, me) = app.call(Method::GET, "/api/v1/me", &app.admin, None).await;
    let me_path = format!("/api/v1/users/{}", me["user"]["id"].as_str().unwrap());
    let (s, body) = app
        .call(
            Method::PATCH,
            &me_path,
            &app.admin,
            Some(&json!({"active": false})),
        )
        .await;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (409, Some("last_admin"))
    );
    let (s, _) = app
        .call(
            Method::PATCH,
            &me_path,
            &app.admin,
            Some(&json!({"role": "root"})),
        )
        .await;
    assert_eq!(s, 422);
    assert_eq!(
        app.call(Method::GET, "/api/v1/me", &app.admin, None)
            .await
            .0,
        200
    );
    app.stop().await;
}

async fn with_key(
    app: &TestApp,
    method: Method,
    path: &str,
    key: &str,
    body: Option<&Value>,
) -> u16 {
    let mut req = app
        .client
        .request(method, format!("{}{path}", app.url))
        .header("x-api-key", key);
    if let Some(b) = body {
        req = req.json(b);
    }
    req.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn api_keys_are_shown_once_scoped_restricted_and_revoked_at_once() {
    let app = TestApp::spawn(&["press-1", "press-2"]).await;
    let body = json!({"name": "edge agent", "scopes": ["ingest"], "machines": ["press-1"]});
    let (s, key) = app
        .call(Method::POST, "/api/v1/api-keys", &app.admin, Some(&body))
        .await;
    assert_eq!(s, 201, "{key}");
    let secret = key["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with(key["prefix"].as_str().unwrap()));
    assert_eq!(key["machines"], json!(["press-1"]));
    let (_, list) = app
        .call(Method::GET, "/api/v1/api-keys", &app.admin, None)
        .await;
    let listed = list["api_keys"].as_array().unwrap();
    assert_eq!(listed.len(), 2, "the harness key and this one");
    assert!(
        !list.to_string().contains(&secret),
        "the secret is never listed"
    );

    let reading = |m: &str| json!({"readings": [{"machine": m, "metric": "t", "ts": 1_795_687_200_000_i64, "value": 1.0}]});
    assert_eq!(
        with_key(
            &app,
            Method::POST,
            "/api/v1/ingest",
            &secret,
            Some(&reading("press-1"))
        )
        .await,
        202
    );
    assert_eq!(
        with_key(
            &app,
            Method::POST,
            "/api/v1/ingest",
            &secret,
            Some(&reading("press-2"))
        )
        .await,
        403
    );
    assert_eq!(
        with_key(&app, Method::GET, "/api/v1/machines", &secret, None).await,
        403,
        "no read scope"
    );
    for bad in [
        json!({"name": "x", "scopes": []}),
        json!({"name": "x", "scopes": ["admin"]}),
        json!({"name": "x", "scopes": ["read"], "machines": ["ghost"]}),
    ] {
        assert_eq!(
            app.call(Method::POST, "/api/v1/api-keys", &app.admin, Some(&bad))
                .await
                .0,
            422,
            "{bad}"
        );
    }
    let path = format!("/api/v1/api-keys/{}", key["id"].as_str().unwrap());
    assert_eq!(
        app.call(Method::DELETE, &path, &app.admin, None).await.0,
        204
    );
    assert_eq!(
        with_key(
            &app,
            Method::POST,
            "/api/v1/ingest",
            &secret,
            Some(&reading("press-1"))
        )
        .await,
        401
    );
    app.stop().await;
}

#[tokio::test]
async fn a_token_logged_out_on_one_instance_is_refused_by_another_at_once() {
    let secret = "a-shared-secret-of-at-least-32-bytes!!";
    let app = TestApp::spawn_with(&[], |s| {
        s.auth.jwt_secret = secrecy::SecretString::from(secret)
    })
    .await;
    let second = haltless_api::app::Application::build(
        app.iso.settings.clone(),
        haltless_api::app::Roles {
            api: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let second_url = format!("http://127.0.0.1:{}", second.port());
    let stop = tokio_util::sync::CancellationToken::new();
    tokio::spawn(second.run(stop.clone()));
    let me_on = |url: String, token: String| {
        let client = app.client.clone();
        async move {
            client
                .get(format!("{url}/api/v1/me"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    let (email, password) = app.iso.user(app.tenant, "viewer").await;
    let (_, login) = app.login(&email, &password).await;
    let token = access(&login);
    assert_eq!(me_on(second_url.clone(), token.clone()).await, 200);
    let (s, _) = app
        .call(Method::POST, "/api/v1/auth/logout", &token, None)
        .await;
    assert_eq!(s, 204);
    assert_eq!(me_on(second_url, token).await, 401);
    stop.cancel();
    app.stop().await;
}
