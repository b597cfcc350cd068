//! The Predictions group as a user meets it: bad training data is a 422 naming the problem; a model trained
//! from an upload becomes ready with its metrics; activated for a machine, it predicts that machine's
//! remaining life from its readings, counting down, raises an alert before the end, and a replacement starts
//! a new life, and its predictions reach the dashboard socket; a model trained from the tenant's history
//! needs its replacements.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

mod common;

use std::time::{Duration, Instant};

use common::TestApp;
use haltless_processors::detection::generation::Generation;
use haltless_processors::detection::replay::{self, ReplayOptions};
use haltless_processors::prediction::cmapss::{parse, simulate, SENSORS};
use reqwest::Method;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

/// Cycles come every half second (an activation applies from its time on, and the gateway refuses
/// readings more than five minutes ahead).
const CYCLE_MS: i64 = 500;

/// Polls the model until it is no longer training.
async fn trained(app: &TestApp, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let (s, m) = app
            .call(
                Method::GET,
                &format!("/api/v1/models/{id}"),
                &app.admin,
                None,
            )
            .await;
        assert_eq!(s, 200, "{m}");
        if m["status"] != "training" {
            return m;
        }
        assert!(Instant::now() < deadline, "still training: {m}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test]
async fn bad_training_data_is_refused_naming_the_problem() {
    let app = TestApp::spawn(&["m-1"]).await;
    let upload = |csv: String| json!({"name": "bad", "csv": csv, "quick": true});
    let good = simulate(4, 3);
    let row = good.lines().next().unwrap().to_owned();
    let cases = [
        (
            upload(good.replacen(&row, &row.replacen(" 100 ", " NaN ", 1), 1)),
            "line 1, column 5 (setting3): `NaN` is not a finite number",
        ),
        (
            upload(good.replacen(&row, &row[..row.rfind(' ').unwrap()], 1)),
            "line 1: expected 26 columns",
        ),
        (
            upload(simulate(2, 3)),
            "2 unit(s) in the training data; training needs at least 3",
        ),
        (
            upload(
                "unit,cycle,temp\n".to_owned()
                    + &(1..=40)
                        .map(|c| format!("1,{c},5\n2,{c},5\n3,{c},5\n"))
                        .collect::<String>(),
            ),
            "every sensor is constant",
        ),
        (
            upload("unit,cycle,temp\n1,1,5\n2,1,6\n3,1,7\n".into()),
            "unit 1 has 1 cycle(s); at least 30 are needed",
        ),
        (
            upload("unit,cycle,temp\n1,1,abc\n".into()),
            "line 2, column 3 (temp): `abc` is not a finite number",
        ),
        (json!({"name": "x"}), "give exactly one of `csv`"),
        (
            json!({"name": "x", "history": {"metrics": ["temp"]}}),
            "no maintenance event of kind replacement or repair",
        ),
    ];
    for (body, want) in cases {
        let (s, answer) = app
            .call(Method::POST, "/api/v1/models", &app.admin, Some(&body))
            .await;
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert_eq!(s, 422, "{answer}");
        assert!(message.contains(want), "want {want:?}, got {answer}");
    }
    // A failure recorded before any data of its machine.
    let (s, _) = app
        .call(
            Method::POST,
            "/api/v1/maintenance-events",
            &app.admin,
            Some(&json!({"machine": "m-1", "kind": "replacement", "performed_at": "2026-01-01T00:00:00Z"})),
        )
        .await;
    assert_eq!(s, 201);
    let (s, answer) = app
        .call(
            Method::POST,
            "/api/v1/models",
            &app.admin,
            Some(&json!({"name": "h", "history": {"metrics": ["temp"]}})),
        )
        .await;
    assert_eq!(s, 422, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("machine `m-1`: its end of life at 2026-01-01T00:00:00"),
        "{answer}"
    );
    let (_, models) = app
        .call(Method::GET, "/api/v1/models", &app.admin, None)
        .await;
    assert_eq!(models["models"], json!([]), "no job was started");
    app.stop().await;
}

#[tokio::test]
async fn an_activated_model_counts_a_machine_down_alerts_and_restarts_on_replacement() {
    let app = TestApp::spawn(&["engine-1", "engine-2"]).await;
    let (s, m) = app
        .call(
            Method::POST,
            "/api/v1/models",
            &app.admin,
            Some(&json!({"name": "turbofans", "csv": simulate(8, 21), "quick": true})),
        )
        .await;
    assert_eq!((s, m["status"].as_str()), (202, Some("training")), "{m}");
    let id = m["id"].as_str().unwrap().to_owned();
    let model = trained(&app, &id).await;
    assert_eq!(model["status"], "ready", "{model}");
    assert!(
        model["metrics"]["cv_rmse"].as_f64().unwrap() < 30.0,
        "{model}"
    );
    assert_eq!(model["units"], 8);
    let viewer = app.token_for(app.tenant, "viewer").await;
    let (s, _) = app
        .call(
            Method::POST,
            &format!("/api/v1/models/{id}/activate"),
            &viewer,
            Some(&json!({})),
        )
        .await;
    assert_eq!(s, 403, "viewers read; admins activate");
    let (s, a) = app
        .call(
            Method::POST,
            &format!("/api/v1/models/{id}/activate"),
            &app.admin,
            Some(&json!({"machines": ["engine-1"]})),
        )
        .await;
    assert_eq!((s, &a["machines"]), (200, &json!(["engine-1"])), "{a}");
    let (s, a) = app
        .call(
            Method::POST,
            &format!("/api/v1/models/{id}/activate"),
            &app.admin,
            Some(&json!({"machines": ["nope"]})),
        )
        .await;
    assert_eq!(s, 422, "{a}");

    // A replay switches detection to generation 2 before any reading arrives: the predictor's alerts follow
    // it to the new generation's alert topic, so they are projected and served like the detectors'.
    let outcome = replay::run(
        &app.iso.settings.processors(),
        &app.iso.pool,
        &ReplayOptions::default(),
        CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!(outcome.generation, Generation(2));
    // The running processes notice the switch-over within two seconds.
    tokio::time::sleep(Duration::from_secs(4)).await;

    // engine-1 and engine-2 replay an engine the model never saw, through the ingest gateway; only
    // engine-1 is served.
    let run = &parse(&simulate(1, 77)).unwrap()[0];
    let life = run.cycles.len();
    let readings = |machine: &str, from: usize, to: usize, base: i64| -> Vec<Value> {
        (from..to)
            .flat_map(|i| {
                let c = &run.cycles[i];
                let ts = base + i as i64 * CYCLE_MS;
                let machine = machine.to_owned();
                (0..3)
                    .map(move |j| (format!("setting{}", j + 1), c.settings[j]))
                    .chain((0..SENSORS).map(move |j| (format!("s{}", j + 1), c.sensors[j])))
                    .map(move |(metric, value)| json!({"machine": machine, "metric": metric, "ts": ts, "value": value}))
            })
            .collect()
    };
    // A dashboard socket following every machine sees engine-1's predictions as they are made.
    let mut ws = common::socket::connect(&app).await;
    common::socket::sign_in(&mut ws, &viewer).await;
    common::socket::command(&mut ws, json!({"type": "subscribe", "machines": "*"})).await;
    let live = tokio::spawn(async move {
        common::socket::expect(&mut ws, "prediction", Duration::from_secs(180), |m| {
            m["machine"] == "engine-1"
        })
        .await
    });
    let start_ms = chrono::Utc::now().timestamp_millis() + 1_000;
    for machine in ["engine-1", "engine-2"] {
        for chunk in readings(machine, 0, life, start_ms).chunks(2_000) {
            let r = app.ingest(&json!({ "readings": chunk })).await;
            assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
        }
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    let history = loop {
        let (s, h) = app
            .call(
                Method::GET,
                "/api/v1/machines/engine-1/predictions?limit=5000",
                &viewer,
                None,
            )
            .await;
        assert_eq!(s, 200, "{h}");
        let n = h["predictions"].as_array().unwrap().len();
        if n == life - 4 {
            break h;
        }
        assert!(Instant::now() < deadline, "{n} of {} predictions", life - 4);
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let predictions = history["predictions"].as_array().unwrap();
    let (newest, oldest) = (&predictions[0], predictions.last().unwrap());
    assert!(oldest["rul"].as_f64().unwrap() > 80.0, "{oldest}");
    assert!(newest["rul"].as_f64().unwrap() < 20.0, "{newest}");
    assert_eq!(newest["cycle"], life);
    assert_eq!(newest["model_id"], id.as_str());
    assert_eq!(newest["contributors"].as_array().unwrap().len(), 3);
    let (_, fleet) = app
        .call(Method::GET, "/api/v1/predictions", &viewer, None)
        .await;
    let ranked: Vec<&str> = fleet["machines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["machine"].as_str().unwrap())
        .collect();
    assert_eq!(ranked, ["engine-1"], "engine-2 has no model: {fleet}");
    let live = live.await.unwrap();
    assert_eq!(live["v"], 1);
    assert_eq!(live["model_id"], id.as_str(), "{live}");
    assert!(live["rul"].as_f64().unwrap() > 0.0, "{live}");
    assert!(live["lower"].as_f64() <= live["rul"].as_f64(), "{live}");

    // The remaining life fell below the default threshold (20 cycles): one alert, through the alert lifecycle.
    let deadline = Instant::now() + Duration::from_secs(60);
    let alert = loop {
        let (_, alerts) = app.call(Method::GET, "/api/v1/alerts", &viewer, None).await;
        let rul: Vec<Value> = alerts["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["detector"] == "rul")
            .cloned()
            .collect();
        if !rul.is_empty() {
            assert_eq!(rul.len(), 1, "{alerts}");
            break rul[0].clone();
        }
        assert!(Instant::now() < deadline, "no RUL alert: {alerts}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(
        (alert["machine"].as_str(), alert["state"].as_str()),
        (Some("engine-1"), Some("open")),
        "{alert}"
    );
    let generations: Vec<i32> =
        sqlx::query_scalar("SELECT generation FROM alerts WHERE id = $1::text::uuid")
            .bind(alert["id"].as_str().unwrap())
            .fetch_all(&app.iso.pool)
            .await
            .unwrap();
    assert_eq!(generations, [2], "the alert is the active generation's");

    // Hours: the cycles came half a second apart.
    let (s, _) = app
        .call(
            Method::PUT,
            "/api/v1/settings",
            &app.admin,
            Some(&json!({"ai": {"horizon_unit": "hours"}})),
        )
        .await;
    assert_eq!(s, 200);
    let (_, h) = app
        .call(
            Method::GET,
            "/api/v1/machines/engine-1/predictions?limit=1",
            &viewer,
            None,
        )
        .await;
    let p = &h["predictions"][0];
    assert_eq!(p["unit"], "hours");
    assert!(
        (p["rul"].as_f64().unwrap() - newest["rul"].as_f64().unwrap() / 7_200.0).abs() < 1e-6,
        "{p}"
    );

    // A replacement starts a new life: its first predictions count from cycle 5 again, the alert resolves.
    let replaced_ms = start_ms + life as i64 * CYCLE_MS;
    let (s, e) = app
        .call(
            Method::POST,
            "/api/v1/maintenance-events",
            &app.admin,
            Some(
                &json!({"machine": "engine-1", "kind": "replacement", "performed_at": replaced_ms.to_string()}),
            ),
        )
        .await;
    assert_eq!(s, 201, "{e}");
    for chunk in readings("engine-1", 0, 40, replaced_ms + CYCLE_MS).chunks(2_000) {
        assert_eq!(
            app.ingest(&json!({ "readings": chunk })).await.status(),
            202
        );
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, h) = app
            .call(
                Method::GET,
                "/api/v1/machines/engine-1/predictions?limit=1",
                &viewer,
                None,
            )
            .await;
        let p = &h["predictions"][0];
        if p["cycle"] == 40 {
            assert!(
                p["rul"].as_f64().unwrap() * 7_200.0 > 80.0,
                "healthy again: {p}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "{h}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (_, a) = app
        .call(
            Method::GET,
            &format!("/api/v1/alerts/{}", alert["id"].as_str().unwrap()),
            &viewer,
            None,
        )
        .await;
    assert_eq!(a["state"], "resolved", "{a}");
    app.stop().await;
}
