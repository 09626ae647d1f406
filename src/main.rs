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
    /// List nodes.
    Nodes(ApiArgs),
    /// List deployments.
    Deployments(ApiArgs),
    /// List noderoles.
    Noderoles {
        #[command(flatten)]
        api: ApiArgs,
        #[arg(long)]
        node: Option<String>,
        #[arg(long)]
        role: Option<String>,
        #[arg(long)]
        deployment: Option<String>,
        #[arg(long)]
        state: Option<String>,
    },
    /// List runs, newest first, with queue positions.
    Runs {
        #[command(flatten)]
        api: ApiArgs,
        #[arg(long)]
        node: Option<String>,
        #[arg(long)]
        state: Option<String>,
    },
    /// Create a deployment (under `system` unless --parent).
    CreateDeployment {
        #[command(flatten)]
        api: ApiArgs,
        name: String,
        #[arg(long)]
        parent: Option<String>,
    },
    /// Bind a role to nodes in a deployment (proposed until committed).
    Bind {
        #[command(flatten)]
        api: ApiArgs,
        deployment: String,
        role: String,
        #[arg(required = true)]
        nodes: Vec<String>,
    },
    /// Commit a deployment.
    Commit {
        #[command(flatten)]
        api: ApiArgs,
        deployment: String,
    },
    /// Retry a noderole in error.
    Retry {
        #[command(flatten)]
        api: ApiArgs,
        noderole: i64,
    },
    /// Make the database match a cluster definition file.
    Apply {
        file: PathBuf,
        /// Print what would change without writing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// Where the API is and how to authenticate.
#[derive(clap::Args)]
struct ApiArgs {
    #[arg(long, env = "KILN_URL", default_value = "http://127.0.0.1:3000")]
    url: String,
    #[arg(long, env = "KILN_TOKEN")]
    token: Option<String>,
    /// Print the API's JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// Where a benchmark runs and where its JSON goes.
#[derive(clap::Args)]
struct BenchTarget {
    /// Run on a scratch SQLite file instead of PostgreSQL.
    #[arg(long)]
    sqlite: bool,
    /// PostgreSQL server (a database on it) where the scratch database is made.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    postgres: String,
    /// Also write the numbers as JSON here.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
}

impl BenchTarget {
    fn backend(&self) -> kiln::db::Backend {
        if self.sqlite {
            kiln::db::Backend::Sqlite
        } else {
            kiln::db::Backend::Postgres
        }
    }
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
        #[command(flatten)]
        target: BenchTarget,
    },
    /// Time per transition at growing cluster sizes.
    Scale {
        /// Cluster sizes in nodes, smallest first.
        #[arg(long, value_delimiter = ',', default_value = "100,1000,10000")]
        sizes: Vec<usize>,
        #[arg(long, default_value_t = 3)]
        roles: usize,
        #[arg(long, default_value_t = 10)]
        cap: usize,
        #[command(flatten)]
        target: BenchTarget,
    },
    /// Resident memory per idle node actor.
    Memory {
        #[arg(long, default_value_t = 10000)]
        nodes: usize,
        #[command(flatten)]
        target: BenchTarget,
    },
    /// Listing every node through the API against the database's own JSON.
    Api {
        #[arg(long, default_value_t = 10000)]
        nodes: usize,
        #[arg(long, default_value_t = 5)]
        rounds: usize,
        #[command(flatten)]
        target: BenchTarget,
    },
    /// The seed's OS install on simulated machines, commit to alive.
    Seed {
        #[arg(long, default_value_t = 1000)]
        nodes: usize,
        #[arg(long, default_value_t = 10)]
        cap: usize,
        #[arg(long, default_value_t = 1000)]
        reboot_delay_ms: u64,
        #[arg(long, default_value_t = 500)]
        install_ms: u64,
        #[command(flatten)]
        target: BenchTarget,
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
    let mut settings = Settings::load(cli.config.as_deref())?;
    if let Command::Serve { simulate: true, .. } = &cli.command {
        // Simulated machines need kiln's DHCP server; on loopback it needs
        // no privileges when no port was chosen.
        settings.sim.enabled = true;
        if !settings.dhcp.enabled {
            settings.dhcp.enabled = true;
            settings.dhcp.address = "127.0.0.1".into();
            settings.dhcp.port = 0;
        }
    }
    kiln::telemetry::init(&settings.log);
    let system = actix_web::rt::System::new();
    let result = match cli.command {
        Command::Serve { cluster, .. } => system.block_on(serve(settings, cluster)),
        Command::Migrate => system.block_on(migrate(settings)),
        Command::Apply { file, dry_run } => system.block_on(apply(settings, file, dry_run)),
        Command::Bench { bench } => system.block_on(run_bench(bench)),
        other => system.block_on(api_command(other)),
    };
    kiln::app::drop_inside_a_runtime(system);
    result
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
    use kiln::bench::{anneal::AnnealParams, api::ApiParams, seed::SeedParams};
    let (report, json) = match bench {
        Bench::Anneal {
            nodes,
            roles,
            cap,
            target,
        } => {
            let params = AnnealParams {
                nodes,
                roles: roles.max(1),
                cap,
                backend: target.backend(),
                postgres_server: target.postgres.clone(),
            };
            (kiln::bench::anneal::run(&params).await?, target.json)
        }
        Bench::Scale {
            sizes,
            roles,
            cap,
            target,
        } => {
            let params = AnnealParams {
                nodes: 0,
                roles: roles.max(1),
                cap,
                backend: target.backend(),
                postgres_server: target.postgres.clone(),
            };
            (kiln::bench::scale::run(&params, &sizes).await?, target.json)
        }
        Bench::Memory { nodes, target } => (
            kiln::bench::memory::run(nodes, target.backend(), &target.postgres).await?,
            target.json,
        ),
        Bench::Api {
            nodes,
            rounds,
            target,
        } => {
            let params = ApiParams {
                nodes,
                rounds,
                backend: target.backend(),
                postgres_server: target.postgres.clone(),
            };
            (kiln::bench::api::run(&params).await?, target.json)
        }
        Bench::Seed {
            nodes,
            cap,
            reboot_delay_ms,
            install_ms,
            target,
        } => {
            let params = SeedParams {
                nodes,
                cap,
                reboot_delay_ms,
                install_ms,
                backend: target.backend(),
                postgres_server: target.postgres.clone(),
            };
            (kiln::bench::seed::run(&params).await?, target.json)
        }
    };
    report.write_json(json.as_deref())?;
    print!("{}", report.render());
    Ok(())
}

/// The commands that call a running kiln's API.
async fn api_command(command: Command) -> anyhow::Result<()> {
    use kiln::cli::{query, render, ApiClient};
    use reqwest::Method;
    use serde_json::json;
    let (api, kind, method, path, body) = match command {
        Command::Nodes(api) => (
            api,
            "nodes",
            Method::GET,
            "/nodes?limit=1000".to_string(),
            None,
        ),
        Command::Deployments(api) => (api, "deployments", Method::GET, "/deployments".into(), None),
        Command::Noderoles {
            api,
            node,
            role,
            deployment,
            state,
        } => {
            let q = query(&[
                ("node", &node),
                ("role", &role),
                ("deployment", &deployment),
                ("state", &state),
                ("limit", &Some("1000".into())),
            ]);
            (
                api,
                "noderoles",
                Method::GET,
                format!("/noderoles{q}"),
                None,
            )
        }
        Command::Runs { api, node, state } => {
            let q = query(&[("node", &node), ("state", &state)]);
            (api, "runs", Method::GET, format!("/runs{q}"), None)
        }
        Command::CreateDeployment { api, name, parent } => (
            api,
            "deployments",
            Method::POST,
            "/deployments".into(),
            Some(json!({ "name": name, "parent": parent })),
        ),
        Command::Bind {
            api,
            deployment,
            role,
            nodes,
        } => {
            let client = ApiClient::new(&api.url, api.token.clone());
            let mut bound = Vec::new();
            for node in nodes {
                let body = json!({ "node": node, "role": role, "deployment": deployment });
                bound.push(client.call(Method::POST, "/noderoles", Some(body)).await?);
            }
            let value = serde_json::Value::Array(bound);
            print_value(&api, "noderoles", &value, &render);
            return Ok(());
        }
        Command::Commit { api, deployment } => (
            api,
            "deployments",
            Method::PUT,
            format!("/deployments/{deployment}/commit"),
            None,
        ),
        Command::Retry { api, noderole } => (
            api,
            "noderoles",
            Method::PUT,
            format!("/noderoles/{noderole}/retry"),
            None,
        ),
        Command::Serve { .. }
        | Command::Migrate
        | Command::Apply { .. }
        | Command::Bench { .. } => {
            unreachable!("handled before")
        }
    };
    let client = ApiClient::new(&api.url, api.token.clone());
    let value = client.call(method, &path, body).await?;
    print_value(&api, kind, &value, &render);
    Ok(())
}

fn print_value(
    api: &ApiArgs,
    kind: &str,
    value: &serde_json::Value,
    render: &dyn Fn(&str, &serde_json::Value) -> String,
) {
    if api.json {
        println!(
            "{}",
            serde_json::to_string_pretty(value).unwrap_or_default()
        );
    } else {
        print!("{}", render(kind, value));
    }
}
