//! Every answer carries the browser security headers; the docs page keeps its own content policy.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

mod common;

use common::TestApp;

#[tokio::test]
async fn answers_carry_security_headers() {
    let app = TestApp::spawn(&[]).await;
    for path in [
        "/api/v1/machines",
        "/healthz",
        "/api/v1/nowhere",
        "/api/v1/docs",
    ] {
        let r = app
            .client
            .get(format!("{}{path}", app.url))
            .header("x-api-key", &app.key)
            .send()
            .await
            .unwrap();
        let h = r.headers();
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{path}");
        assert!(h.contains_key("strict-transport-security"), "{path}");
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        if path.ends_with("docs") {
            assert!(
                csp.contains("connect-src 'self'"),
                "the page's own policy: {csp}"
            );
        }
    }
    app.stop().await;
}
