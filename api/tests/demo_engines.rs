//! The demo's turbofan engines as a new user meets them: the simulator trains a model at start (no data set
//! on disk), the engines' remaining life counts down, one raises an alert before its end, and its
//! replacement starts a new life.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

mod common;

use std::time::{Duration, Instant};

use common::TestApp;
use haltless_api::tools::engines::{run, EnginesConfig, TAG};
use reqwest::Method;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn engines_count_down_alert_before_their_end_and_are_replaced() {
    let app = TestApp::spawn(&[]).await;
    let login = app.iso.user(app.tenant, "admin").await;
    let shutdown = CancellationToken::new();
    // Fast cycles: the second of two engines starts halfway through its life and fails within seconds.
    let engines = tokio::spawn(run(
        EnginesConfig {
            url: app.url.clone(),
            api_key: app.key.clone(),
            login,
            engines: 2,
            cycle: Duration::from_millis(40),
        },
        shutdown.clone(),
    ));
    let deadline = Instant::now() + Duration::from_secs(240);
    let (alert, replaced) = loop {
        assert!(
            !engines.is_finished(),
            "the engines stopped: {:?}",
            engines.await
        );
        let (_, alerts) = app
            .call(Method::GET, "/api/v1/alerts", &app.admin, None)
            .await;
        let alert = alerts["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["detector"] == "rul")
            .cloned();
        let (_, events) = app
            .call(
                Method::GET,
                "/api/v1/maintenance-events?kind=replacement",
                &app.admin,
                None,
            )
            .await;
        let replaced = events["events"].as_array().unwrap().first().cloned();
        if let (Some(a), Some(r)) = (alert, replaced) {
            break (a, r);
        }
        assert!(
            Instant::now() < deadline,
            "no RUL alert and replacement yet: {alerts}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(alert["machine"], replaced["machine"], "{alert} {replaced}");
    // The alert came before the end of life.
    assert!(alert["raised_at"].as_str().unwrap() < replaced["performed_at"].as_str().unwrap());

    // Both engines are predicted, ranked by remaining life; the replaced one counts from a new life.
    let (_, machines) = app
        .call(Method::GET, "/api/v1/machines", &app.admin, None)
        .await;
    let tagged = machines["machines"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["tags"].as_array().unwrap().contains(&Value::from(TAG)))
        .count();
    assert_eq!(tagged, 2);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, fleet) = app
            .call(Method::GET, "/api/v1/predictions", &app.admin, None)
            .await;
        let ranked = fleet["machines"].as_array().unwrap();
        let renewed = ranked
            .iter()
            .find(|p| p["machine"] == replaced["machine"])
            .is_some_and(|p| {
                p["cycle"].as_i64().unwrap() < 60 && p["rul"].as_f64().unwrap() > 60.0
            });
        if ranked.len() == 2 && renewed {
            let rul: Vec<f64> = ranked.iter().map(|p| p["rul"].as_f64().unwrap()).collect();
            assert!(rul[0] <= rul[1], "{fleet}");
            break;
        }
        assert!(Instant::now() < deadline, "{fleet}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    shutdown.cancel();
    engines.await.unwrap().unwrap();
    app.stop().await;
}
