//! The commands that call a running kiln's API: their arguments, the request
//! each sends, and how the answer is printed.

use reqwest::Method;
use serde_json::{json, Value};

use super::{query, render, ApiClient, CliError};

/// Where the API is and how to authenticate.
#[derive(clap::Args)]
pub struct ApiArgs {
    #[arg(long, env = "KILN_URL", default_value = "http://127.0.0.1:3000")]
    url: String,
    #[arg(long, env = "KILN_TOKEN")]
    token: Option<String>,
    /// Print the API's JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// The API commands, flattened into `kiln`'s own so they sit beside `serve`
/// and `apply` on the command line.
#[derive(clap::Subcommand)]
pub enum Command {
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
    /// Whether kiln has settled: noderoles by state, and why todo ones wait.
    Anneal(ApiArgs),
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
    /// Ask a node's BMC for its power state, or press a power button.
    Power {
        #[command(flatten)]
        api: ApiArgs,
        node: String,
        #[arg(value_enum, default_value = "status")]
        action: PowerCommand,
        /// Boot from the network (once) next.
        #[arg(long)]
        pxe: bool,
    },
}

/// What `kiln power` does.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum PowerCommand {
    Status,
    On,
    Off,
    SoftOff,
    Cycle,
}

impl PowerCommand {
    /// The API's action, `None` for a status.
    fn action(self) -> Option<&'static str> {
        match self {
            PowerCommand::Status => None,
            PowerCommand::On => Some("on"),
            PowerCommand::Off => Some("off"),
            PowerCommand::SoftOff => Some("soft_off"),
            PowerCommand::Cycle => Some("cycle"),
        }
    }
}

impl Command {
    /// Sends the command's request (one per node for `bind`) and prints the
    /// answer; the first API error stops it, so a failure is one line.
    pub async fn run(self) -> Result<(), CliError> {
        let (api, kind, method, path, body) = match self {
            Command::Nodes(api) => (
                api,
                "nodes",
                Method::GET,
                "/nodes?limit=1000".to_string(),
                None,
            ),
            Command::Deployments(api) => {
                (api, "deployments", Method::GET, "/deployments".into(), None)
            }
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
            Command::Anneal(api) => (api, "anneal", Method::GET, "/anneal".into(), None),
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
                print_value(&api, "noderoles", &Value::Array(bound));
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
            Command::Power {
                api,
                node,
                action,
                pxe,
            } => {
                let path = format!("/nodes/{node}/power");
                match action.action() {
                    None if pxe => {
                        return Err(CliError::Usage(
                            "--pxe needs a power action (on or cycle)".into(),
                        ))
                    }
                    None => (api, "power", Method::GET, path, None),
                    Some(action) => {
                        let next_boot = pxe.then_some("pxe");
                        let body = json!({ "action": action, "next_boot": next_boot });
                        (api, "power", Method::PUT, path, Some(body))
                    }
                }
            }
        };
        let client = ApiClient::new(&api.url, api.token.clone());
        let value = client.call(method, &path, body).await?;
        print_value(&api, kind, &value);
        Ok(())
    }
}

fn print_value(api: &ApiArgs, kind: &str, value: &Value) {
    if api.json {
        println!(
            "{}",
            serde_json::to_string_pretty(value).unwrap_or_default()
        );
    } else {
        print!("{}", render(kind, value));
    }
}
