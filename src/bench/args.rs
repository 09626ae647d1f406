//! `kiln bench`'s command line: each benchmark's arguments, turned into the
//! parameters its `run` takes.

use std::path::PathBuf;

use super::{anneal::AnnealParams, api::ApiParams, seed::SeedParams, BenchError, Report};
use crate::db::Backend;

/// Where a benchmark runs and where its JSON goes.
#[derive(clap::Args)]
pub struct BenchTarget {
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
    fn backend(&self) -> Backend {
        if self.sqlite {
            Backend::Sqlite
        } else {
            Backend::Postgres
        }
    }
}

/// The benchmarks, as `kiln bench <name>` names them.
#[derive(clap::Subcommand)]
pub enum Benchmark {
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

impl Benchmark {
    /// Runs the benchmark and writes its JSON when `--json` asked for it.
    /// The report comes back for the caller to print, because only `main`
    /// and `cli` print.
    pub async fn run(self) -> Result<Report, BenchError> {
        let (report, json) = match self {
            Benchmark::Anneal {
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
                (super::anneal::run(&params).await?, target.json)
            }
            Benchmark::Scale {
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
                (super::scale::run(&params, &sizes).await?, target.json)
            }
            Benchmark::Memory { nodes, target } => (
                super::memory::run(nodes, target.backend(), &target.postgres).await?,
                target.json,
            ),
            Benchmark::Api {
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
                (super::api::run(&params).await?, target.json)
            }
            Benchmark::Seed {
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
                (super::seed::run(&params).await?, target.json)
            }
        };
        report.write_json(json.as_deref())?;
        Ok(report)
    }
}
