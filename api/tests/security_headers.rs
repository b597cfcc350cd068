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

/// The values of `attr="..."` in `page`.
fn attributes<'a>(page: &'a str, attr: &str) -> Vec<&'a str> {
    let marker = format!("{attr}=\"");
    page.match_indices(&marker)
        .map(|(at, _)| {
            let rest = &page[at + marker.len()..];
            &rest[..rest.find('"').unwrap()]
        })
        .collect()
}

#[tokio::test]
async fn the_docs_page_is_swagger_ui_served_from_the_binary_with_no_inline_script() {
    let app = TestApp::spawn(&[]).await;
    let r = app
        .client
        .get(format!("{}/api/v1/docs", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    let page = r.text().await.unwrap();
    for directive in [
        "script-src 'self';",
        "style-src 'self';",
        "connect-src 'self';",
    ] {
        assert!(csp.contains(directive), "{directive} in {csp}");
    }
    assert!(!csp.contains("unsafe-"), "no inline or eval: {csp}");
    assert_eq!(
        page.matches("<script").count(),
        page.matches("<script src=").count(),
        "no inline script: {page}"
    );
    // Every script and stylesheet the page names comes from this server, which has it.
    let files: Vec<&str> = attributes(&page, "src")
        .into_iter()
        .chain(attributes(&page, "href"))
        .collect();
    assert!(
        files.iter().any(|f| f.ends_with("swagger-ui-bundle.js")),
        "{page}"
    );
    for file in files {
        assert!(file.starts_with("/api/v1/docs/"), "same server: {file}");
        let r = app
            .client
            .get(format!("{}{file}", app.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{file}");
        let kind = r.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(
            kind.starts_with(if file.ends_with(".js") {
                "text/javascript"
            } else {
                "text/css"
            }),
            "{file}: {kind}"
        );
        assert!(r.bytes().await.unwrap().len() > 10, "{file}");
    }
    // The page's script points Swagger UI at this server's document, without the validator badge that
    // would call validator.swagger.io.
    let script = app
        .client
        .get(format!("{}/api/v1/docs/docs.js", app.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(script.contains("\"/api/v1/openapi.json\""), "{script}");
    assert!(script.contains("validatorUrl: null"), "{script}");
    let missing = app
        .client
        .get(format!("{}/api/v1/docs/nothing.js", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
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
