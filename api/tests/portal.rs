//! The portal served by the binary at `/`, with its strict content policy, and driven in headless Chromium
//! (Debian's `chromium`, through npm `playwright-core` from `api/portal/`; `compose/browser` installs the
//! browser and `compose/assets` the npm packages): sign in, the fleet lists the tenant's machines, and a
//! revoked session signs the page out; every page as an admin (a posted reading on the live chart within
//! 2 s, an alert in the inbox without reload and acked there, a work order from it, a rule previewed on
//! history), an operator (no admin pages) and a viewer (no write controls), each page screenshot and checked
//! by axe-core; the fleet's first render with 500 machines, measured. Screenshots in
//! `target/tmp/portal-e2e/` and `target/tmp/portal-pages/`.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

mod common;

use common::TestApp;
use serde_json::json;
use std::path::{Path, PathBuf};

/// Runs `node <script> <args>` in `api/portal/` and fails the test with its output unless it succeeds;
/// returns its standard output.
async fn node(script: &str, args: &[&str]) -> String {
    let portal = Path::new(env!("CARGO_MANIFEST_DIR")).join("portal");
    let out = tokio::process::Command::new("node")
        .arg(portal.join("e2e").join(script))
        .args(args)
        .current_dir(&portal)
        .output()
        .await
        .expect("node runs (Node.js 18+, and compose/assets installed the portal's npm packages)");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{script}:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn artefacts(name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(name)
}

#[tokio::test]
async fn the_portal_page_and_its_assets_come_from_the_binary_under_a_strict_policy() {
    let app = TestApp::spawn(&[]).await;
    let r = app
        .client
        .get(format!("{}/", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("script-src 'self';") && !csp.contains("unsafe-"),
        "{csp}"
    );
    let page = r.text().await.unwrap();
    let script = page
        .split("src=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    assert!(script.starts_with("/assets/"), "{page}");
    assert_eq!(
        page.matches("<script").count(),
        1,
        "no inline script: {page}"
    );
    let asset = app
        .client
        .get(format!("{}{script}", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(asset.status(), 200);
    assert!(asset.headers()["cache-control"]
        .to_str()
        .unwrap()
        .contains("immutable"));
    let missing = app
        .client
        .get(format!("{}/assets/nothing.js", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    app.stop().await;
}

#[tokio::test]
async fn in_chromium_a_user_signs_in_sees_the_fleet_and_is_signed_out_when_the_session_ends() {
    let machines = ["press-01", "lathe-02", "oven-03"];
    let app = TestApp::spawn(&machines).await;
    let (email, password) = app.iso.user(app.tenant, "viewer").await;
    let artefacts = artefacts("portal-e2e");
    node(
        "signin-fleet.mjs",
        &[
            &app.url,
            &email,
            &password,
            &machines.join(","),
            &artefacts.to_string_lossy(),
        ],
    )
    .await;
    assert!(artefacts.join("fleet.png").is_file());
    app.stop().await;
}

#[tokio::test]
async fn in_chromium_every_page_works_for_its_roles_and_passes_axe() {
    let app = TestApp::spawn(&["press-01", "lathe-02"]).await;
    let (admin, admin_pw) = app.iso.user(app.tenant, "admin").await;
    let (operator, operator_pw) = app.iso.user(app.tenant, "operator").await;
    let (viewer, viewer_pw) = app.iso.user(app.tenant, "viewer").await;
    let dir = artefacts("portal-pages");
    println!("screenshots in {}", dir.display());
    let config = json!({
        "url": app.url, "key": app.key, "machine": "press-01",
        "admin": {"email": admin, "password": admin_pw},
        "operator": {"email": operator, "password": operator_pw},
        "viewer": {"email": viewer, "password": viewer_pw},
        "artefacts": dir,
    });
    let out = node("pages.mjs", &[&config.to_string()]).await;
    println!("{out}");
    let line = |prefix: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no `{prefix}` line in {out}"))
            .to_owned()
    };
    // What the browser did, as the API sees it: the alert acked by the admin, the work order done and
    // linked to it.
    let alert = line("alert ");
    let (status, body) = app.get(&format!("/api/v1/alerts/{alert}")).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["acked_at"].is_string(), "{body}");
    assert_eq!(body["rule_name"], "Overheating", "{body}");
    let order = line("work_order ");
    let (status, body) = app
        .call(
            reqwest::Method::GET,
            &format!("/api/v1/work-orders/{order}"),
            &app.admin,
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "done", "{body}");
    assert_eq!(body["alerts"][0], alert.as_str(), "{body}");
    for page in [
        "fleet",
        "machine",
        "rule-new",
        "alerts",
        "alert",
        "work-order-new",
        "work-order",
        "work-orders",
        "rule",
        "rules",
        "predictions",
        "reports",
        "users",
        "api-keys",
        "settings",
        "operator-admin-refused",
        "viewer-fleet",
        "viewer-alert",
    ] {
        assert!(dir.join(format!("{page}.png")).is_file(), "{page}.png");
    }
    app.stop().await;
}

/// Not a timed assertion: prints how long the fleet page takes to draw 500 machines (also written to
/// `target/tmp/portal-pages/first-render-500.txt`).
#[tokio::test]
async fn in_chromium_the_fleet_first_renders_with_500_machines() {
    let names: Vec<String> = (0..500).map(|i| format!("machine-{i:03}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let app = TestApp::spawn(&refs).await;
    let (email, password) = app.iso.user(app.tenant, "viewer").await;
    let out = node(
        "first-render.mjs",
        &[
            &app.url,
            &email,
            &password,
            "500",
            &artefacts("portal-pages").to_string_lossy(),
        ],
    )
    .await;
    println!("{out}");
    assert!(
        out.contains("first render of the fleet with 500 machines"),
        "{out}"
    );
    app.stop().await;
}
