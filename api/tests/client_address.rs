//! The client's address behind a trusted proxy: the rightmost `X-Forwarded-For` hop that is not a trusted
//! proxy, so a client that writes its own leftmost entries cannot pass for another address and escape the
//! per-address login throttle.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

mod common;

use common::TestApp;
use serde_json::json;

#[tokio::test]
async fn a_spoofed_leftmost_forwarded_for_entry_does_not_reset_the_address_counter() {
    // The test client reaches the API from 127.0.0.1, the proxy here.
    let app = TestApp::spawn_with(&[], |s| {
        s.auth.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
        s.auth.login_failures_per_address = 3;
        s.auth.login_failures_per_account = 1_000;
    })
    .await;
    let login = |forwarded: String, n: usize| {
        let app = &app;
        async move {
            app.client
                .post(format!("{}/api/v1/auth/login", app.url))
                .header("x-forwarded-for", forwarded)
                .json(&json!({"email": format!("ghost{n}@nowhere.example"), "password": "wrong password!"}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    // The client at 198.51.100.7 writes a new address of its own before the proxy's entry each time.
    for n in 0..3 {
        assert_eq!(login(format!("10.{n}.0.1, 198.51.100.7"), n).await, 401);
    }
    assert_eq!(
        login("203.0.113.99, 198.51.100.7".into(), 9).await,
        429,
        "the spoofed entry changed nothing: the address is throttled"
    );
    // Another client behind the same proxy is its own address.
    assert_eq!(login("198.51.100.8".into(), 10).await, 401);
    app.stop().await;
}
