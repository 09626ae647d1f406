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
        bench: Bench,
    },
    /// Make the database match a cluster definition file.
    Apply {
        file: PathBuf,
        /// Print what would change without writing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Subcommand)]
enum Bench {
    /// Annealing throughput against the database's commit bound.
    Anneal {
        #[arg(long, default_value_t = 1000)]
        nodes: usize,
        #[arg(long, default_value_t = 10)]
        roles: usize,
        #[arg(long, default_value_t = 10)]
        cap: usize,
        /// Run on a scratch SQLite file instead of PostgreSQL.
        #[arg(long)]
        sqlite: bool,
        /// PostgreSQL server (a database on it) where the scratch database is made.
        #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
        postgres: String,
        /// Also write the numbers as JSON here.
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
    },
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
    let system = actix_web::rt::System::new();
    match cli.command {
        Command::Serve { cluster, simulate } => {
            if simulate {
                anyhow::bail!(
                    "--simulate: simulated machines are not available in this version of kiln"
                );
            }
            system.block_on(serve(settings, cluster))
        }
        Command::Migrate => system.block_on(migrate(settings)),
        Command::Apply { file, dry_run } => system.block_on(apply(settings, file, dry_run)),
        Command::Bench { bench } => system.block_on(run_bench(bench)),
    }
}

async fn serve(settings: Settings, cluster: Option<PathBuf>) -> anyhow::Result<()> {
    let app = Application::build_with_cluster(settings, cluster.as_deref()).await?;
    app.run_until_stopped().await.context("http server")?;
    tracing::info!("kiln stopped");
    Ok(())
}

async fn connect(settings: &Settings) -> anyhow::Result<sea_orm::DatabaseConnection> {
    let db = kiln::db::connect(&settings.database.url, settings.database.max_connections).await?;
    kiln::db::migrate(&db).await?;
    Ok(db)
}

async fn migrate(settings: Settings) -> anyhow::Result<()> {
    connect(&settings).await?;
    eprintln!("kiln: database is up to date");
    Ok(())
}

async fn apply(settings: Settings, file: PathBuf, dry_run: bool) -> anyhow::Result<()> {
    let db = connect(&settings).await?;
    let mut parsed = kiln::cluster::load(&file)?;
    if settings.cluster.builtin_roles {
        parsed = kiln::cluster::with_builtin_roles(parsed)?;
    }
    let (report, _) = kiln::cluster::apply(&db, &parsed, dry_run).await?;
    print!("{}", report.render());
    Ok(())
}

async fn run_bench(bench: Bench) -> anyhow::Result<()> {
    let Bench::Anneal {
        nodes,
        roles,
        cap,
        sqlite,
        postgres,
        json,
    } = bench;
    let params = kiln::bench::anneal::AnnealParams {
        nodes,
        roles: roles.max(1),
        cap,
        backend: if sqlite {
            kiln::db::Backend::Sqlite
        } else {
            kiln::db::Backend::Postgres
        },
        postgres_server: postgres,
    };
    let report = kiln::bench::anneal::run(&params).await?;
    report.write_json(json.as_deref())?;
    print!("{}", report.render());
    Ok(())
}
