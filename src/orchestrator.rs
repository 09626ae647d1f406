//! The orchestrator: the handle the API, cluster files and the provisioner
//! use to change what kiln should do. Each method runs domain rules in one
//! transaction, commits, and then lets the actors act on the effects.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use entity::{node, noderole};
use sea_orm::{DatabaseConnection, DatabaseTransaction, TransactionTrait};
use tokio::sync::broadcast;

use crate::actors::annealer::{Annealer, AnnealerStatus, GetAnnealerStatus};
use crate::actors::dispatch::Dispatch;
use crate::actors::event_bus::{EventBus, Heard, Subscribe};
use crate::actors::hub::{AnnealerWake, Change, Hub, RunCounts};
use crate::actors::scheduler::{GetSchedulerStatus, Scheduler, SchedulerStatus};
use crate::actors::trace::TraceRecorder;
use crate::db::nodes::{NewNode, NodeChange, NodeView};
use crate::db::{noderoles, nodes, runs, Key, RepoError};
use crate::domain::anneal::{work_remains, QueueSeq};
use crate::domain::binding::{bind, BindRequest};
use crate::domain::{lifecycle, outcome, DomainError, DomainResult, Effects, Fact, NoderoleState};
use crate::jigs::{Jig, Jigs};
use crate::settings::Settings;
use crate::shutdown::Shutdown;

/// Whether anything is left to do (see [`Orchestrator::anneal_status`]).
#[derive(Debug, Clone)]
pub struct AnnealStatus {
    /// Nothing is todo or in transition, and no run is queued or running.
    pub settled: bool,
    pub counts: Vec<(NoderoleState, i64)>,
    /// Why the todo noderoles are not started.
    pub waiting: noderoles::WaitingCounts,
    /// Runs queued or running.
    pub unfinished_runs: u64,
    pub annealer: AnnealerStatus,
    pub runs: RunCounts,
}

/// Options for starting the actors.
#[derive(Clone)]
pub struct OrchestratorOptions {
    pub max_concurrent_runs: usize,
    pub scripts_dir: PathBuf,
    pub script_timeout: Duration,
    /// Trace entries kept (0 turns the recorder off).
    pub trace_capacity: usize,
    /// Builtin jigs beyond kiln's defaults, by role name.
    pub builtins: Vec<(String, Arc<dyn Jig>)>,
    /// The shutdown every actor's work answers to.
    pub shutdown: Shutdown,
}

impl OrchestratorOptions {
    pub fn from_settings(settings: &Settings) -> Self {
        Self {
            max_concurrent_runs: settings.scheduler.max_concurrent_runs,
            scripts_dir: settings.jigs.scripts_dir.clone(),
            script_timeout: Duration::from_millis(settings.jigs.script_timeout_ms),
            trace_capacity: settings.jigs.trace_capacity,
            builtins: Vec::new(),
            shutdown: Shutdown::default(),
        }
    }
}

/// Handle to the running actors.
#[derive(Clone)]
pub struct Orchestrator {
    dispatch: Arc<Dispatch>,
    annealer: Addr<Annealer>,
    stream: broadcast::Sender<Fact>,
}

impl Orchestrator {
    /// [`Self::prepare`] then [`Self::resume`], for callers that have no
    /// subscriber to add before work starts.
    pub async fn start(db: DatabaseConnection, options: OrchestratorOptions) -> DomainResult<Self> {
        let orchestrator = Self::prepare(db, options).await?;
        orchestrator.resume().await?;
        Ok(orchestrator)
    }

    /// Recovers from a crash and starts the singleton actors (inside the
    /// running actix System). No run starts until [`Self::resume`], so
    /// subscribers added in between (role hooks) hear every fact.
    pub async fn prepare(
        db: DatabaseConnection,
        options: OrchestratorOptions,
    ) -> DomainResult<Self> {
        recover(&db).await?;
        let trace = Arc::new(TraceRecorder::new(options.trace_capacity));
        let (stream, _) = broadcast::channel(4096);
        let bus = EventBus::new(stream.clone()).start();
        let scheduler = Scheduler::new(
            options.max_concurrent_runs,
            trace.clone(),
            options.shutdown.clone(),
        )
        .start();
        let mut jigs = Jigs::new(options.scripts_dir.clone(), options.script_timeout);
        for (role, jig) in options.builtins {
            jigs.register_builtin(&role, jig);
        }
        let last_seq = runs::max_queue_seq(&db).await?;
        let hub = Arc::new(Hub {
            db,
            bus,
            scheduler,
            wake: AnnealerWake::default(),
            trace,
            counters: Default::default(),
            seq: Arc::new(QueueSeq::starting_after(last_seq)),
            jigs,
            shutdown: options.shutdown,
            in_flight: Default::default(),
            fact_order: Default::default(),
        });
        let dispatch = Arc::new(Dispatch::new(hub));
        let annealer = Annealer::new(dispatch.clone()).start();
        Ok(Self {
            dispatch,
            annealer,
            stream,
        })
    }

    /// Starts every node's actor with its queued runs from the run table,
    /// and the annealer's first pass.
    pub async fn resume(&self) -> DomainResult<()> {
        start_node_actors(&self.dispatch).await?;
        self.dispatch.hub.wake.wake();
        Ok(())
    }

    /// The shutdown its actors' work answers to.
    pub fn shutdown(&self) -> &Shutdown {
        &self.dispatch.hub.shutdown
    }

    /// Stops starting work and waits for runs, passes and hooks in flight
    /// (a run's jig is abandoned; the restart runs it again).
    pub async fn stop(&self) {
        self.shutdown().stop().await;
    }

    /// Holds kiln unsettled while work goes on that the database does not
    /// count (a reboot not due yet, a simulated machine booting).
    pub fn hold(&self) -> crate::actors::in_flight::Held {
        self.dispatch.hub.in_flight.hold()
    }

    /// The database the orchestrator works on.
    pub fn db(&self) -> &DatabaseConnection {
        &self.dispatch.hub.db
    }

    /// Runs `change` in one transaction and applies its effects after the
    /// commit, as `from` in the trace.
    pub async fn transact<T, F>(&self, from: &'static str, change: F) -> DomainResult<T>
    where
        F: for<'c> FnOnce(&'c DatabaseTransaction) -> Change<'c, T>,
    {
        self.dispatch.transact(from, change).await
    }

    /// [`Self::transact`] for a change that must happen: database faults
    /// are retried until it passes, so `change` may run more than once.
    pub async fn transact_retrying<T, F>(
        &self,
        from: &'static str,
        what: &str,
        change: F,
    ) -> DomainResult<T>
    where
        F: for<'c> Fn(&'c DatabaseTransaction) -> Change<'c, T>,
    {
        self.dispatch.transact_retrying(from, what, change).await
    }

    /// Where queued runs get their place in line.
    pub fn queue_seq(&self) -> Arc<QueueSeq> {
        self.dispatch.hub.seq.clone()
    }

    /// [`Self::transact`] as the API.
    async fn run<T, F>(&self, change: F) -> DomainResult<T>
    where
        F: for<'c> FnOnce(&'c DatabaseTransaction) -> Change<'c, T>,
    {
        self.transact("Api", change).await
    }

    /// Puts an active noderole whose machine never came back from its
    /// reboot into error (see [`crate::provisioner::watchdog`]).
    pub async fn fail_unreturned(&self, noderole_id: i64, reason: String) -> DomainResult<()> {
        self.transact("InstallWatchdog", move |txn| {
            Box::pin(async move {
                let effects = outcome::fail_unreturned(txn, noderole_id, &reason).await?;
                Ok(((), effects))
            })
        })
        .await
    }

    /// Applies effects produced by domain calls in a caller's transaction
    /// (cluster files), after that transaction committed.
    pub async fn apply(&self, effects: Effects) {
        self.dispatch.apply("Api", effects).await;
    }

    /// Registers a node (discovery roles bound and committed for non-admin
    /// nodes); returns it and its one-time token.
    pub async fn create_node(&self, new: NewNode) -> DomainResult<(NodeView, String)> {
        let (view, token) = self
            .run(|txn| {
                Box::pin(async move {
                    let (view, token, effects) =
                        crate::domain::nodes::create_node(txn, new).await?;
                    Ok(((view, token), effects))
                })
            })
            .await?;
        self.dispatch
            .start_node_actor(view.node.id, &view.node.name, Vec::new());
        Ok((view, token))
    }

    /// Changes alive, available, bootenv or target OS.
    pub async fn update_node(&self, key: &Key, change: NodeChange) -> DomainResult<node::Model> {
        let key = key.clone();
        self.run(|txn| {
            Box::pin(async move { crate::domain::nodes::update_node(txn, &key, &change).await })
        })
        .await
    }

    /// Keeps a node's reported inventory (enrolling the machine into the
    /// node defined by the BMC it reports, see `domain::enrolment`) and
    /// publishes `InventoryReceived` after the commit; an absorbed node's
    /// actor goes with its row.
    pub async fn record_inventory(
        &self,
        key: &Key,
        document: serde_json::Value,
        memory_mib: i64,
        disk_count: i32,
    ) -> DomainResult<crate::domain::nodes::ReportedInventory> {
        let key = key.clone();
        let reported = self
            .run(|txn| {
                Box::pin(async move {
                    crate::domain::nodes::record_inventory(
                        txn, &key, document, memory_mib, disk_count,
                    )
                    .await
                })
            })
            .await?;
        if let Some(absorbed) = reported.absorbed {
            self.dispatch.remove_node_actor(absorbed);
        }
        Ok(reported)
    }

    /// Deletes a node with its bindings and runs.
    pub async fn delete_node(&self, key: &Key) -> DomainResult<node::Model> {
        let key = key.clone();
        let node = self
            .run(|txn| {
                Box::pin(async move {
                    let node = nodes::delete(txn, &key).await?;
                    Ok((node, Effects::default()))
                })
            })
            .await?;
        self.dispatch.remove_node_actor(node.id);
        Ok(node)
    }

    /// Binds a role to a node in a deployment (proposed), with what it requires.
    pub async fn bind(&self, req: BindRequest) -> DomainResult<noderole::Model> {
        self.run(|txn| {
            Box::pin(async move {
                let nr = bind(txn, &req).await?;
                Ok((nr, Effects::default()))
            })
        })
        .await
    }

    pub async fn commit_deployment(&self, key: &Key) -> DomainResult<()> {
        let key = key.clone();
        self.run(|txn| {
            Box::pin(async move { Ok(((), lifecycle::commit_deployment(txn, &key).await?)) })
        })
        .await
    }

    pub async fn propose_deployment(&self, key: &Key) -> DomainResult<()> {
        let key = key.clone();
        self.run(|txn| {
            Box::pin(async move { Ok(((), lifecycle::propose_deployment(txn, &key).await?)) })
        })
        .await
    }

    pub async fn commit_noderole(&self, id: i64) -> DomainResult<()> {
        self.run(|txn| {
            Box::pin(async move { Ok(((), lifecycle::commit_noderole(txn, id).await?)) })
        })
        .await
    }

    pub async fn propose_noderole(
        &self,
        id: i64,
        data: Option<serde_json::Value>,
    ) -> DomainResult<()> {
        self.run(|txn| {
            Box::pin(async move { Ok(((), lifecycle::propose_noderole(txn, id, data).await?)) })
        })
        .await
    }

    pub async fn retry_noderole(&self, id: i64) -> DomainResult<()> {
        self.run(|txn| Box::pin(async move { Ok(((), lifecycle::retry_noderole(txn, id).await?)) }))
            .await
    }

    /// Slots in use, capacity, and every waiting run with its position.
    pub async fn scheduler_status(&self) -> DomainResult<SchedulerStatus> {
        self.dispatch
            .hub
            .scheduler
            .send(GetSchedulerStatus)
            .await
            .map_err(|e| DomainError::StateConflict(format!("scheduler unavailable: {e}")))
    }

    /// The annealer's own report.
    pub async fn annealer_status(&self) -> DomainResult<AnnealerStatus> {
        self.annealer
            .send(GetAnnealerStatus)
            .await
            .map_err(|e| DomainError::StateConflict(format!("annealer unavailable: {e}")))
    }

    /// Whether anything is left to do, with noderole counts by state, why
    /// todo noderoles wait, the annealer's report and the run counters:
    /// what `/api/v2/anneal` shows.
    pub async fn anneal_status(&self) -> DomainResult<AnnealStatus> {
        let db = &self.dispatch.hub.db;
        let counts = noderoles::count_by_state(db).await?;
        let unfinished_runs = runs::count_unfinished(db).await?;
        let waiting = noderoles::waiting_counts(db).await?;
        Ok(AnnealStatus {
            settled: !work_remains(&counts) && unfinished_runs == 0,
            counts,
            waiting,
            unfinished_runs,
            annealer: self.annealer_status().await?,
            runs: self.counters(),
        })
    }

    /// Resolves when kiln has settled: no fact is on its way to a hook and
    /// no node holds a run (see `actors::in_flight`), and then the database
    /// says nothing is todo, in transition, queued or running. Waits for as
    /// long as that takes; a caller that cannot wait forever times it out.
    pub async fn settled(&self) -> DomainResult<AnnealStatus> {
        let in_flight = &self.dispatch.hub.in_flight;
        loop {
            in_flight.quiet().await;
            let seen = in_flight.generation();
            let status = self.anneal_status().await?;
            if status.settled && in_flight.generation() == seen {
                return Ok(status);
            }
            in_flight.changed_since(seen).await;
        }
    }

    /// Asks the annealer to look for ready work.
    pub fn wake_annealer(&self) {
        self.dispatch.hub.wake.wake();
    }

    /// Adds an actor that hears every fact.
    pub fn subscribe(&self, recipient: Recipient<Heard>) {
        self.dispatch.hub.bus.do_send(Subscribe(recipient));
    }

    /// A stream of every fact from now on (for server-sent events).
    pub fn stream(&self) -> broadcast::Receiver<Fact> {
        self.stream.subscribe()
    }

    /// The trace recorder (tests snapshot it).
    pub fn trace(&self) -> Arc<TraceRecorder> {
        self.dispatch.hub.trace.clone()
    }

    /// Run counters for `/metrics`.
    pub fn counters(&self) -> RunCounts {
        self.dispatch.hub.counters.read()
    }

    /// How many node actors exist.
    pub fn node_actor_count(&self) -> usize {
        self.dispatch.node_actor_count()
    }
}

/// Crash recovery (see ARCHITECTURE.md): runs left `running` go back to
/// `queued` (jigs are idempotent, so running one again does no harm), and a
/// noderole left in transition without a queued run goes back to todo for
/// the annealer.
async fn recover(db: &DatabaseConnection) -> DomainResult<()> {
    let txn = db.begin().await.map_err(RepoError::from)?;
    let requeued = runs::requeue_interrupted(&txn).await?;
    let recounted = crate::db::noderoles::recount_unmet_parents(&txn).await?;
    let orphans = crate::db::noderoles::transition_without_queued_run(&txn).await?;
    let facts = crate::domain::transitions::move_to(
        &txn,
        &orphans,
        crate::domain::NoderoleState::Todo,
        false,
    )
    .await?;
    txn.commit().await.map_err(RepoError::from)?;
    if recounted > 0 {
        tracing::warn!(recounted, "corrected noderoles' counts of unmet parents");
    }
    if requeued > 0 || !facts.is_empty() {
        tracing::warn!(
            requeued,
            orphans = facts.len(),
            "recovered runs and noderoles interrupted by a stop"
        );
    }
    Ok(())
}

/// One supervised actor per node, each with its queued runs.
async fn start_node_actors(dispatch: &Dispatch) -> DomainResult<()> {
    use std::collections::HashMap;
    let queued = runs::all_queued(&dispatch.hub.db).await?;
    let tickets = dispatch.tickets_for(&queued).await;
    let mut by_node: HashMap<i64, Vec<_>> = HashMap::new();
    for (run, ticket) in queued.iter().zip(tickets) {
        by_node.entry(run.node_id).or_default().push(ticket);
    }
    for (id, name) in nodes::all_names(&dispatch.hub.db).await? {
        let mut queue = by_node.remove(&id).unwrap_or_default();
        // Priority first, queue order within each class.
        queue.sort_by_key(|t| !t.priority);
        dispatch.start_node_actor(id, &name, queue);
    }
    Ok(())
}
