//! Private instances of Redis and PostgreSQL, started and stopped with the stack's own scripts on free
//! ports, for tests that stop a service: the shared instances other tests use are never touched.

use std::net::TcpListener;
use std::path::PathBuf;

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Redis or PostgreSQL run by `compose/lib/<script>` as an independent instance.
pub struct PrivateService {
    script: &'static str,
    instance_var: &'static str,
    port_var: &'static str,
    instance: String,
    /// The port it listens on.
    pub port: u16,
}

impl PrivateService {
    /// A private Redis (not started yet).
    pub fn redis() -> Self {
        Self::new("redis.sh", "REDIS_INSTANCE", "HALTLESS_REDIS_PORT")
    }

    /// A private PostgreSQL cluster (not started yet).
    pub fn postgres() -> Self {
        Self::new("postgres.sh", "PG_INSTANCE", "HALTLESS_PG_PORT")
    }

    fn new(script: &'static str, instance_var: &'static str, port_var: &'static str) -> Self {
        Self {
            script,
            instance_var,
            port_var,
            instance: format!("outage-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]),
            port: free_port(),
        }
    }

    /// Runs `start`, `stop` or `remove` of the script on this instance.
    pub fn run(&self, action: &str) {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../compose/lib")
            .join(self.script);
        let status = std::process::Command::new("bash")
            .arg(script)
            .arg(action)
            .env(self.instance_var, &self.instance)
            .env(self.port_var, self.port.to_string())
            .status()
            .expect("the compose script runs");
        assert!(status.success(), "{} {action} failed", self.script);
    }

    /// Its URL: Redis, or the cluster's `haltless` database.
    pub fn url(&self) -> String {
        match self.script {
            "redis.sh" => format!("redis://127.0.0.1:{}", self.port),
            _ => format!(
                "postgres://haltless:haltless@127.0.0.1:{}/haltless",
                self.port
            ),
        }
    }
}

impl Drop for PrivateService {
    fn drop(&mut self) {
        self.run("remove");
    }
}
