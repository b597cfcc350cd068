//! An email address is an identity within a tenant. Nothing a stranger can do tells them whether an
//! address has an account anywhere, and no tenant can take an address from its owner: not by inviting it,
//! not by creating a user with it. An address with accounts in several tenants names the tenant at login.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

mod common;

use common::TestApp;
use reqwest::Method;
use serde_json::{json, Value};

async fn signup(app: &TestApp, tenant: &str, email: &str, password: &str) -> (u16, Value) {
    let r = app
        .client
        .post(format!("{}/api/v1/signup", app.url))
        .json(&json!({"tenant": tenant, "email": email, "password": password}))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn login_to(app: &TestApp, email: &str, password: &str, tenant: &str) -> (u16, Value) {
    let r = app
        .client
        .post(format!("{}/api/v1/auth/login", app.url))
        .json(&json!({"email": email, "password": password, "tenant": tenant}))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

fn fresh(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

#[tokio::test]
async fn no_answer_tells_whether_an_address_has_an_account() {
    let app = TestApp::spawn(&[]).await;
    let taken = format!("{}@plant.example", fresh("owner"));
    let unknown = format!("{}@plant.example", fresh("nobody"));
    let (status, first) = signup(&app, &fresh("first"), &taken, "the owner's own password").await;
    assert_eq!(status, 201, "{first}");

    // Signing up with an address that has an account answers exactly like one that has none.
    let (status, again) = signup(&app, &fresh("again"), &taken, "someone else's password").await;
    assert_eq!(status, 201, "{again}");
    let (status, new) = signup(&app, &fresh("new"), &unknown, "someone else's password").await;
    assert_eq!(status, 201, "{new}");
    let keys = |v: &Value| {
        let mut k: Vec<String> = v["user"].as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(&again), keys(&new));

    // An admin adding a user with another tenant's address: created in the admin's tenant, no conflict.
    for password in [None, Some("a password the admin chose")] {
        let mut body = json!({"email": taken, "role": "viewer"});
        if let Some(p) = password {
            body["password"] = json!(p);
        }
        let (status, created) = app
            .call(Method::POST, "/api/v1/users", &app.admin, Some(&body))
            .await;
        if password.is_none() {
            assert_eq!(status, 201, "{created}");
        } else {
            // The invitation above already holds the address in this tenant: that is the only conflict.
            assert_eq!(status, 409, "{created}");
            assert!(created["error"]["message"]
                .as_str()
                .unwrap()
                .contains("this tenant"));
        }
    }

    // A failed login reads the same for an unknown address, a wrong password and an ambiguous address.
    let (s1, unknown_login) = app.login(&unknown, "not the password").await;
    let (s2, wrong) = app.login(&taken, "not the password").await;
    let (s3, ambiguous) = app.login(&taken, "the owner's own password").await;
    assert_eq!((s1, s2, s3), (401, 401, 401));
    assert_eq!(unknown_login, wrong);
    assert_eq!(wrong, ambiguous);
    app.stop().await;
}

#[tokio::test]
async fn no_tenant_can_take_an_address_from_its_owner() {
    let app = TestApp::spawn(&[]).await;
    let email = format!("{}@plant.example", fresh("owner"));
    // Another tenant invites the address before its owner signs up.
    let (status, invited) = app
        .call(
            Method::POST,
            "/api/v1/users",
            &app.admin,
            Some(&json!({"email": email, "role": "viewer"})),
        )
        .await;
    assert_eq!(status, 201, "{invited}");
    let own = fresh("own");
    let (status, body) = signup(&app, &own, &email, "the owner's own password").await;
    assert_eq!(status, 201, "{body}");
    // A pending invitation elsewhere is no candidate: the owner signs in without naming a tenant.
    let (status, login) = app.login(&email, "the owner's own password").await;
    assert_eq!(status, 200, "{login}");
    assert_eq!(login["user"]["tenant_id"], body["tenant"]["id"]);

    // The inviting tenant completes its invitation itself: now the address has two usable accounts, and a
    // login without a tenant is refused like a wrong password, while naming the tenant reaches each one
    // with its own password and never the other's.
    let token = invited["invite_token"].as_str().unwrap();
    let accept = app
        .client
        .post(format!("{}/api/v1/invites/accept", app.url))
        .json(&json!({"token": token, "password": "the squatter's password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(accept.status(), 200);
    let (status, _) = app.login(&email, "the owner's own password").await;
    assert_eq!(status, 401);
    let (status, login) = login_to(&app, &email, "the owner's own password", &own).await;
    assert_eq!(status, 200, "{login}");
    assert_eq!(login["user"]["tenant_id"], body["tenant"]["id"]);
    let (status, _) = login_to(&app, &email, "the squatter's password", &own).await;
    assert_eq!(
        status, 401,
        "the other account's password never opens the owner's"
    );
    let tenant_name: String = sqlx::query_scalar("SELECT name FROM tenants WHERE id = $1")
        .bind(app.tenant)
        .fetch_one(&app.iso.pool)
        .await
        .unwrap();
    let (status, login) = login_to(&app, &email, "the squatter's password", &tenant_name).await;
    assert_eq!(status, 200, "{login}");
    assert_eq!(login["user"]["tenant_id"], json!(app.tenant));
    app.stop().await;
}
