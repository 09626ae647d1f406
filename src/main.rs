//! The `kiln` command line: parses it and hands each command to the library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use kiln::app::{self, Application};
use kiln::settings::Settings;

/// kiln: bare-metal provisioning orchestrator.
#[derive(Parser)]
#[command(name = "kiln", version, about)]
struct Cli {
    /// Settings file layered over config/default.toml.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Migrate the database and serve the admin API.
    Serve {
        /// Cluster definition file applied at start.
        #[arg(long, value_name = "FILE")]
        cluster: Option<PathBuf>,
        /// Play a simulated machine for every non-admin node.
        #[arg(long)]
        simulate: bool,
    },
    /// Apply pending database migrations and exit.
    Migrate,
    /// Benchmarks that print numbers against a baseline from the same run.
    Bench {
        #[command(subcommand)]
        bench: kiln::bench::Benchmark,
    },
    #[command(flatten)]
    Api(kiln::cli::Command),
    /// Make the database match a cluster definition file.
    Apply {
        file: PathBuf,
        /// Print what would change without writing.
        #[arg(long)]
        dry_run: bool,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("kiln: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let mut settings = Settings::load(cli.config.as_deref())?;
    if let Command::Serve { simulate: true, .. } = &cli.command {
        settings.simulate();
    }
    kiln::telemetry::init(&settings.log);
    let system = actix_web::rt::System::new();
    system.block_on(async move {
        match cli.command {
            Command::Serve { cluster, .. } => {
                let app = Application::build_with_cluster(settings, cluster.as_deref()).await?;
                app.run_until_stopped().await.context("http server")?;
                tracing::info!("kiln stopped");
            }
            Command::Migrate => {
                app::migrate(&settings).await?;
                eprintln!("kiln: database is up to date");
            }
            Command::Apply { file, dry_run } => {
                print!("{}", app::apply(&settings, &file, dry_run).await?.render());
            }
            Command::Bench { bench } => print!("{}", bench.run().await?.render()),
            Command::Api(command) => command.run().await?,
        }
        Ok(())
    })
}
