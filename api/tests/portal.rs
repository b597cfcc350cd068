//! The portal served by the binary at `/`, with its strict content policy, and driven in headless Chromium
//! (Debian's `chromium`, through npm `playwright-core` from `api/portal/`; `compose/browser` installs the
//! browser and `compose/assets` the npm packages): sign in, the fleet lists the tenant's machines, and a
//! revoked session signs the page out. Screenshots in `target/tmp/portal-e2e/`.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

mod common;

use common::TestApp;

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
    let artefacts = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("portal-e2e");
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("portal/e2e/signin-fleet.mjs");
    let out = tokio::process::Command::new("node")
        .arg(&script)
        .arg(&app.url)
        .arg(&email)
        .arg(&password)
        .arg(machines.join(","))
        .arg(&artefacts)
        .current_dir(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("portal"))
        .output()
        .await
        .expect("node runs (Node.js 18+, and compose/assets installed the portal's npm packages)");
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(artefacts.join("fleet.png").is_file());
    app.stop().await;
}
