//! `haltless`: one binary, one subcommand per role.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use haltless_api::app::{connect_database, migrate, Application, Roles};
use haltless_api::config::Settings;
use haltless_api::platform::{self, Override};
use haltless_api::tenants::Tier;
use haltless_api::{agent, backtest, bench, replay, simulate, telemetry, tenants};
use haltless_connectors::agent::AgentConfig;
use tokio_util::sync::CancellationToken;

/// Haltless: industrial predictive maintenance on an event-sourced stream processor.
///
/// Settings come from built-in defaults, then the file given with --config, then environment variables
/// named HALTLESS__SECTION__KEY (for example HALTLESS__DATABASE__URL, HALTLESS__KAFKA__BROKERS,
/// HALTLESS__REDIS__URL, HALTLESS__HTTP__BIND). See README.md for every setting.
#[derive(Debug, Parser)]
#[command(name = "haltless", version, propagate_version = true)]
struct Cli {
    /// TOML settings file, layered over the defaults and under the environment.
    #[arg(long, global = true, env = "HALTLESS_CONFIG")]
    config: Option<PathBuf>,
    /// Log as JSON lines instead of text (filter with RUST_LOG, default info).
    #[arg(long, global = true)]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run every role in one process: ingest gateway, API, projections, retention, detectors and source
    /// pollers.
    All,
    /// Serve the ingest gateway: POST /api/v1/ingest (plus /healthz, /readyz, /metrics).
    Gateway,
    /// Serve the API: accounts, users, API keys, machines, readings, rules, alerts (plus /healthz, /readyz,
    /// /metrics).
    Api,
    /// Run the projections, Kafka → PostgreSQL, exactly once, and the retention sweep (HTTP serves only
    /// health and metrics).
    Project,
    /// Run the detectors: readings in, alerts out, exactly once (HTTP serves only health and metrics).
    Process,
    /// Poll every enabled OPC-UA and Modbus TCP source into Kafka; instances share the sources
    /// (HTTP serves only health and metrics).
    Connectors,
    /// Run the edge agent: read local Modbus TCP and OPC-UA sources, buffer on disk, push to the cloud.
    ///
    /// Here --config names the agent's site file (cloud, buffer, http, sources; see README.md), not
    /// the platform's settings.
    Agent,
    /// Apply the database migrations and create the Kafka topics, then exit.
    Migrate,
    /// Manage tenants, for platform operators: create, list, change the tier, override limits.
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Create the demo tenant, its admin and an API key, and write them to an env file.
    ///
    /// Keeps the file as it is when the key in it still works.
    DemoSeed {
        /// Where to write HALTLESS_URL, HALTLESS_API_KEY, HALTLESS_ADMIN_EMAIL, HALTLESS_ADMIN_PASSWORD.
        #[arg(long, default_value = ".haltless/demo.env")]
        env_file: PathBuf,
        /// The platform's base URL, as clients should use it.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
    },
    /// Feed demo machines with readings through the ingest gateway, like an edge agent.
    Simulate {
        /// The platform's base URL.
        #[arg(long, env = "HALTLESS_URL", default_value = "http://127.0.0.1:8080")]
        url: String,
        /// An API key with the ingest scope.
        #[arg(long, env = "HALTLESS_API_KEY", hide_env_values = true)]
        api_key: String,
        /// Email of a user who may register machines (operator or admin); without it the machines must
        /// exist already.
        #[arg(long, env = "HALTLESS_ADMIN_EMAIL", requires = "admin_password")]
        admin_email: Option<String>,
        /// That user's password.
        #[arg(long, env = "HALTLESS_ADMIN_PASSWORD", hide_env_values = true)]
        admin_password: Option<String>,
        /// Machine names to feed (registered first when --admin-email is given).
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "press-01,lathe-02,pump-03"
        )]
        machines: Vec<String>,
        /// Milliseconds between two readings of a machine.
        #[arg(long, default_value_t = 1000)]
        interval_ms: u64,
    },
    /// Benchmark sustained ingest: readings/s through gateway → Kafka → projection, and the raw COPY
    /// ceiling of the database, against a running platform (`haltless all`).
    Bench {
        /// The running platform's base URL.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
        /// Total readings to send.
        #[arg(long, default_value_t = 200_000)]
        readings: usize,
        /// Readings per request.
        #[arg(long, default_value_t = 500)]
        batch: usize,
        /// Requests in flight at once.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        /// Machines the readings are spread over.
        #[arg(long, default_value_t = 20)]
        machines: usize,
    },
    /// Benchmark the detectors on Kafka with exactly-once on: readings/s, and reading-to-alert latency.
    ///
    /// Uses throw-away topics on the configured Kafka and removes them afterwards.
    BenchDetect {
        /// Readings to push through the detectors.
        #[arg(long, default_value_t = 200_000)]
        readings: usize,
        /// Readings per Kafka message.
        #[arg(long, default_value_t = 50)]
        per_message: usize,
        /// Machines the readings are spread over.
        #[arg(long, default_value_t = 50)]
        machines: usize,
        /// Alerts to time for the latency figures.
        #[arg(long, default_value_t = 100)]
        alerts: usize,
    },
    /// Reprocess history into a new generation of detector state and alerts, then switch over.
    ///
    /// The platform keeps ingesting and detecting with the active generation meanwhile. Without --to, the
    /// new generation catches up with the live head and becomes active (its alert topic is the alerts topic
    /// with `.g<N>` appended); with --to, only [from, to) is reprocessed and the generation is kept for
    /// inspection, not made active. Times select readings by when they were written to Kafka; detection
    /// still uses each reading's event time.
    Replay {
        /// Reprocess readings written from this time on (RFC 3339 or epoch ms); the topic's start if absent.
        #[arg(long, value_parser = parse_time)]
        from: Option<chrono::DateTime<chrono::Utc>>,
        /// Reprocess only readings written before this time, and keep the result for inspection.
        #[arg(long, value_parser = parse_time)]
        to: Option<chrono::DateTime<chrono::Utc>>,
        /// Switch over once at most this many readings messages remain for the detectors (the platform's
        /// detectors process them); raise it when ingest is so heavy that the replay never meets the head.
        #[arg(long, default_value_t = 0)]
        max_lag: i64,
        /// No progress bar (log lines only).
        #[arg(long)]
        no_progress: bool,
    },
    /// Run the detectors over recorded series and score their alerts with NAB's method.
    ///
    /// With --csv, one `timestamp,value` file (add --labels combined_windows.json for a score); with --nab,
    /// every stream of a NAB-style folder; with --machine and --metric, that metric's readings in a range of
    /// the readings topic (--from/--to, by when Kafka received them). Rules (--rules, a JSON array on the metric `value`) replace the
    /// default detectors (EWMA and rate of change). Results are written in NAB's results format
    /// (timestamp,value,anomaly_score,label) to --out.
    Backtest {
        /// One `timestamp,value` CSV (timestamps as `YYYY-MM-DD HH:MM:SS`, RFC 3339 or epoch ms).
        #[arg(long, conflicts_with_all = ["nab", "machine"])]
        csv: Option<PathBuf>,
        /// A machine whose readings to take from the readings topic (with --metric).
        #[arg(long, requires = "metric", conflicts_with = "nab")]
        machine: Option<String>,
        /// The metric of --machine.
        #[arg(long, requires = "machine")]
        metric: Option<String>,
        /// The tenant of --machine, when several tenants have a machine of that name.
        #[arg(long, requires = "machine")]
        tenant: Option<uuid::Uuid>,
        /// With --machine: readings written to Kafka from this time on (RFC 3339 or epoch ms).
        #[arg(long, requires = "machine", value_parser = parse_time)]
        from: Option<chrono::DateTime<chrono::Utc>>,
        /// With --machine: readings written to Kafka before this time.
        #[arg(long, requires = "machine", value_parser = parse_time)]
        to: Option<chrono::DateTime<chrono::Utc>>,
        /// A NAB-style folder holding `combined_windows.json` and `data/<group>/<stream>.csv`.
        #[arg(long)]
        nab: Option<PathBuf>,
        /// Labels for --csv or --machine, in NAB's `combined_windows.json` format.
        #[arg(long, conflicts_with = "nab")]
        labels: Option<PathBuf>,
        /// The stream's key in --labels (default: `<parent folder>/<file name>` of --csv, `<machine>/<metric>`).
        #[arg(long, requires = "labels")]
        stream: Option<String>,
        /// Rules to run instead of the default detectors: a JSON array of rules on the metric `value`.
        #[arg(long)]
        rules: Option<PathBuf>,
        /// Results: a CSV file for --csv or --machine, a folder for --nab.
        #[arg(long)]
        out: Option<PathBuf>,
        /// With --nab, only the streams whose key contains one of these texts (comma-separated).
        #[arg(long, requires = "nab", value_delimiter = ',')]
        only: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
enum TenantCommand {
    /// Create a tenant, and its first admin when --admin-email and --admin-password are given.
    Create {
        /// The tenant's name, unique on the platform.
        #[arg(long)]
        name: String,
        /// The subscription tier.
        #[arg(long, value_enum, default_value = "free")]
        tier: Tier,
        /// Email of the first admin.
        #[arg(long, requires = "admin_password")]
        admin_email: Option<String>,
        /// Password of the first admin (10 to 256 characters).
        #[arg(long, requires = "admin_email")]
        admin_password: Option<String>,
    },
    /// List every tenant with its tier, limits in force and usage.
    List,
    /// Move a tenant (by name or id) to another tier.
    SetTier {
        /// Tenant name or id.
        tenant: String,
        /// The new tier.
        #[arg(value_enum)]
        tier: Tier,
    },
    /// Override a tenant's limits (a number, or `tier` to go back to the tier's figure).
    SetLimits {
        /// Tenant name or id.
        tenant: String,
        /// Most machines.
        #[arg(long)]
        max_machines: Option<Override>,
        /// API writes per minute (an ingest request is one write).
        #[arg(long)]
        writes_per_minute: Option<Override>,
        /// API reads per minute.
        #[arg(long)]
        reads_per_minute: Option<Override>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    telemetry::init_logs(cli.log_json);
    if let Command::Agent = cli.command {
        let path = cli
            .config
            .context("the agent needs its site file: haltless agent --config site.toml")?;
        let config = AgentConfig::load(&path)?;
        let running = agent::start(config, shutdown_on_signal()).await?;
        return running.task.await?;
    }
    let settings = Settings::load(cli.config.as_deref()).context("loading settings")?;
    let roles = match cli.command {
        Command::All => Roles::all(),
        Command::Gateway => Roles {
            gateway: true,
            ..Roles::default()
        },
        Command::Api => Roles {
            api: true,
            ..Roles::default()
        },
        Command::Project => Roles {
            projection: true,
            ..Roles::default()
        },
        Command::Process => Roles {
            detector: true,
            ..Roles::default()
        },
        Command::Connectors => Roles {
            connectors: true,
            ..Roles::default()
        },
        Command::Backtest {
            csv,
            machine,
            metric,
            tenant,
            from,
            to,
            nab,
            labels,
            stream,
            rules,
            out,
            only,
        } => {
            let topic = match (machine, metric) {
                (Some(machine), Some(metric)) => Some(backtest::TopicRange {
                    machine,
                    metric,
                    tenant,
                    from,
                    to,
                }),
                _ => None,
            };
            let config = backtest::BacktestConfig {
                csv,
                nab,
                labels,
                stream,
                rules,
                out,
                only,
                topic,
            };
            return backtest::run(&config, &settings).await;
        }
        Command::BenchDetect {
            readings,
            per_message,
            machines,
            alerts,
        } => {
            anyhow::ensure!(
                readings > 0 && per_message > 0 && machines > 0,
                "every count must be positive"
            );
            let config = bench::DetectBenchConfig {
                readings,
                per_message,
                machines,
                alerts,
            };
            return bench::run_detect(&settings, config).await;
        }
        Command::Replay {
            from,
            to,
            max_lag,
            no_progress,
        } => {
            if let (Some(from), Some(to)) = (from, to) {
                anyhow::ensure!(from < to, "--from must be before --to");
            }
            let pool = connect_database(&settings).await?;
            migrate(&settings, &pool).await?;
            let options = replay::ReplayOptions {
                from,
                to,
                max_lag,
                progress: !no_progress && std::io::IsTerminal::is_terminal(&std::io::stderr()),
            };
            let outcome = replay::run(&settings, &pool, &options, shutdown_on_signal()).await?;
            match outcome.replaced {
                Some(old) => println!(
                    "generation {} is active (replaced {old}): {} readings messages reprocessed in {:.1} s; alerts on {}",
                    outcome.generation, outcome.messages, outcome.elapsed.as_secs_f64(), outcome.alerts_topic
                ),
                None => println!(
                    "generation {} kept for inspection: {} readings messages reprocessed in {:.1} s; alerts on {}",
                    outcome.generation, outcome.messages, outcome.elapsed.as_secs_f64(), outcome.alerts_topic
                ),
            }
            return Ok(());
        }
        // Handled above, before the platform's settings are read.
        Command::Agent => return Ok(()),
        Command::Migrate => {
            let pool = connect_database(&settings).await?;
            migrate(&settings, &pool).await?;
            println!("migrations applied, topics ready");
            return Ok(());
        }
        Command::Tenant(command) => {
            let pool = connect_database(&settings).await?;
            migrate(&settings, &pool).await?;
            let out = match command {
                TenantCommand::Create {
                    name,
                    tier,
                    admin_email,
                    admin_password,
                } => {
                    let admin = admin_email.as_deref().zip(admin_password.as_deref());
                    platform::create(&pool, &name, tier, admin).await?
                }
                TenantCommand::List => platform::list(&pool).await?,
                TenantCommand::SetTier { tenant, tier } => {
                    platform::set_tier(&pool, &tenant, tier).await?
                }
                TenantCommand::SetLimits {
                    tenant,
                    max_machines,
                    writes_per_minute,
                    reads_per_minute,
                } => {
                    platform::set_limits(
                        &pool,
                        &tenant,
                        max_machines,
                        writes_per_minute,
                        reads_per_minute,
                    )
                    .await?
                }
            };
            println!("{}", out.trim_end());
            return Ok(());
        }
        Command::DemoSeed { env_file, url } => {
            let pool = connect_database(&settings).await?;
            migrate(&settings, &pool).await?;
            tenants::seed_demo(&pool, &env_file, &url).await?;
            println!("demo tenant ready; credentials in {}", env_file.display());
            return Ok(());
        }
        Command::Simulate {
            url,
            api_key,
            admin_email,
            admin_password,
            machines,
            interval_ms,
        } => {
            let config = simulate::SimulatorConfig {
                url,
                api_key,
                login: admin_email.zip(admin_password),
                machines,
                interval: Duration::from_millis(interval_ms.max(1)),
            };
            return simulate::run(config, shutdown_on_signal()).await;
        }
        Command::Bench {
            url,
            readings,
            batch,
            concurrency,
            machines,
        } => {
            anyhow::ensure!(
                readings > 0 && batch > 0 && concurrency > 0 && machines > 0,
                "every count must be positive"
            );
            let pool = connect_database(&settings).await?;
            let config = bench::BenchConfig {
                url,
                readings,
                batch,
                concurrency,
                machines,
            };
            return bench::run(&pool, config).await;
        }
    };
    let app = Application::build(settings, roles).await?;
    app.run(shutdown_on_signal()).await
}

fn parse_time(s: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    haltless_api::time::parse_instant(s)
}

/// A token cancelled on SIGINT or SIGTERM.
fn shutdown_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        let term = async {
            if let Ok(mut s) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            {
                s.recv().await;
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            _ = ctrl_c => {},
            _ = term => {},
        }
        tracing::info!("shutting down");
        cancel.cancel();
    });
    token
}
