//! `haltless`: one binary, one subcommand per role (see `haltless --help`).

use clap::Parser as _;
use haltless_api::cli::Cli;

/// mimalloc instead of glibc's malloc for every role of the binary. Its per-thread free lists suit the
/// work here: many short-lived buffers (request bodies, decoded batches, COPY data) made on one tokio
/// worker and dropped on another. Under the paced benchmark glibc's malloc and free took about a fifth of
/// the platform process's CPU.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    haltless_api::telemetry::init_logs(cli.log_json);
    cli.run().await
}
