//! Third-party peers (pymodbus and asyncua devices, an aiosmtpd mail server) run as child processes.
//! `compose/peers/install` puts them in a venv under `.haltless/` the first time (CI starts from a fresh
//! machine).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};
use tokio::sync::OnceCell;

static PYTHON: OnceCell<PathBuf> = OnceCell::const_new();

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The venv's python, installing the peers on first use.
pub async fn python() -> PathBuf {
    PYTHON
        .get_or_init(|| async {
            let out = Command::new("bash")
                .arg(root().join("compose/peers/install"))
                .stderr(Stdio::inherit())
                .output()
                .await
                .expect("compose/peers/install runs");
            assert!(out.status.success(), "installing the device peers failed");
            PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
        })
        .await
        .clone()
}

/// A free TCP port on the loopback interface.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running peer, killed when dropped.
pub struct Peer {
    child: Child,
    pub port: u16,
}

impl Peer {
    /// Starts `compose/peers/<script>` with `args` and waits until it listens on `port`.
    pub async fn start(script: &str, port: u16, args: &[&str]) -> Self {
        let python = python().await;
        let log = if std::env::var("TEST_LOG").is_ok() {
            Stdio::inherit()
        } else {
            Stdio::null()
        };
        let child = Command::new(python)
            .arg(root().join("compose/peers").join(script))
            .arg("--port")
            .arg(port.to_string())
            .args(args)
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("the peer starts");
        let deadline = Instant::now() + Duration::from_secs(30);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(
                Instant::now() < deadline,
                "{script} did not listen on {port}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Self { child, port }
    }

    /// A pymodbus device (see `compose/peers/modbus_device.py`).
    pub async fn modbus(port: u16, args: &[&str]) -> Self {
        Self::start("modbus_device.py", port, args).await
    }

    /// An asyncua server (see `compose/peers/opcua_server.py`).
    pub async fn opcua(port: u16, args: &[&str]) -> Self {
        Self::start("opcua_server.py", port, args).await
    }

    /// An aiosmtpd server appending what it receives to `out` (see `compose/peers/smtp_sink.py`).
    pub async fn smtp(port: u16, out: &std::path::Path) -> Self {
        Self::start("smtp_sink.py", port, &["--out", &out.display().to_string()]).await
    }

    /// A Web Push service stand-in for `browsers` (see `compose/peers/push_service.py`): their
    /// subscriptions are written to `subscriptions`, what is pushed to them appended to `out`.
    pub async fn push(
        port: u16,
        browsers: &str,
        subscriptions: &std::path::Path,
        out: &std::path::Path,
    ) -> Self {
        let (subscriptions, out) = (
            subscriptions.display().to_string(),
            out.display().to_string(),
        );
        Self::start(
            "push_service.py",
            port,
            &[
                "--browsers",
                browsers,
                "--subscriptions",
                &subscriptions,
                "--out",
                &out,
            ],
        )
        .await
    }

    /// Stops the peer and waits until it is gone.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
        let _ = self.child.wait().await;
    }
}

/// The distinct `source` symbols (lowercased) of every batch on the test's readings topic.
pub fn sources_on_topic(iso: &super::Isolation) -> std::collections::BTreeSet<String> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
    let k = &iso.settings.kafka;
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &k.brokers)
        .set("group.id", "test-source-reader")
        .set("enable.auto.commit", "false")
        .create()
        .expect("a consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..k.partitions {
        tpl.add_partition_offset(&k.readings_topic, p, Offset::Beginning)
            .expect("a partition");
    }
    consumer.assign(&tpl).expect("assigned");
    let codec = haltless_schemas::ReadingBatch::codec(haltless_schemas::WireFormat::SingleObject)
        .expect("the codec");
    let mut out = std::collections::BTreeSet::new();
    let mut quiet = Instant::now();
    while quiet.elapsed() < Duration::from_secs(3) {
        if let Some(Ok(msg)) = consumer.poll(Duration::from_millis(200)) {
            let batch =
                haltless_schemas::ReadingBatch::decode(&codec, msg.payload().unwrap_or_default())
                    .expect("a reading batch");
            out.insert(batch.source.symbol().to_lowercase());
            quiet = Instant::now();
        }
    }
    out
}
