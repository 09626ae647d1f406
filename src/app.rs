//! The application: a database, the actors, and the HTTP server, built from
//! [`Settings`] and startable in-process (tests bind port 0).

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::{web, App, HttpServer};
use sea_orm::DatabaseConnection;

use crate::api;
use crate::cluster::{self, ClusterError};
use crate::db::{self, Backend, DatabaseError};
use crate::domain::DomainError;
use crate::orchestrator::{Orchestrator, OrchestratorOptions};
use crate::provisioner::dhcp::{self as dhcp_server, BootContext, DhcpHandle, DhcpTable};
use crate::provisioner::power::PowerDriver;
use crate::provisioner::sightings::Sightings;
use crate::provisioner::watchdog::InstallWatchdog;
use crate::provisioner::{discovery, export};
use crate::settings::Settings;
use actix::Actor;

/// Shared state every request handler sees.
#[derive(Clone)]
pub struct AppState {
    pub db: DatabaseConnection,
    pub backend: Backend,
    pub settings: Arc<Settings>,
    pub orchestrator: Orchestrator,
    /// What kiln last saw of each machine (DHCP answers, boot scripts).
    pub sightings: Arc<Sightings>,
    /// Kiln's DHCP table, when `dhcp.enabled` (boot routes consult its leases).
    pub dhcp_table: Option<Arc<DhcpTable>>,
}

/// Why kiln could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Database(#[from] DatabaseError),
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error("tftp: {0}")]
    Tftp(String),
    #[error("dhcp: {0}")]
    Dhcp(String),
    #[error("starting the orchestrator: {0}")]
    Orchestrator(#[from] DomainError),
    #[error("http.bind `{0}` is not an address:port")]
    BadBind(String),
    #[error("cannot listen on {addr}: {reason}")]
    Listen { addr: String, reason: String },
    #[error("http.bind {0} is not a loopback address and auth.admin_token is empty; set a token or bind to 127.0.0.1")]
    UnprotectedListen(SocketAddr),
}

/// A built, bound, not yet running kiln.
pub struct Application {
    port: u16,
    server: Server,
    state: AppState,
    dhcp: Option<DhcpHandle>,
}

impl Application {
    /// Connects and migrates the database, then binds the HTTP listener.
    pub async fn build(settings: Settings) -> Result<Self, StartError> {
        Self::build_with_cluster(settings, None).await
    }

    /// Like [`Application::build`], applying kiln's built-in roles and then
    /// `cluster` (a cluster definition file) before the actors start.
    pub async fn build_with_cluster(
        settings: Settings,
        cluster: Option<&Path>,
    ) -> Result<Self, StartError> {
        let db = db::connect(&settings.database.url, settings.database.max_connections).await?;
        db::migrate(&db).await?;
        let file = match cluster {
            Some(path) => Some(cluster::load(path)?),
            None if settings.cluster.builtin_roles => Some(cluster::ClusterFile::default()),
            None => None,
        };
        if let Some(mut file) = file {
            if settings.cluster.builtin_roles {
                file = cluster::with_builtin_roles(file)?;
            }
            let (report, _) = cluster::apply(&db, &file, false).await?;
            let path = cluster.map(|p| p.display().to_string()).unwrap_or_default();
            tracing::info!(
                file = %path,
                created = report.created.len(),
                changed = report.changed.len(),
                unchanged = report.unchanged.len(),
                "cluster file applied"
            );
        }
        let listener = bind_listener(&settings)?;
        let mut settings = settings;
        if settings.provisioner.api_url.is_empty() {
            // Nodes must be told the port really bound (tests bind port 0).
            let bound = listener.local_addr().map_err(|e| StartError::Listen {
                addr: settings.http.bind.clone(),
                reason: e.to_string(),
            })?;
            settings.provisioner.api_url = format!("http://{bound}");
        }
        let table = Arc::new(DhcpTable::default());
        let mut options = OrchestratorOptions::from_settings(&settings);
        options.builtins.extend(export::builtin_jigs(
            &db,
            &settings.provisioner.export_dir,
            &api_url(&settings),
            settings.dhcp.enabled.then(|| table.clone()),
        ));
        let dhcp_table = settings.dhcp.enabled.then(|| table.clone());
        let mut app = Self::build_with(settings, db, options, listener, dhcp_table).await?;
        if app.state.settings.dhcp.enabled {
            app.dhcp = Some(start_dhcp(&app.state, table).await?);
        }
        app.start_power_and_watchdog();
        if app.state.settings.tftp.enabled {
            start_tftp(&app.state.settings).await?;
        }
        if app.state.settings.sim.enabled {
            app.start_simulator()?;
        }
        Ok(app)
    }

    /// The power driver (when `power.command` is set) and the install
    /// watchdog (when `provisioner.install_timeout_ms` is not 0).
    fn start_power_and_watchdog(&self) {
        let settings = &self.state.settings;
        if !settings.power.command.is_empty() {
            let driver = PowerDriver::new(
                self.state.db.clone(),
                settings.power.command.clone().into(),
                self.state.orchestrator.trace(),
            )
            .start();
            self.state.orchestrator.subscribe(driver.recipient());
        }
        if settings.provisioner.install_timeout_ms > 0 {
            let watchdog = InstallWatchdog::new(
                self.state.orchestrator.clone(),
                self.state.sightings.clone(),
                std::time::Duration::from_millis(settings.provisioner.install_timeout_ms),
            )
            .start();
            self.state.orchestrator.subscribe(watchdog.recipient());
        }
    }

    /// Simulated machines talk to this kiln's DHCP server and HTTP API.
    fn start_simulator(&self) -> Result<(), StartError> {
        let dhcp = self
            .dhcp
            .as_ref()
            .ok_or_else(|| StartError::Dhcp("sim.enabled needs dhcp.enabled".into()))?;
        let config = crate::sim::SimConfig {
            dhcp: dhcp.local_addr,
            api_url: format!("http://127.0.0.1:{}", self.port),
            install_ms: self.state.settings.sim.install_ms,
        };
        let simulator = crate::sim::Simulator::new(
            self.state.db.clone(),
            config,
            self.state.orchestrator.trace(),
        )
        .start();
        self.state.orchestrator.subscribe(simulator.recipient());
        Ok(())
    }

    /// Starts the actors and the HTTP server on a bound listener.
    async fn build_with(
        settings: Settings,
        db: DatabaseConnection,
        options: OrchestratorOptions,
        listener: TcpListener,
        dhcp_table: Option<Arc<DhcpTable>>,
    ) -> Result<Self, StartError> {
        let addr = listener.local_addr().map_err(|e| StartError::Listen {
            addr: settings.http.bind.clone(),
            reason: e.to_string(),
        })?;
        let port = addr.port();
        if settings.auth.admin_token.is_empty() {
            tracing::warn!(
                %addr,
                "auth.admin_token is empty: the admin API is open, so kiln listens on loopback only"
            );
        }
        let orchestrator = Orchestrator::start(db.clone(), options).await?;
        let state = AppState {
            backend: Backend::of(&db),
            db,
            settings: Arc::new(settings),
            orchestrator,
            sightings: Arc::default(),
            dhcp_table,
        };
        let data = web::Data::new(state.clone());
        let server =
            HttpServer::new(move || App::new().app_data(data.clone()).configure(api::routes))
                .listen(listener)
                .map_err(|e| StartError::Listen {
                    addr: addr.to_string(),
                    reason: e.to_string(),
                })?
                .run();
        tracing::info!(port, backend = ?state.backend, "kiln is listening");
        Ok(Self {
            port,
            server,
            state,
            dhcp: None,
        })
    }

    /// kiln's DHCP server, when `dhcp.enabled`.
    pub fn dhcp(&self) -> Option<&DhcpHandle> {
        self.dhcp.as_ref()
    }

    /// The port the HTTP server is bound to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The state shared with handlers (the database, settings).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until SIGINT/SIGTERM or the server is stopped.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}

/// Drops an actix system whose `block_on` has returned. Tasks still in
/// flight then (a run mid-statement, a discovery registration) are dropped
/// with it, outside any Tokio context, where a pooled database connection's
/// drop would panic; entering a spare runtime gives those drops the context
/// they expect. The binary and the test harness both end systems this way.
pub fn drop_inside_a_runtime(system: actix_web::rt::SystemRunner) {
    match tokio::runtime::Builder::new_current_thread().build() {
        Ok(spare) => {
            let _context = spare.enter();
            drop(system);
        }
        Err(_) => drop(system),
    }
}

/// How nodes reach kiln: `provisioner.api_url`, else `http://` + `http.bind`.
pub fn api_url(settings: &Settings) -> String {
    if settings.provisioner.api_url.is_empty() {
        format!("http://{}", settings.http.bind)
    } else {
        settings
            .provisioner
            .api_url
            .trim_end_matches('/')
            .to_string()
    }
}

/// Loads the DHCP table and starts kiln's DHCP server on `dhcp.address`:`dhcp.port`.
async fn start_dhcp(state: &AppState, table: Arc<DhcpTable>) -> Result<DhcpHandle, StartError> {
    let settings = &state.settings;
    let hosts = db::hosts::list(&state.db)
        .await
        .map_err(|e| StartError::Dhcp(e.detail()))?;
    let networks = db::networks::list(&state.db)
        .await
        .map_err(|e| StartError::Dhcp(e.detail()))?;
    table.replace(hosts, networks);
    let address: std::net::Ipv4Addr = settings.dhcp.address.parse().map_err(|_| {
        StartError::Dhcp(format!(
            "dhcp.address `{}` is not an IPv4 address",
            settings.dhcp.address
        ))
    })?;
    let server_ip = if address.is_unspecified() {
        table
            .default_pool_network()
            .and_then(|n| n.router)
            .unwrap_or(std::net::Ipv4Addr::LOCALHOST)
    } else {
        address
    };
    let ctx = BootContext {
        server_ip,
        api_url: api_url(settings),
    };
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    // Broadcast DISCOVERs reach only a socket bound to the wildcard address:
    // with an interface named, the device binding is what narrows it, and
    // `dhcp.address` is only who kiln answers as.
    let listen = if settings.dhcp.interface.is_empty() {
        address
    } else {
        std::net::Ipv4Addr::UNSPECIFIED
    };
    let bind = std::net::SocketAddr::new(listen.into(), settings.dhcp.port);
    let socket = dhcp_server::open_socket(bind, &settings.dhcp.interface)
        .map_err(|e| StartError::Dhcp(format!("cannot listen on {bind}: {e}")))?;
    let handle = dhcp_server::start(socket, table.clone(), ctx, tx, state.sightings.clone())
        .map_err(|e| StartError::Dhcp(format!("cannot listen on {bind}: {e}")))?;
    discovery::spawn(state.orchestrator.clone(), table, rx);
    tracing::info!(addr = %handle.local_addr, "kiln's DHCP server is answering");
    Ok(handle)
}

/// Binds `http.bind`, refusing an open admin API beyond loopback.
fn bind_listener(settings: &Settings) -> Result<TcpListener, StartError> {
    let addr: SocketAddr = settings
        .http
        .bind
        .parse()
        .map_err(|_| StartError::BadBind(settings.http.bind.clone()))?;
    if settings.auth.admin_token.is_empty() && !addr.ip().is_loopback() {
        return Err(StartError::UnprotectedListen(addr));
    }
    TcpListener::bind(addr).map_err(|e| StartError::Listen {
        addr: addr.to_string(),
        reason: e.to_string(),
    })
}

/// Serves the stock iPXE binaries to PXE firmware on `tftp.address`:`tftp.port`.
async fn start_tftp(settings: &Settings) -> Result<(), StartError> {
    use crate::provisioner::tftp::{TftpServer, TftpSettings};
    let bind: SocketAddr = format!("{}:{}", settings.tftp.address, settings.tftp.port)
        .parse()
        .map_err(|_| {
            StartError::Tftp(format!(
                "tftp.address `{}` is not an address",
                settings.tftp.address
            ))
        })?;
    let server = TftpServer::bind(TftpSettings {
        bind,
        root: settings.tftp.root.clone(),
        ..TftpSettings::default()
    })
    .await
    .map_err(|e| StartError::Tftp(e.to_string()))?;
    tracing::info!(%bind, root = %settings.tftp.root.display(), "kiln's TFTP server is serving");
    tokio::spawn(async move {
        if let Err(e) = server.run(std::future::pending()).await {
            tracing::error!(error = %e, "tftp server stopped");
        }
    });
    Ok(())
}
