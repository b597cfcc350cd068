//! Password-hash abuse: a flood of parallel guesses at one account reaches the password check at most
//! the configured number of times, bogus invitation acceptances hash nothing and are throttled per
//! address, and pooled database connections carry a statement timeout.
//!
//! One test in this file: it counts the process's argon2 runs (`haltless_auth_password_work_total`),
//! which another test logging in at the same time would disturb.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

mod common;

use common::TestApp;
use futures::future::join_all;
use serde_json::json;

/// The argon2 runs of `kind` so far, from `/metrics`.
async fn password_work(app: &TestApp, kind: &str) -> u64 {
    let text = app.metrics().await;
    let prefix = format!("haltless_auth_password_work_total{{kind=\"{kind}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0, |v| v.trim().parse::<f64>().unwrap() as u64)
}

#[tokio::test]
async fn floods_of_guesses_and_bogus_invitations_cost_bounded_password_work() {
    let app = TestApp::spawn_with(&[], |s| {
        s.auth.login_failures_per_account = 5;
        s.auth.login_failures_per_address = 1_000;
        s.auth.invite_attempts_per_address_per_hour = 50;
    })
    .await;
    let (email, password) = app.iso.user(app.tenant, "viewer").await;

    // 50 parallel wrong guesses at one account: at most 5 password checks.
    let before = password_work(&app, "verify").await;
    let guesses: Vec<String> = (0..50).map(|i| format!("wrong guess {i}")).collect();
    let answers = join_all(guesses.iter().map(|g| app.login(&email, g))).await;
    let checks = password_work(&app, "verify").await - before;
    let unauthorized = answers.iter().filter(|(s, _)| *s == 401).count();
    let throttled = answers.iter().filter(|(s, _)| *s == 429).count();
    assert_eq!(unauthorized + throttled, 50, "{answers:?}");
    assert!(
        checks <= 5,
        "{checks} password checks for 50 parallel guesses"
    );
    assert_eq!(
        unauthorized as u64, checks,
        "every 401 was a check, no 429 was"
    );
    // The right password waits too, without a check.
    assert_eq!(app.login(&email, &password).await.0, 429);
    assert_eq!(password_work(&app, "verify").await - before, checks);

    // 200 bogus invitation acceptances: no hash at all, and past 50 per address, 429.
    let hashes = password_work(&app, "hash").await;
    let mut statuses = Vec::new();
    for i in 0..200 {
        let r = app
            .client
            .post(format!("{}/api/v1/invites/accept", app.url))
            .json(&json!({"token": format!("hli_bogus{i}"), "password": "a long enough password"}))
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
    }
    assert_eq!(
        password_work(&app, "hash").await,
        hashes,
        "nothing was hashed"
    );
    assert_eq!(statuses.iter().filter(|s| **s == 404).count(), 50);
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 150);

    // Every pooled connection carries the statement timeout.
    let pool = haltless_api::app::connect_database(&app.iso.settings)
        .await
        .unwrap();
    let timeout: String = sqlx::query_scalar("SHOW statement_timeout")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(timeout, "30s");
    pool.close().await;
    app.stop().await;
}
