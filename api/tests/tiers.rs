//! Tier limits: Free's third machine is refused, its third ingest source and its points past the tier's
//! figures too, the 61st write of a minute gets 429 on any instance, overrides lift the limits, and
//! readings older than a tenant's retention are really deleted, from a TimescaleDB hypertable (compressed
//! chunks included) and from plain partitions alike.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

mod common;

use std::time::{Duration, Instant};

use common::{Storage, TestApp};
use haltless_api::app::{Application, Roles};
use haltless_api::auth::Scope;
use haltless_api::platform::{self, Override};
use haltless_api::tenants::{create_api_key, create_tenant, Tier};
use reqwest::Method;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

async fn free_tenant_admin(app: &TestApp, name: &str) -> (Uuid, String) {
    let tenant = create_tenant(&app.iso.pool, name, Tier::Free)
        .await
        .unwrap();
    (tenant, app.token_for(tenant, "admin").await)
}

#[tokio::test]
async fn the_free_tier_refuses_a_third_machine_until_upgraded() {
    let app = TestApp::spawn(&[]).await;
    let (_, admin) = free_tenant_admin(&app, "small-shop").await;
    for name in ["m-1", "m-2"] {
        let (s, body) = app
            .call(
                Method::POST,
                "/api/v1/machines",
                &admin,
                Some(&json!({"name": name})),
            )
            .await;
        assert_eq!(s, 201, "{body}");
    }
    let (s, body) = app
        .call(
            Method::POST,
            "/api/v1/machines",
            &admin,
            Some(&json!({"name": "m-3"})),
        )
        .await;
    assert_eq!(s, 403, "{body}");
    assert_eq!(body["error"]["code"], json!("tier_limit"));
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("free tier allows at most 2 machines"),
        "{message}"
    );
    let (_, list) = app
        .call(Method::GET, "/api/v1/machines", &admin, None)
        .await;
    assert_eq!(
        list["machines"].as_array().unwrap().len(),
        2,
        "nothing stored"
    );

    platform::set_tier(&app.iso.pool, "small-shop", Tier::Pro)
        .await
        .unwrap();
    // The tier travels with the tenant, not the token: the same token may now register a third.
    let (s, body) = app
        .call(
            Method::POST,
            "/api/v1/machines",
            &admin,
            Some(&json!({"name": "m-3"})),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    app.stop().await;
}

/// A Modbus source of `points` points on machine `m-1` (metrics `p0`, `p1`, ...).
fn source(name: &str, points: usize) -> Value {
    let points: Vec<Value> = (0..points)
        .map(|i| json!({"machine": "m-1", "metric": format!("p{i}"), "register": "holding", "address": i, "data_type": "u16"}))
        .collect();
    json!({"name": name, "protocol": "modbus_tcp", "endpoint": "plc.example.com:502", "points": points})
}

#[tokio::test]
async fn the_free_tier_refuses_a_third_source_and_points_past_its_figures() {
    let app = TestApp::spawn(&[]).await;
    let (_, admin) = free_tenant_admin(&app, "small-plant").await;
    let (s, body) = app
        .call(
            Method::POST,
            "/api/v1/machines",
            &admin,
            Some(&json!({"name": "m-1"})),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    let post = |body: Value| {
        let app = &app;
        let admin = &admin;
        async move {
            app.call(Method::POST, "/api/v1/sources", admin, Some(&body))
                .await
        }
    };

    // 50 points per source on Free: the 51st is refused, with the reason.
    let (s, body) = post(source("big", 51)).await;
    assert_eq!(s, 403, "{body}");
    assert_eq!(body["error"]["code"], "tier_limit");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("free tier allows at most 50 points per source and this definition has 51"),
        "{body}"
    );
    assert_eq!(body["error"]["details"]["limit"], 50);

    // 80 points in all: a second source of 50 would make 100.
    let (s, first) = post(source("plc-1", 50)).await;
    assert_eq!(s, 201, "{first}");
    let (s, body) = post(source("plc-2", 50)).await;
    assert_eq!(s, 403, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(
            "free tier allows at most 80 points over all sources and this tenant's would have 100"
        ),
        "{message}"
    );
    let (s, second) = post(source("plc-2", 30)).await;
    assert_eq!(s, 201, "{second}");
    // Updates: keeping or lowering the points passes, adding past a figure does not.
    let path = format!("/api/v1/sources/{}", first["id"].as_str().unwrap());
    let put = |path: String, body: Value| {
        let app = &app;
        let admin = &admin;
        async move { app.call(Method::PUT, &path, admin, Some(&body)).await }
    };
    let (s, body) = put(path.clone(), source("plc-1", 50)).await;
    assert_eq!(s, 200, "the same points: {body}");
    let (s, body) = put(path.clone(), source("plc-1", 51)).await;
    assert_eq!(s, 403, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("at most 50 points per source"),
        "{message}"
    );
    let second_path = format!("/api/v1/sources/{}", second["id"].as_str().unwrap());
    let (s, body) = put(second_path.clone(), source("plc-2", 31)).await;
    assert_eq!(s, 403, "81 in all: {body}");
    let (s, body) = put(second_path.clone(), source("plc-2", 20)).await;
    assert_eq!(s, 200, "fewer points: {body}");

    // A third source, even of one point, is refused: two sources on Free.
    let (s, body) = post(source("plc-3", 1)).await;
    assert_eq!(s, 403, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("free tier allows at most 2 ingest sources and this tenant has 2"),
        "{message}"
    );
    let (_, me) = app.call(Method::GET, "/api/v1/me", &admin, None).await;
    assert_eq!(me["tenant"]["usage"]["sources"], 2, "{me}");
    assert_eq!(me["tenant"]["usage"]["points"], 70, "{me}");
    assert_eq!(me["tenant"]["limits"]["max_points"], 80, "{me}");

    // Deleting one makes room for one, within the points left.
    let (s, _) = app.call(Method::DELETE, &second_path, &admin, None).await;
    assert_eq!(s, 204);
    let (s, body) = post(source("plc-3", 30)).await;
    assert_eq!(s, 201, "{body}");

    // Pro lifts the figures for the same token.
    platform::set_tier(&app.iso.pool, "small-plant", Tier::Pro)
        .await
        .unwrap();
    let (s, body) = post(source("plc-4", 1_000)).await;
    assert_eq!(s, 201, "{body}");
    let (s, body) = post(source("plc-5", 1_001)).await;
    assert_eq!(s, 403, "{body}");
    let (_, list) = app.call(Method::GET, "/api/v1/sources", &admin, None).await;
    let names: Vec<&str> = list["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["plc-1", "plc-3", "plc-4"],
        "nothing refused was stored"
    );
    app.stop().await;
}

/// Waits, if needed, so that at least `need` seconds remain in the current minute (the rate window).
async fn room_in_this_minute(need: u64) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    if 60 - now % 60 < need {
        tokio::time::sleep(Duration::from_secs(60 - now % 60 + 1)).await;
    }
}

fn header(r: &reqwest::Response, name: &str) -> u64 {
    r.headers()[name].to_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn the_61st_write_in_a_minute_gets_429_on_every_instance() {
    let app = TestApp::spawn(&[]).await;
    let pool = &app.iso.pool;
    let tenant = create_tenant(pool, "metered", Tier::Free).await.unwrap();
    sqlx::query("INSERT INTO machines (id, tenant_id, name) VALUES ($1, $2, 'm-1')")
        .bind(Uuid::new_v4())
        .bind(tenant)
        .execute(pool)
        .await
        .unwrap();
    let key = create_api_key(pool, tenant, "k", &[Scope::Ingest, Scope::Read])
        .await
        .unwrap()
        .secret;
    // A second instance of the API on the same database and Redis: the limit is shared.
    let second = Application::build(
        app.iso.settings.clone(),
        Roles {
            gateway: true,
            api: true,
            ..Roles::default()
        },
    )
    .await
    .unwrap();
    let second_url = format!("http://127.0.0.1:{}", second.port());
    let stop_second = CancellationToken::new();
    tokio::spawn(second.run(stop_second.clone()));

    let reading = json!({"readings": [{"machine": "m-1", "metric": "t", "ts": 1_795_687_200_000_i64, "value": 1.0}]});
    let ingest = |url: &str| {
        app.client
            .post(format!("{url}/api/v1/ingest"))
            .header("x-api-key", &key)
            .json(&reading)
            .send()
    };
    room_in_this_minute(20).await;
    for n in 1..=60_u64 {
        // Alternate the instances: both count against the one per-tenant window in Redis.
        let url = if n % 2 == 0 { &second_url } else { &app.url };
        let r = ingest(url).await.unwrap();
        assert_eq!(r.status(), 202, "write {n}");
        assert_eq!(header(&r, "x-ratelimit-limit"), 60);
        assert_eq!(header(&r, "x-ratelimit-remaining"), 60 - n);
    }
    for url in [&app.url, &second_url] {
        let r = ingest(url).await.unwrap();
        assert_eq!(r.status(), 429, "the 61st write on {url}");
        let retry = header(&r, "retry-after");
        assert!((1..=60).contains(&retry), "Retry-After {retry}");
        assert_eq!(header(&r, "x-ratelimit-remaining"), 0);
        assert!(header(&r, "x-ratelimit-reset") <= 60);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], json!("rate_limited"));
    }
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("haltless_rate_limited_total{kind=\"writes\"}"),
        "{metrics}"
    );
    // Reads have their own budget.
    let r = app
        .client
        .get(format!("{}/api/v1/machines", app.url))
        .header("x-api-key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-ratelimit-limit"), 300);
    // A platform operator's override lifts the limit at once (what the benchmark tenant uses).
    platform::set_limits(pool, "metered", None, Some(Override::Value(1_000)), None)
        .await
        .unwrap();
    let r = ingest(&app.url).await.unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(header(&r, "x-ratelimit-limit"), 1_000);
    stop_second.cancel();
    app.stop().await;
}

#[tokio::test]
async fn the_301st_read_in_a_minute_gets_429() {
    let app = TestApp::spawn(&[]).await;
    let (_, admin) = free_tenant_admin(&app, "reader").await;
    room_in_this_minute(30).await;
    for n in 1..=300 {
        let (s, _) = app
            .call(Method::GET, "/api/v1/machines", &admin, None)
            .await;
        assert_eq!(s, 200, "read {n}");
    }
    let (s, body) = app.call(Method::GET, "/api/v1/rules", &admin, None).await;
    assert_eq!(s, 429, "{body}");
    app.stop().await;
}

async fn reading_at(pool: &sqlx::PgPool, tenant: Uuid, machine: Uuid, days_ago: i32) {
    sqlx::query(
        "INSERT INTO named_readings (tenant_id, machine_id, metric, ts, value, ingested_at)
         VALUES ($1, $2, 't', now() - make_interval(days => $3), 1, now())",
    )
    .bind(tenant)
    .bind(machine)
    .bind(days_ago)
    .execute(pool)
    .await
    .unwrap();
}

async fn ages(pool: &sqlx::PgPool, tenant: Uuid) -> Vec<i32> {
    sqlx::query_scalar(
        "SELECT extract(day FROM now() - ts)::int FROM named_readings WHERE tenant_id = $1 ORDER BY ts DESC",
    )
    .bind(tenant)
    .fetch_all(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn readings_older_than_the_tiers_retention_are_deleted_per_tenant() {
    retention_task_deletes_per_tenant(Storage::Default).await;
}

#[tokio::test]
async fn readings_older_than_the_tiers_retention_are_deleted_per_tenant_on_plain_partitions() {
    retention_task_deletes_per_tenant(Storage::Partitions).await;
}

async fn retention_task_deletes_per_tenant(storage: Storage) {
    // The project role sweeps every second here (hourly by default).
    let app = TestApp::spawn_storage(storage, &[], |s| s.limits.retention_interval_secs = 1).await;
    let pool = &app.iso.pool;
    let free = create_tenant(pool, "free-keeps-7d", Tier::Free)
        .await
        .unwrap();
    let pro = create_tenant(pool, "pro-keeps-365d", Tier::Pro)
        .await
        .unwrap();
    let enterprise = create_tenant(pool, "ent-keeps-3650d", Tier::Enterprise)
        .await
        .unwrap();
    let machine = Uuid::new_v4();
    for (tenant, days) in [
        (free, vec![1, 6, 8, 30]),
        (pro, vec![8, 300, 400]),
        (enterprise, vec![400, 3_000, 3_700]),
    ] {
        for d in days {
            reading_at(pool, tenant, machine, d).await;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while ages(pool, free).await.len() > 2
        || ages(pool, pro).await.len() > 2
        || ages(pool, enterprise).await.len() > 2
    {
        assert!(
            Instant::now() < deadline,
            "the retention task did not sweep"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(ages(pool, free).await, vec![1, 6]);
    assert_eq!(ages(pool, pro).await, vec![8, 300]);
    assert_eq!(ages(pool, enterprise).await, vec![400, 3_000]);
    app.stop().await;
}

#[tokio::test]
async fn a_sweep_in_small_batches_removes_everything_due_and_nothing_else() {
    sweep_in_small_batches(Storage::Default).await;
}

#[tokio::test]
async fn a_sweep_in_small_batches_removes_everything_due_and_nothing_else_on_plain_partitions() {
    sweep_in_small_batches(Storage::Partitions).await;
}

async fn sweep_in_small_batches(storage: Storage) {
    let iso = common::Isolation::create_with_storage(storage).await;
    let pool = &iso.pool;
    let free = create_tenant(pool, "free", Tier::Free).await.unwrap();
    let pro = create_tenant(pool, "pro", Tier::Pro).await.unwrap();
    let machine = Uuid::new_v4();
    for d in [1, 6] {
        reading_at(pool, free, machine, d).await;
    }
    for d in 8..40 {
        reading_at(pool, free, machine, d).await;
        reading_at(pool, pro, machine, d).await;
    }
    let aggregated = |tenant: Uuid| async move {
        let q = "SELECT coalesce(sum(count), 0)::bigint FROM readings_1h
                 WHERE series_id IN (SELECT id FROM reading_series WHERE tenant_id = $1)";
        sqlx::query_scalar::<_, i64>(q)
            .bind(tenant)
            .fetch_one(pool)
            .await
            .unwrap()
    };
    if storage == Storage::Default {
        // Every chunk compressed, as the compression policy leaves chunks older than 3 days, and the
        // aggregates materialized, as their refresh policies leave them.
        let compressed: i64 =
            sqlx::query_scalar("SELECT count(compress_chunk(c)) FROM show_chunks('readings') c")
                .fetch_one(pool)
                .await
                .unwrap();
        assert_eq!(compressed, 34, "one chunk a day");
        common::refresh_aggregates(pool, "now() - interval '1 hour'").await;
        assert_eq!(aggregated(free).await, 34);
    }
    let report = haltless_processors::projection::retention::sweep(pool, 5)
        .await
        .unwrap();
    assert_eq!((report.deleted, report.failed), (32, 0));
    assert_eq!(ages(pool, free).await, vec![1, 6]);
    assert_eq!(ages(pool, pro).await.len(), 32, "Pro keeps a year");
    if storage == Storage::Default {
        assert_eq!(
            aggregated(free).await,
            2,
            "the hourly aggregate forgot them too"
        );
        assert_eq!(aggregated(pro).await, 32);
    }
    assert_eq!(
        haltless_processors::projection::retention::sweep(pool, 5)
            .await
            .unwrap()
            .deleted,
        0
    );
    iso.drop().await;
}

#[tokio::test]
async fn platform_operators_create_list_and_adjust_tenants() {
    let iso = common::Isolation::create().await;
    let pool = &iso.pool;
    let out = platform::create(
        pool,
        "acme",
        Tier::Pro,
        Some(("Boss@Acme.example", "correct horse battery")),
    )
    .await
    .unwrap();
    assert!(out.contains("created on the pro tier"), "{out}");
    let (role, tier): (String, String) = sqlx::query_as(
        "SELECT u.role, t.tier FROM users u JOIN tenants t ON t.id = u.tenant_id WHERE u.email = 'boss@acme.example'",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!((role.as_str(), tier.as_str()), ("admin", "pro"));
    assert!(matches!(
        platform::create(pool, "acme", Tier::Free, None).await,
        Err(platform::PlatformError::Exists(_))
    ));
    assert!(matches!(
        platform::create(pool, "weak", Tier::Free, Some(("w@x.example", "short"))).await,
        Err(platform::PlatformError::Password(_))
    ));
    assert!(
        sqlx::query_scalar::<_, Uuid>("SELECT id FROM tenants WHERE name = 'weak'")
            .fetch_optional(pool)
            .await
            .unwrap()
            .is_none(),
        "nothing half-made"
    );
    platform::set_limits(
        pool,
        "acme",
        Some(Override::Value(7)),
        Some(Override::Value(5_000)),
        None,
    )
    .await
    .unwrap();
    let table = platform::list(pool).await.unwrap();
    let line = table.lines().find(|l| l.contains("acme")).unwrap();
    assert!(
        line.contains("0/7") && line.contains("5000") && line.contains("1500"),
        "{line}"
    );
    platform::set_limits(pool, "acme", Some(Override::Tier), None, None)
        .await
        .unwrap();
    platform::set_tier(pool, "acme", Tier::Enterprise)
        .await
        .unwrap();
    let table = platform::list(pool).await.unwrap();
    let line = table.lines().find(|l| l.contains("acme")).unwrap();
    assert!(line.contains("0/10000") && line.contains("3650d"), "{line}");
    assert!(matches!(
        platform::set_tier(pool, "nobody", Tier::Pro).await,
        Err(platform::PlatformError::NoTenant(_))
    ));
    assert_eq!("tier".parse::<Override>(), Ok(Override::Tier));
    assert!("-3".parse::<Override>().is_err());
    iso.drop().await;
}
