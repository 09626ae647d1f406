//! The application: a database, the actors, and the HTTP server, built from
//! [`Settings`] and startable in-process (tests bind port 0).

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;

use actix_web::dev::{Server, ServerHandle};
use actix_web::{web, App, HttpServer};
use sea_orm::DatabaseConnection;

use crate::api::{self, AppState};
use crate::cluster::{self, ApplyReport, ClusterError};
use crate::db::{self, Backend, DatabaseError};
use crate::domain::DomainError;
use crate::orchestrator::{Orchestrator, OrchestratorOptions};
use crate::provisioner::boot::BootUrls;
use crate::provisioner::dhcp::{self as dhcp_server, BootContext, DhcpHandle, DhcpTable};
use crate::provisioner::discovery;
use crate::provisioner::power::{self, Power};
use crate::provisioner::reboots::{PowerCycle, RebootClock};
use crate::provisioner::tftp::TftpStats;
use crate::roles;
use crate::settings::Settings;
use crate::shutdown::Shutdown;
use actix::Actor;

/// Why kiln could not start, or `kiln apply` could not apply its file.
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
    #[error("http.bind {addr} is not a loopback address and auth.admin_token is {reason}; set a token of at least {MIN_PUBLIC_TOKEN_LEN} characters")]
    WeakToken { addr: SocketAddr, reason: String },
    #[error("bmc: {0}")]
    Bmc(String),
}

/// The shortest admin token kiln accepts beyond loopback.
pub const MIN_PUBLIC_TOKEN_LEN: usize = 16;

/// A built, bound, not yet running kiln.
pub struct Application {
    port: u16,
    /// Bound at build; served once the actors have resumed work.
    listener: Option<TcpListener>,
    server: Option<Server>,
    state: AppState,
    dhcp: Option<DhcpHandle>,
    /// Where kiln's TFTP server listens, when `tftp.enabled`.
    tftp: Option<SocketAddr>,
    shutdown: Shutdown,
}

/// Stops a running kiln from anywhere (a test, a benchmark, a signal).
#[derive(Clone)]
pub struct Stopper {
    server: Option<ServerHandle>,
    http_stopping: tokio_util::sync::CancellationToken,
    shutdown: Shutdown,
    db: DatabaseConnection,
}

impl Stopper {
    /// Stops serving HTTP (requests in flight finish; the event streams
    /// end), signals the one
    /// shutdown token and waits until every background task has ended,
    /// then closes the database pool: nothing is left to hold a connection
    /// when the actix system goes away. Stopping twice is harmless.
    pub async fn stop(&self) {
        self.http_stopping.cancel();
        if let Some(server) = &self.server {
            server.stop(true).await;
        }
        self.shutdown.stop().await;
        if let Err(e) = self.db.close_by_ref().await {
            tracing::warn!(error = %e, "closing the database pool");
        }
    }
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
        let db = migrate(&settings).await?;
        let key = secret_key(&settings, &db).await?;
        let file = match cluster {
            Some(path) => Some(cluster::load(path)?),
            None if settings.cluster.builtin_roles => Some(cluster::ClusterFile::default()),
            None => None,
        };
        if let Some(mut file) = file {
            if settings.cluster.builtin_roles {
                file = cluster::with_builtin_roles(file)?;
            }
            let (report, _) = cluster::apply_sealing(&db, &file, false, key.as_ref()).await?;
            let path = cluster.map(|p| p.display().to_string()).unwrap_or_default();
            for warning in &report.warnings {
                tracing::warn!(file = %path, "{warning}");
            }
            tracing::info!(
                file = %path,
                created = report.created.len(),
                changed = report.changed.len(),
                unchanged = report.unchanged.len(),
                "cluster file applied"
            );
        }
        let listener = bind_listener(&settings)?;
        let bound = listener.local_addr().map_err(|e| StartError::Listen {
            addr: settings.http.bind.clone(),
            reason: e.to_string(),
        })?;
        let boot_urls = BootUrls::new(&settings.provisioner, bound);
        let table = Arc::new(DhcpTable::default());
        let mut options = OrchestratorOptions::from_settings(&settings);
        let shutdown = options.shutdown.clone();
        options
            .builtins
            .extend(roles::builtin_jigs(roles::RoleSettings {
                db: &db,
                export_dir: &settings.provisioner.export_dir,
                boot_url: &boot_urls.api_url,
                dhcp_table: settings.dhcp.enabled.then(|| table.clone()),
                reboot_delay_ms: settings.sim.reboot_delay_ms,
                inventory_timeout_ms: settings.inventory.timeout_ms,
                shutdown: &shutdown,
            }));
        let dhcp_table = settings.dhcp.enabled.then(|| table.clone());
        let mut app =
            Self::build_with(settings, db, options, listener, dhcp_table, boot_urls, key).await?;
        app.shutdown = shutdown;
        let install_timeout =
            std::time::Duration::from_millis(app.state.settings.provisioner.install_timeout_ms);
        roles::subscribe_hooks(
            &app.state.orchestrator,
            app.state.sightings.clone(),
            install_timeout,
        );
        if app.state.settings.dhcp.enabled {
            let dhcp = start_dhcp(&app.state, table).await?;
            app.state.dhcp_stats = Some(dhcp.stats.clone());
            app.dhcp = Some(dhcp);
        }
        if app.state.settings.tftp.enabled {
            let (addr, stats) = start_tftp(&app.state.settings, &app.shutdown).await?;
            app.tftp = Some(addr);
            app.state.tftp_stats = Some(stats);
        }
        app.start_reboot_clock()?;
        app.start_power_poll();
        app.state.orchestrator.resume().await?;
        let data = web::Data::new(app.state.clone());
        app.server = Some(
            HttpServer::new(move || {
                App::new()
                    .wrap(api::json_errors())
                    .app_data(data.clone())
                    .configure(api::routes)
            })
            .listen(listener_of(&mut app)?)
            .map_err(|e| StartError::Listen {
                addr: format!("127.0.0.1:{}", app.port),
                reason: e.to_string(),
            })?
            .run(),
        );
        tracing::info!(port = app.port, backend = ?app.state.backend, "kiln is listening");
        Ok(app)
    }

    /// Reads every BMC's power state in the background, when
    /// `bmc.poll_interval_ms` is not zero.
    fn start_power_poll(&self) {
        let bmc = &self.state.settings.bmc;
        if bmc.poll_interval_ms == 0 {
            return;
        }
        let interval = std::time::Duration::from_millis(bmc.poll_interval_ms);
        self.shutdown.spawn(power::poll_forever(
            self.state.power.clone(),
            interval,
            bmc.poll_concurrency,
        ));
    }

    /// The clock that performs scheduled reboots (those a previous kiln
    /// left too) through nodes' BMCs (or the power command), and the
    /// simulated machines, when `sim.enabled`.
    fn start_reboot_clock(&self) -> Result<(), StartError> {
        let settings = &self.state.settings;
        let mut machines: Vec<Rc<dyn PowerCycle>> = vec![Rc::new(self.state.power.clone())];
        if settings.sim.enabled {
            let simulator = self.simulator()?;
            let reporter = crate::sim::InventoryReporter {
                db: self.state.db.clone(),
                api_url: format!("http://127.0.0.1:{}", self.port),
                admin_token: settings.auth.admin_token.clone(),
                tokens: simulator.tokens(),
                trace: self.state.orchestrator.trace(),
                http: reqwest::Client::new(),
                shutdown: self.shutdown.clone(),
            };
            self.state
                .orchestrator
                .subscribe(reporter.start().recipient());
            machines.push(Rc::new(simulator));
        }
        let clock = RebootClock::new(self.state.orchestrator.clone(), machines).start();
        self.state.orchestrator.subscribe(clock.recipient());
        Ok(())
    }

    /// Simulated machines talk to this kiln's DHCP server and HTTP API.
    fn simulator(&self) -> Result<crate::sim::Simulator, StartError> {
        let dhcp = self
            .dhcp
            .as_ref()
            .ok_or_else(|| StartError::Dhcp("sim.enabled needs dhcp.enabled".into()))?;
        let config = crate::sim::SimConfig {
            dhcp: dhcp.local_addr,
            api_url: format!("http://127.0.0.1:{}", self.port),
            install_ms: self.state.settings.sim.install_ms,
        };
        Ok(crate::sim::Simulator::new(
            self.state.db.clone(),
            config,
            self.state.orchestrator.trace(),
            self.shutdown.clone(),
        ))
    }

    /// Prepares the actors (no run starts until the orchestrator resumes)
    /// and keeps the bound listener for the HTTP server.
    async fn build_with(
        settings: Settings,
        db: DatabaseConnection,
        options: OrchestratorOptions,
        listener: TcpListener,
        dhcp_table: Option<Arc<DhcpTable>>,
        boot_urls: BootUrls,
        secret_key: Option<crate::bmc::SecretKey>,
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
        let orchestrator = Orchestrator::prepare(db.clone(), options).await?;
        let boots: Arc<crate::provisioner::boots::Boots> = Arc::default();
        let drivers = crate::bmc::Drivers::new(&crate::bmc::DriverSettings {
            timeout: std::time::Duration::from_millis(settings.bmc.timeout_ms),
            ipmitool: settings.bmc.ipmitool.clone(),
            command: (!settings.power.command.is_empty())
                .then(|| settings.power.command.clone().into()),
        });
        let power = Power::new(
            orchestrator.clone(),
            Arc::new(drivers),
            secret_key.clone(),
            boots.clone(),
            !settings.power.command.is_empty(),
        );
        let state = AppState {
            backend: Backend::of(&db),
            db,
            settings: Arc::new(settings),
            orchestrator,
            boot_urls,
            sightings: Arc::default(),
            boots,
            power,
            secret_key,
            dhcp_table,
            dhcp_stats: None,
            tftp_stats: None,
            http_stopping: Default::default(),
        };
        Ok(Self {
            port,
            listener: Some(listener),
            server: None,
            state,
            dhcp: None,
            tftp: None,
            shutdown: Shutdown::default(),
        })
    }

    /// kiln's DHCP server, when `dhcp.enabled`.
    pub fn dhcp(&self) -> Option<&DhcpHandle> {
        self.dhcp.as_ref()
    }

    /// Where kiln's TFTP server listens, when `tftp.enabled` (tests bind port 0).
    pub fn tftp_addr(&self) -> Option<SocketAddr> {
        self.tftp
    }

    /// The port the HTTP server is bound to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The state shared with handlers (the database, settings).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// What stops this kiln once it runs.
    pub fn stopper(&self) -> Stopper {
        Stopper {
            server: self.server.as_ref().map(Server::handle),
            http_stopping: self.state.http_stopping.clone(),
            shutdown: self.shutdown.clone(),
            db: self.state.db.clone(),
        }
    }

    /// Serves until SIGINT/SIGTERM or [`Stopper::stop`], then stops
    /// everything else and waits for it.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let stopper = self.stopper();
        let served = match self.server {
            Some(server) => server.await,
            None => Ok(()),
        };
        stopper.stop().await;
        served
    }
}

/// The key BMC passwords are sealed with. A database that holds sealed
/// passwords refuses a start without the key that opens them: kiln would
/// otherwise run and fail every power action later.
async fn secret_key(
    settings: &Settings,
    db: &DatabaseConnection,
) -> Result<Option<crate::bmc::SecretKey>, StartError> {
    let bmc = &settings.bmc;
    let key = crate::bmc::SecretKey::from_settings(&bmc.secret_key, &bmc.secret_key_file)
        .map_err(|e| StartError::Bmc(e.to_string()))?;
    let stored = db::bmcs::any_sealed_password(db)
        .await
        .map_err(|e| StartError::Bmc(format!("cannot read the stored BMC passwords: {e}")))?;
    match (&key, stored) {
        (_, None) => {}
        (None, Some(_)) => {
            return Err(StartError::Bmc(
                "the database holds BMC passwords but neither bmc.secret_key nor bmc.secret_key_file is set".into(),
            ))
        }
        (Some(key), Some(sealed)) => {
            key.open(&sealed)
                .map_err(|e| StartError::Bmc(e.to_string()))?;
        }
    }
    Ok(key)
}

/// Connects to the database and brings its schema up to date, as every
/// start does first, so `kiln migrate` leaves exactly what `serve` would.
pub async fn migrate(settings: &Settings) -> Result<DatabaseConnection, DatabaseError> {
    let db = db::connect(&settings.database.url, settings.database.max_connections).await?;
    db::migrate(&db).await?;
    Ok(db)
}

/// `kiln apply`: the cluster file, with kiln's built-in roles when
/// `cluster.builtin_roles` as at start, so applying by hand and then
/// starting changes nothing more.
pub async fn apply(
    settings: &Settings,
    file: &Path,
    dry_run: bool,
) -> Result<ApplyReport, StartError> {
    let db = migrate(settings).await?;
    let mut parsed = cluster::load(file)?;
    if settings.cluster.builtin_roles {
        parsed = cluster::with_builtin_roles(parsed)?;
    }
    let key = secret_key(settings, &db).await?;
    let (report, _) = cluster::apply_sealing(&db, &parsed, dry_run, key.as_ref()).await?;
    for warning in &report.warnings {
        tracing::warn!(file = %file.display(), "{warning}");
    }
    Ok(report)
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
    let live = db::leases::live(&state.db, chrono::Utc::now())
        .await
        .map_err(|e| StartError::Dhcp(e.detail()))?;
    let restored = table.restore(&live);
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
        api_url: state.boot_urls.api_url.clone(),
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
    let handle = dhcp_server::start(
        socket,
        table.clone(),
        ctx,
        state.db.clone(),
        tx,
        dhcp_server::Observers {
            sightings: state.sightings.clone(),
            boots: state.boots.clone(),
        },
        state.orchestrator.shutdown(),
    )
    .map_err(|e| StartError::Dhcp(format!("cannot listen on {bind}: {e}")))?;
    discovery::spawn(state.orchestrator.clone(), table, rx);
    tracing::info!(addr = %handle.local_addr, restored, "kiln's DHCP server is answering");
    Ok(handle)
}

/// The listener `build_with` bound, taken once for the HTTP server.
fn listener_of(app: &mut Application) -> Result<TcpListener, StartError> {
    app.listener.take().ok_or_else(|| StartError::Listen {
        addr: format!("127.0.0.1:{}", app.port),
        reason: "the listener was already served".into(),
    })
}

/// Binds `http.bind`, refusing an open admin API beyond loopback.
fn bind_listener(settings: &Settings) -> Result<TcpListener, StartError> {
    let addr: SocketAddr = settings
        .http
        .bind
        .parse()
        .map_err(|_| StartError::BadBind(settings.http.bind.clone()))?;
    if !addr.ip().is_loopback() {
        refuse_weak_token(&settings.auth.admin_token, addr)?;
    }
    TcpListener::bind(addr).map_err(|e| StartError::Listen {
        addr: addr.to_string(),
        reason: e.to_string(),
    })
}

/// Beyond loopback the admin token is all that guards the API: none, only
/// whitespace, or too short to resist guessing is refused.
fn refuse_weak_token(token: &str, addr: SocketAddr) -> Result<(), StartError> {
    if token.is_empty() {
        return Err(StartError::UnprotectedListen(addr));
    }
    let reason = if token.trim().is_empty() {
        "only whitespace".to_string()
    } else if token.trim().chars().count() < MIN_PUBLIC_TOKEN_LEN {
        format!("shorter than {MIN_PUBLIC_TOKEN_LEN} characters")
    } else {
        return Ok(());
    };
    Err(StartError::WeakToken { addr, reason })
}

/// Serves the stock iPXE binaries to PXE firmware on `tftp.address`:`tftp.port`.
async fn start_tftp(
    settings: &Settings,
    shutdown: &Shutdown,
) -> Result<(SocketAddr, Arc<TftpStats>), StartError> {
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
    let bound = server
        .local_addr()
        .map_err(|e| StartError::Tftp(e.to_string()))?;
    let stats = server.stats();
    tracing::info!(%bound, root = %settings.tftp.root.display(), "kiln's TFTP server is serving");
    let stopping = shutdown.clone();
    shutdown.spawn(async move {
        if let Err(e) = server.run(stopping.stopping()).await {
            tracing::error!(error = %e, "tftp server stopped");
        }
    });
    Ok((bound, stats))
}
