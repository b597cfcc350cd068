//! `haltless`: one binary, one subcommand per role (see `haltless --help`).

use clap::Parser as _;
use haltless_api::cli::Cli;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    haltless_api::telemetry::init_logs(cli.log_json);
    cli.run().await
}
