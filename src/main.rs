//! The `kiln` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use kiln::app::Application;
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
    /// Migrate the database and serve the API (and, if enabled, DHCP/TFTP).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("kiln: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let settings = Settings::load(cli.config.as_deref())?;
    kiln::telemetry::init(&settings.log);
    match cli.command {
        Command::Serve => actix_web::rt::System::new().block_on(serve(settings)),
        Command::Migrate => actix_web::rt::System::new().block_on(migrate(settings)),
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let app = Application::build(settings).await?;
    app.run_until_stopped().await.context("http server")?;
    tracing::info!("kiln stopped");
    Ok(())
}

async fn migrate(settings: Settings) -> anyhow::Result<()> {
    let db = kiln::db::connect(&settings.database.url, settings.database.max_connections).await?;
    kiln::db::migrate(&db).await?;
    eprintln!("kiln: database is up to date");
    Ok(())
}
