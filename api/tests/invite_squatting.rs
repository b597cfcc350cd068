//! An invitation nobody accepted does not own its email address: a tenant cannot squat an address by
//! inviting it before its owner signs up.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

mod common;

use common::TestApp;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn a_pending_invitation_gives_way_to_the_owner_signing_up() {
    let app = TestApp::spawn(&[]).await;
    let email = format!("owner-{}@plant.example", uuid::Uuid::new_v4().simple());
    let (status, invited) = app
        .call(
            Method::POST,
            "/api/v1/users",
            &app.admin,
            Some(&json!({"email": email, "role": "viewer"})),
        )
        .await;
    assert_eq!(status, 201, "{invited}");
    let token = invited["invite_token"].as_str().unwrap().to_owned();
    let signup = app
        .client
        .post(format!("{}/api/v1/signup", app.url))
        .json(
            &json!({"tenant": format!("own-{}", uuid::Uuid::new_v4()), "email": email,
                      "password": "the owner's own password"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        signup.status(),
        201,
        "the owner signs up despite the invitation"
    );
    let (status, body) = app.login(&email, "the owner's own password").await;
    assert_eq!(status, 200, "{body}");
    assert_ne!(
        body["user"]["tenant_id"],
        json!(app.tenant),
        "in their own tenant"
    );
    let accept = app
        .client
        .post(format!("{}/api/v1/invites/accept", app.url))
        .json(&json!({"token": token, "password": "the squatter's password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(accept.status(), 404, "the invitation is gone");
    // An accepted account still holds its address.
    let again = app
        .client
        .post(format!("{}/api/v1/signup", app.url))
        .json(
            &json!({"tenant": format!("other-{}", uuid::Uuid::new_v4()), "email": email,
                      "password": "someone else's password"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 409);
    app.stop().await;
}
