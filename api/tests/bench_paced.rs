//! `haltless bench --phases` as a user runs it against a running platform: a line per interval with the
//! consumer lag the platform reports, and at the end every acknowledged reading stored exactly once, shed
//! requests (never acknowledged) not retried.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

mod common;

use common::TestApp;

/// The number after `prefix` in `text`.
fn number_after(text: &str, prefix: &str) -> u64 {
    let at = text
        .find(prefix)
        .unwrap_or_else(|| panic!("no `{prefix}` in:\n{text}"))
        + prefix.len();
    text[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|_| panic!("no number after `{prefix}` in:\n{text}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_paced_run_prints_the_lag_and_stores_every_acknowledged_reading_once() {
    // Two requests at a time, so that bursts are likely shed (503 `overloaded`) and left unretried.
    let app = TestApp::spawn_with(&[], |s| s.gateway.max_concurrent_requests = 2).await;
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_haltless"))
        .args(["bench", "--url", &app.url])
        .args([
            "--phases",
            "300x6,1500x2,300x2",
            "--batch",
            "50",
            "--machines",
            "4",
        ])
        .args([
            "--interval-secs",
            "2",
            "--pid",
            &std::process::id().to_string(),
        ])
        .envs(app.iso.env())
        .env("RUST_LOG", "warn")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A line per interval (the first column is the time, or `end`), with the memory of the platform's
    // process and the lag of the readings' consumers once they reported it.
    let lines: Vec<&str> = stdout
        .lines()
        .filter(|l| {
            l.split_whitespace()
                .next()
                .is_some_and(|t| t == "end" || t.parse::<u64>().is_ok())
        })
        .collect();
    assert!(lines.len() >= 4, "{stdout}");
    let memory = |l: &str| {
        let (now, peak) = l.split_whitespace().nth(9)?.split_once('/')?;
        Some((now.parse::<u64>().ok()?, peak.parse::<u64>().ok()?))
    };
    assert!(
        lines
            .iter()
            .all(|l| memory(l).is_some_and(|(now, peak)| 0 < now && now <= peak)),
        "resident/peak MiB on every line:\n{stdout}"
    );
    let with_lag = lines
        .iter()
        .filter(|l| l.contains("detectors ") && l.contains("readings projection "))
        .count();
    assert!(with_lag > 0, "no line shows the consumer lag:\n{stdout}");
    for phase in 1..=3 {
        assert!(
            stdout.contains(&format!("phase {phase} (")),
            "phase {phase} has no summary:\n{stdout}"
        );
    }
    assert!(stdout.contains("lag of detectors: "), "{stdout}");

    // Every reading was offered once; those acknowledged are exactly those stored.
    let sent = number_after(&stdout, "total: ");
    let acknowledged = number_after(&stdout, "readings sent, ");
    assert_eq!(sent, (300 * 6 + 1500 * 2 + 300 * 2) as u64, "{stdout}");
    assert!(acknowledged > 0, "{stdout}");
    assert_eq!(
        number_after(&stdout, "every acknowledged reading stored once ("),
        acknowledged,
        "{stdout}"
    );
    // The benchmark's tenant leaves nothing behind.
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM readings")
        .fetch_one(&app.iso.pool)
        .await
        .unwrap();
    assert_eq!(left, 0);
    app.stop().await;
}
