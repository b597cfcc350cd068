//! The command line of `haltless`: one subcommand per role, each handed to the crate that owns its work.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::builder::PossibleValuesParser;
use clap::builder::TypedValueParser as _;
use clap::{Parser, Subcommand};
use haltless_connectors::agent::{self, AgentConfig};
use haltless_connectors::direct::sealing::reseal_stored;
use haltless_processors::detection::{backtest, replay};
use haltless_processors::prediction::{command, TrainOptions};
use haltless_schemas::secrets::Keyring;
use tokio_util::sync::CancellationToken;

use crate::app::{connect_database, migrate, Application, Roles};
use crate::config::Settings;
use crate::platform::{self, Override};
use crate::telemetry;
use crate::tenants::{self, Tier};
use crate::tools::{
    bench, bench_alerts, bench_detect, bench_paced, bench_predict, bench_queries, bench_ws,
    engines, simulate,
};

/// Haltless: industrial predictive maintenance on an event-sourced stream processor.
///
/// Settings come from built-in defaults, then the file given with --config, then environment variables
/// named HALTLESS__SECTION__KEY (for example HALTLESS__DATABASE__URL, HALTLESS__KAFKA__BROKERS,
/// HALTLESS__REDIS__URL, HALTLESS__HTTP__BIND). See README.md for every setting.
#[derive(Debug, Parser)]
#[command(name = "haltless", version, propagate_version = true)]
pub struct Cli {
    /// TOML settings file, layered over the defaults and under the environment.
    #[arg(long, global = true, env = "HALTLESS_CONFIG")]
    config: Option<PathBuf>,
    /// Log as JSON lines instead of text (filter with RUST_LOG, default info).
    #[arg(long, global = true)]
    pub log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run every role in one process: ingest gateway, API, projections, retention, detectors, the RUL
    /// predictor, the alert engine and source pollers.
    All,
    /// Serve the ingest gateway: POST /api/v1/ingest (plus /healthz, /readyz, /metrics).
    Gateway,
    /// Serve the API: accounts, users, API keys, machines, readings, rules, alerts, predictions and RUL
    /// models (plus /healthz, /readyz, /metrics).
    Api,
    /// Run the projections (readings, alerts, alert actions, predictions), Kafka → PostgreSQL, exactly once,
    /// and the retention sweep (HTTP serves only health and metrics).
    Project,
    /// Run the detectors: readings in, alerts out, exactly once (HTTP serves only health and metrics).
    Process,
    /// Run the RUL predictor: readings in, remaining-useful-life predictions out, exactly once, with the
    /// model each tenant activated for each machine (HTTP serves only health and metrics).
    Predictor,
    /// Run the alert engine: escalation policies, grouping, silences and maintenance, delivery to
    /// webhooks, Slack, Teams, email and Web Push, each notification once, and the connectivity watchdog
    /// (HTTP serves only health and metrics).
    Alerting,
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
    /// Manage the keys of secrets at rest: make a key, re-seal every stored secret under the current one.
    #[command(subcommand)]
    Secrets(SecretsCommand),
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
        /// Turbofan engines (machines engine-01 …, tagged turbofan) that degrade to failure under a RUL
        /// model the simulator trains at start; needs --admin-email. 0: none.
        #[arg(long, default_value_t = 4)]
        engines: usize,
        /// Milliseconds between two cycles of an engine.
        #[arg(long, default_value_t = 2000)]
        cycle_ms: u64,
    },
    /// Benchmark ingest: readings/s through gateway → Kafka → projection, and the raw COPY ceiling of the
    /// database, against a running platform (`haltless all`).
    ///
    /// By default a closed loop: `--readings` in requests of `--batch`, `--concurrency` at a time, as fast
    /// as they are answered (shed requests retried). With `--rate` (or `--phases`) an open loop: requests
    /// leave on a schedule at the offered rate whatever the answers, a request answered 503 or 429 is
    /// counted as shed and not retried, and every `--interval-secs` a line shows offered vs accepted
    /// readings/s, the 202/503/429 answers, p50/p99 latency, rows stored, the consumer lag of the readings
    /// projection and the detectors (from the platform's /metrics) and the memory of `--pid`. The end
    /// prints, per phase, the totals, the latency of shed answers, when shedding stopped and whether lag
    /// grew (first against last third of the phase), then checks that every acknowledged reading was
    /// stored exactly once.
    ///
    /// Sustained: `haltless bench --rate 60000 --secs 600 --pid $(pgrep -f 'haltless all')`. Overload and
    /// recovery: `--phases 60000x60,180000x60,60000x60` (three times the sustainable rate in the middle).
    Bench(BenchArgs),
    /// Benchmark the detectors on Kafka with exactly-once on: readings/s, and reading-to-alert latency.
    ///
    /// Uses throw-away topics on the configured Kafka and removes them afterwards.
    BenchDetect(BenchDetectArgs),
    /// Benchmark remaining-useful-life prediction: training time, streaming inference readings/s on one
    /// core, and reading-to-prediction latency through the predictor on Kafka with exactly-once on.
    ///
    /// Uses throw-away topics on the configured Kafka and removes them afterwards.
    BenchPredict(BenchPredictArgs),
    /// Benchmark the alert engine: alert raised → webhook received, alone and beside another tenant's
    /// backlog for a receiver that answers in 5 s; and the process's memory.
    ///
    /// Uses a throw-away database and topic on the configured PostgreSQL and Kafka, removed afterwards.
    BenchAlerts(BenchAlertsArgs),
    /// Benchmark the readings queries on a month of 1 Hz data of one machine with 5 metrics: p50/p99 of a
    /// raw range, 1-minute and 1-hour buckets and the latest values, before and after continuous
    /// aggregates, and bytes per reading uncompressed and compressed.
    ///
    /// Loads the data with COPY into a throw-away database on the configured PostgreSQL, removed afterwards.
    BenchQueries(BenchQueriesArgs),
    /// Benchmark the dashboard WebSocket: many sockets on one API instance, every machine's metrics at
    /// 1 Hz; ingest 202 → socket receipt p50/p99, readings per socket, and the process's memory.
    ///
    /// Runs the gateway and the API in this process on a throw-away database and topics of the configured
    /// PostgreSQL and Kafka, removed afterwards.
    BenchWs(BenchWsArgs),
    /// Reprocess history into a new generation of detector state and alerts, then switch over.
    ///
    /// The platform keeps ingesting and detecting with the active generation meanwhile. Without --to, the
    /// new generation catches up with the live head and becomes active (its alert topic is the alerts topic
    /// with `.g<N>` appended); with --to, only [from, to) is reprocessed and the generation is kept for
    /// inspection, not made active. Times select readings by when they were written to Kafka; detection
    /// still uses each reading's event time.
    Replay(ReplayArgs),
    /// Run the detectors over recorded series and score their alerts with NAB's method.
    ///
    /// With --csv, one `timestamp,value` file (add --labels combined_windows.json for a score); with --nab,
    /// every stream of a NAB-style folder; with --machine and --metric, that metric's readings in a range of
    /// the readings topic (--from/--to, by when Kafka received them). Rules (--rules, a JSON array on the
    /// metric `value`) replace the default rule (the context detector, or drift). Results are written in
    /// NAB's results format (timestamp,value,anomaly_score,label) to --out: the score is the strongest
    /// condition's calibrated score relative to its limit, r / (1 + r), so above 0.5 where an alert is
    /// raised, and 0 while an alert is open (a reading then only extends it). With --nab it also prints
    /// the best score NAB's own threshold sweep finds over those scores, and the threshold.
    Backtest(BacktestArgs),
    /// Train a remaining-useful-life model on run-to-failure data in C-MAPSS format, and print its
    /// cross-validated RMSE, NASA score and interval coverage.
    ///
    /// The file holds one row per operating cycle: unit, cycle, 3 operational settings, 21 sensors,
    /// separated by spaces or tabs; every unit runs to failure at its last cycle. Cross-validation holds
    /// out whole units (5 folds), and also scores held-out runs cut short at random points.
    Train(TrainArgs),
    /// Predict the remaining useful life at the last cycle of each unit of a C-MAPSS-format file of
    /// partial runs: one `unit,rul` line per unit, in unit order.
    Predict(PredictArgs),
}

#[derive(Debug, clap::Args)]
struct TrainArgs {
    /// Run-to-failure data in C-MAPSS format (26 columns).
    #[arg(long)]
    cmapss: PathBuf,
    /// Where to write the model (JSON).
    #[arg(long)]
    out: PathBuf,
    /// Ceiling of the piecewise-linear target, in cycles: early life counts as this much.
    #[arg(long, default_value_t = 125.0)]
    cap: f64,
    /// Seed of the subsampling, folds and truncations (the same seed gives the same model).
    #[arg(long, default_value_t = 13)]
    seed: u64,
}

#[derive(Debug, clap::Args)]
struct PredictArgs {
    /// A model written by `haltless train`.
    #[arg(long)]
    model: PathBuf,
    /// Partial runs in C-MAPSS format (26 columns); each unit needs at least 5 cycles.
    #[arg(long)]
    cmapss: PathBuf,
    /// Add the prediction interval: `unit,rul,lower,upper`.
    #[arg(long)]
    interval: bool,
}

#[derive(Debug, clap::Args)]
struct BenchArgs {
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
    /// The platform's process id on this machine: its resident and peak memory are printed (on every line
    /// in the paced mode). In the closed loop, a `--concurrency` above the gateway's
    /// `gateway.max_concurrent_requests` measures overload: shed requests (503 `overloaded`) are counted,
    /// timed and retried after `Retry-After`; the paced mode (`--phases`) shows overload without retries.
    #[arg(long)]
    pid: Option<u32>,
    /// Time the gateway only (against `haltless gateway`, say): print its rate and latencies once every
    /// reading is acknowledged, without waiting for the projection or timing the raw `COPY` ceiling.
    #[arg(long, conflicts_with_all = ["rate", "phases"])]
    gateway_only: bool,
    /// Paced mode: offer this many readings/s for `--secs` seconds (one phase; see `--phases`).
    #[arg(long, conflicts_with_all = ["phases", "readings", "concurrency"])]
    rate: Option<u64>,
    /// Paced mode: how long `--rate` is offered, in seconds.
    #[arg(long, default_value_t = 600, requires = "rate")]
    secs: u64,
    /// Paced mode in phases, played in order: RATExSECS,... (readings/s × seconds), e.g.
    /// `60000x60,180000x60,60000x60` for an overload at three times 60,000/s between two phases at it.
    #[arg(long, value_delimiter = ',', conflicts_with_all = ["readings", "concurrency"])]
    phases: Vec<bench_paced::Phase>,
    /// Paced mode: most requests outstanding at once; past it the schedule waits for an answer (the
    /// offered rate then falls short of the target, as the lines show).
    #[arg(long, default_value_t = 256)]
    max_in_flight: usize,
    /// Paced mode: seconds between two lines.
    #[arg(long, default_value_t = 10)]
    interval_secs: u64,
}

#[derive(Debug, clap::Args)]
struct BenchPredictArgs {
    /// Train on this C-MAPSS run-to-failure file (e.g. train_FD001.txt); by default on 100 simulated engines.
    #[arg(long)]
    cmapss: Option<PathBuf>,
    /// The quick recipe (25 trees, 3 folds) instead of the full one.
    #[arg(long)]
    quick: bool,
    /// Predictions to time end to end.
    #[arg(long, default_value_t = 200)]
    latencies: usize,
}

#[derive(Debug, clap::Args)]
struct BenchDetectArgs {
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
}

#[derive(Debug, clap::Args)]
struct BenchAlertsArgs {
    /// Alerts per second of the timed tenant.
    #[arg(long, default_value_t = 100)]
    rate: u32,
    /// Seconds each phase lasts.
    #[arg(long, default_value_t = 20)]
    secs: u32,
    /// Notifications queued for the slow receiver in the second phase.
    #[arg(long, default_value_t = 10_000)]
    backlog: usize,
}

#[derive(Debug, clap::Args)]
struct BenchQueriesArgs {
    /// Days of data.
    #[arg(long, default_value_t = 30)]
    days: u32,
    /// Metrics of the machine (1 to 8), a reading each per second.
    #[arg(long, default_value_t = 5)]
    metrics: usize,
    /// Runs of each query.
    #[arg(long, default_value_t = 20)]
    runs: usize,
    /// Measure natively partitioned readings (as without TimescaleDB) instead.
    #[arg(long)]
    partitions: bool,
}

#[derive(Debug, clap::Args)]
struct BenchWsArgs {
    /// Sockets.
    #[arg(long, default_value_t = 1_000)]
    clients: usize,
    /// Machines.
    #[arg(long, default_value_t = 100)]
    machines: usize,
    /// Metrics per machine, a reading each per second.
    #[arg(long, default_value_t = 5)]
    metrics: usize,
    /// Seconds of readings.
    #[arg(long, default_value_t = 30)]
    secs: u32,
}

#[derive(Debug, clap::Args)]
struct ReplayArgs {
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
}

#[derive(Debug, clap::Args)]
struct BacktestArgs {
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
}

#[derive(Debug, Subcommand)]
enum SecretsCommand {
    /// Make a new random key-encryption key, `id:<64 hex digits>`.
    ///
    /// With --key-file, the key is put first in that file (created with mode 0600 when missing), so it
    /// becomes the current key and the older ones stay to open what they sealed; then run `haltless
    /// secrets rotate`, after which the older lines can be removed. Without it, the key is printed.
    GenerateKey {
        /// The key's id, stored beside every secret it seals (letters, digits, '-', '_').
        #[arg(long)]
        id: String,
        /// The key file to put the key in.
        #[arg(long)]
        key_file: Option<PathBuf>,
        /// With --key-file: do nothing when the file already holds a key (for scripts that run twice).
        #[arg(long, requires = "key_file")]
        if_missing: bool,
    },
    /// Re-seal every stored secret under the current key (the first of secrets.keys / secrets.key_file):
    /// plain-text secrets are sealed, older seals re-wrapped. Fails when one does not open.
    Rotate,
}

#[derive(Debug, Subcommand)]
enum TenantCommand {
    /// Create a tenant, and its first admin when --admin-email and --admin-password are given.
    Create {
        /// The tenant's name, unique on the platform.
        #[arg(long)]
        name: String,
        /// The subscription tier.
        #[arg(long, default_value = "free", value_parser = tier_parser())]
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
        #[arg(value_parser = tier_parser())]
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

impl Cli {
    /// Runs the chosen subcommand to its end (the roles until SIGINT or SIGTERM).
    pub async fn run(self) -> anyhow::Result<()> {
        let command = match self.command {
            Command::Agent => return run_agent(self.config).await,
            Command::Train(args) => return args.run(),
            Command::Predict(args) => {
                print!(
                    "{}",
                    command::predict(&args.model, &args.cmapss, args.interval)?
                );
                return Ok(());
            }
            command => command,
        };
        let settings = Settings::load(self.config.as_deref()).context("loading settings")?;
        let only = |role: fn(&mut Roles)| {
            let mut roles = Roles::default();
            role(&mut roles);
            roles
        };
        let roles = match command {
            Command::All => Roles::all(),
            Command::Gateway => only(|r| r.gateway = true),
            Command::Api => only(|r| r.api = true),
            Command::Project => only(|r| r.projection = true),
            Command::Process => only(|r| r.detector = true),
            Command::Predictor => only(|r| r.predictor = true),
            Command::Connectors => only(|r| r.connectors = true),
            Command::Alerting => only(|r| r.alerting = true),
            other => return run_tool(other, settings).await,
        };
        let app = Application::build(settings, roles).await?;
        app.run(shutdown_on_signal()).await
    }
}

/// `haltless agent`: its own site file, not the platform's settings.
async fn run_agent(config: Option<PathBuf>) -> anyhow::Result<()> {
    let path =
        config.context("the agent needs its site file: haltless agent --config site.toml")?;
    let config = AgentConfig::load(&path)?;
    let prometheus = telemetry::prometheus();
    let metrics: agent::server::RenderMetrics = Arc::new(move || prometheus.render());
    let running = agent::server::start(config, metrics, shutdown_on_signal()).await?;
    running.task.await?
}

/// The commands that run once and exit.
async fn run_tool(command: Command, settings: Settings) -> anyhow::Result<()> {
    match command {
        Command::Migrate => {
            migrated_database(&settings).await?;
            println!("migrations applied, topics ready");
        }
        Command::Tenant(command) => {
            let pool = migrated_database(&settings).await?;
            println!("{}", command.run(&pool).await?.trim_end());
        }
        Command::Secrets(command) => command.run(&settings).await?,
        Command::DemoSeed { env_file, url } => {
            let pool = migrated_database(&settings).await?;
            tenants::seed_demo(&pool, &env_file, &url).await?;
            println!("demo tenant ready; credentials in {}", env_file.display());
        }
        Command::Simulate {
            url,
            api_key,
            admin_email,
            admin_password,
            machines,
            interval_ms,
            engines: engine_count,
            cycle_ms,
        } => {
            let config = simulate::SimulatorConfig {
                url,
                api_key,
                login: admin_email.zip(admin_password),
                machines,
                interval: Duration::from_millis(interval_ms.max(1)),
            };
            let shutdown = shutdown_on_signal();
            let turbofans = match (&config.login, engine_count) {
                (Some(login), 1..) => Some(engines::EnginesConfig {
                    url: config.url.clone(),
                    api_key: config.api_key.clone(),
                    login: login.clone(),
                    engines: engine_count,
                    cycle: Duration::from_millis(cycle_ms.max(1)),
                }),
                _ => None,
            };
            let plant = simulate::run(config, shutdown.clone());
            match turbofans {
                Some(c) => {
                    tokio::try_join!(plant, engines::run(c, shutdown))?;
                }
                None => plant.await?,
            }
        }
        Command::Bench(args) => args.run(&settings).await?,
        Command::BenchDetect(args) => args.run(&settings).await?,
        Command::BenchPredict(args) => {
            let config = bench_predict::PredictBenchConfig {
                cmapss: args.cmapss,
                quick: args.quick,
                latencies: args.latencies.max(1),
            };
            bench_predict::run(&settings.kafka, config).await?
        }
        Command::BenchAlerts(args) => {
            anyhow::ensure!(
                args.rate > 0 && args.secs > 0,
                "--rate and --secs must be positive"
            );
            let config = bench_alerts::AlertBenchConfig {
                rate: args.rate,
                secs: args.secs,
                backlog: args.backlog,
            };
            bench_alerts::run(&settings, config).await?
        }
        Command::BenchQueries(args) => {
            anyhow::ensure!(
                args.days > 0 && args.runs > 0,
                "--days and --runs must be positive"
            );
            let config = bench_queries::QueryBenchConfig {
                days: args.days,
                metrics: args.metrics,
                runs: args.runs,
                partitions: args.partitions,
            };
            bench_queries::run(&settings, config).await?
        }
        Command::BenchWs(args) => {
            anyhow::ensure!(
                args.clients > 0 && args.machines > 0 && args.metrics > 0 && args.secs > 0,
                "--clients, --machines, --metrics and --secs must be positive"
            );
            let config = bench_ws::WsBenchConfig {
                clients: args.clients,
                machines: args.machines,
                metrics: args.metrics,
                secs: args.secs,
            };
            bench_ws::run(&settings, config).await?
        }
        Command::Replay(args) => args.run(&settings).await?,
        Command::Backtest(args) => backtest::run(&args.into_config(), &settings.kafka).await?,
        Command::All
        | Command::Gateway
        | Command::Api
        | Command::Project
        | Command::Process
        | Command::Predictor
        | Command::Connectors
        | Command::Alerting
        | Command::Agent
        | Command::Train(_)
        | Command::Predict(_) => anyhow::bail!("{command:?} is not run here"),
    }
    Ok(())
}

impl SecretsCommand {
    async fn run(self, settings: &Settings) -> anyhow::Result<()> {
        match self {
            SecretsCommand::GenerateKey {
                id,
                key_file,
                if_missing,
            } => {
                let entry = Keyring::generate_entry(&id)?;
                let Some(path) = key_file else {
                    println!("{entry}");
                    return Ok(());
                };
                let old = match std::fs::read_to_string(&path) {
                    Ok(text) => text,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
                    Err(e) => return Err(e).context(format!("reading {}", path.display())),
                };
                if if_missing && Keyring::parse(&old.lines().collect::<Vec<_>>()).is_ok() {
                    return Ok(());
                }
                write_private(&path, &format!("{entry}\n{old}"))?;
                println!("key `{id}` is now the current key in {}", path.display());
            }
            SecretsCommand::Rotate => {
                let keyring = settings
                    .keyring()?
                    .context("no key configured: set secrets.key_file or secrets.keys")?;
                let pool = connect_database(settings).await?;
                let done = reseal_stored(&pool, &keyring).await?;
                println!(
                    "{} secret(s) of {} source(s) re-sealed under key `{}`",
                    done.secrets,
                    done.sources,
                    keyring.current_id()
                );
                for (source, error) in &done.failed {
                    eprintln!("source {source}: {error}");
                }
                anyhow::ensure!(
                    done.failed.is_empty(),
                    "{} source(s) hold secrets the configured keys do not open",
                    done.failed.len()
                );
            }
        }
        Ok(())
    }
}

/// Writes `text` to `path`, readable by its owner only.
fn write_private(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    Ok(())
}

/// Connects to PostgreSQL, applies the migrations and creates the topics.
async fn migrated_database(settings: &Settings) -> anyhow::Result<sqlx::PgPool> {
    let pool = connect_database(settings).await?;
    migrate(settings, &pool).await?;
    Ok(pool)
}

impl BenchArgs {
    async fn run(self, settings: &Settings) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.readings > 0 && self.batch > 0 && self.concurrency > 0 && self.machines > 0,
            "every count must be positive"
        );
        let pool = connect_database(settings).await?;
        let phases = match self.rate {
            Some(rate) => vec![bench_paced::Phase {
                rate,
                secs: self.secs,
            }],
            None => self.phases,
        };
        if !phases.is_empty() {
            anyhow::ensure!(
                self.max_in_flight > 0
                    && self.interval_secs > 0
                    && phases.iter().all(|p| p.rate > 0 && p.secs > 0),
                "every count must be positive"
            );
            let config = bench_paced::PacedConfig {
                url: self.url,
                phases,
                batch: self.batch,
                max_in_flight: self.max_in_flight,
                machines: self.machines,
                pid: self.pid,
                interval: Duration::from_secs(self.interval_secs),
                metrics_token: settings.http.metrics_token.clone(),
            };
            return bench_paced::run(&pool, config).await;
        }
        let config = bench::BenchConfig {
            url: self.url,
            readings: self.readings,
            batch: self.batch,
            concurrency: self.concurrency,
            machines: self.machines,
            pid: self.pid,
            gateway_only: self.gateway_only,
            writers: settings.processors().projection.writers,
        };
        bench::run(&pool, config).await
    }
}

impl BenchDetectArgs {
    async fn run(self, settings: &Settings) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.readings > 0 && self.per_message > 0 && self.machines > 0,
            "every count must be positive"
        );
        let config = bench_detect::DetectBenchConfig {
            readings: self.readings,
            per_message: self.per_message,
            machines: self.machines,
            alerts: self.alerts,
        };
        bench_detect::run(&settings.kafka, config).await
    }
}

impl ReplayArgs {
    async fn run(self, settings: &Settings) -> anyhow::Result<()> {
        if let (Some(from), Some(to)) = (self.from, self.to) {
            anyhow::ensure!(from < to, "--from must be before --to");
        }
        let pool = migrated_database(settings).await?;
        let options = replay::ReplayOptions {
            from: self.from,
            to: self.to,
            max_lag: self.max_lag,
            progress: !self.no_progress && std::io::IsTerminal::is_terminal(&std::io::stderr()),
        };
        let outcome = replay::run(
            &settings.processors(),
            &pool,
            &options,
            shutdown_on_signal(),
        )
        .await?;
        let (g, messages, secs) = (
            outcome.generation,
            outcome.messages,
            outcome.elapsed.as_secs_f64(),
        );
        match outcome.replaced {
            Some(old) => println!(
                "generation {g} is active (replaced {old}): {messages} readings messages reprocessed in {secs:.1} s; alerts on {}",
                outcome.alerts_topic
            ),
            None => println!(
                "generation {g} kept for inspection: {messages} readings messages reprocessed in {secs:.1} s; alerts on {}",
                outcome.alerts_topic
            ),
        }
        Ok(())
    }
}

impl BacktestArgs {
    fn into_config(self) -> backtest::BacktestConfig {
        let topic = match (self.machine, self.metric) {
            (Some(machine), Some(metric)) => Some(backtest::TopicRange {
                machine,
                metric,
                tenant: self.tenant,
                from: self.from,
                to: self.to,
            }),
            _ => None,
        };
        backtest::BacktestConfig {
            csv: self.csv,
            nab: self.nab,
            labels: self.labels,
            stream: self.stream,
            rules: self.rules,
            out: self.out,
            only: self.only,
            topic,
        }
    }
}

impl TrainArgs {
    fn run(self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.cap.is_finite() && self.cap >= 10.0,
            "--cap must be at least 10 cycles"
        );
        let mut options = TrainOptions {
            cap: self.cap,
            ..TrainOptions::default()
        };
        options.params.seed = self.seed;
        println!("{}", command::train(&self.cmapss, &self.out, &options)?);
        Ok(())
    }
}

impl TenantCommand {
    async fn run(self, pool: &sqlx::PgPool) -> anyhow::Result<String> {
        Ok(match self {
            TenantCommand::Create {
                name,
                tier,
                admin_email,
                admin_password,
            } => {
                let admin = admin_email.as_deref().zip(admin_password.as_deref());
                platform::create(pool, &name, tier, admin).await?
            }
            TenantCommand::List => platform::list(pool).await?,
            TenantCommand::SetTier { tenant, tier } => {
                platform::set_tier(pool, &tenant, tier).await?
            }
            TenantCommand::SetLimits {
                tenant,
                max_machines,
                writes_per_minute,
                reads_per_minute,
            } => {
                platform::set_limits(
                    pool,
                    &tenant,
                    max_machines,
                    writes_per_minute,
                    reads_per_minute,
                )
                .await?
            }
        })
    }
}

/// The tier names, listed by `--help`.
fn tier_parser() -> impl clap::builder::TypedValueParser<Value = Tier> {
    PossibleValuesParser::new(["free", "pro", "enterprise"]).map(|name| Tier::parse(&name))
}

fn parse_time(s: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    crate::time::parse_instant(s)
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
