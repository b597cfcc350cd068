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

/// The text of the page's first inline `<tag>` block, as a browser hashes it.
fn inline<'a>(page: &'a str, tag: &str) -> &'a str {
    let start = page.find(&format!("<{tag}>")).unwrap() + tag.len() + 2;
    let end = start + page[start..].find(&format!("</{tag}>")).unwrap();
    &page[start..end]
}

#[tokio::test]
async fn the_docs_page_runs_its_own_script_and_no_other() {
    use base64::Engine as _;
    use sha2::Digest as _;
    let app = TestApp::spawn(&[]).await;
    let r = app
        .client
        .get(format!("{}/api/v1/docs", app.url))
        .send()
        .await
        .unwrap();
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    let page = r.text().await.unwrap();
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(page.matches("<script").count(), 1, "one script, inline");
    for (directive, tag) in [("script-src", "script"), ("style-src", "style")] {
        let digest = sha2::Sha256::digest(inline(&page, tag).as_bytes());
        let hash = base64::engine::general_purpose::STANDARD.encode(digest);
        assert!(
            csp.contains(&format!("{directive} 'sha256-{hash}';")),
            "the page's own {tag}, by its hash: {csp}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn with_a_metrics_token_only_its_bearers_read_the_metrics() {
    let app = TestApp::spawn_with(&[], |s| {
        s.http.metrics_token = Some(secrecy::SecretString::from("scrape-token-of-test"));
    })
    .await;
    let metrics = |token: Option<&str>| {
        let mut request = app.client.get(format!("{}/metrics", app.url));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        async move {
            let r = request.send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let (status, body) = metrics(None).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("http.metrics_token"), "{body}");
    assert_eq!(metrics(Some("scrape-token-of-tes")).await.0, 401);
    assert_eq!(metrics(Some(&app.key)).await.0, 401, "an API key is not it");
    let (status, body) = metrics(Some("scrape-token-of-test")).await;
    assert_eq!(status, 200);
    assert!(body.contains("haltless_"), "{body}");
    app.stop().await;
}
