//! NodeActor: one per node, under a supervisor. It owns the node's FIFO of
//! queued runs and executes at most one at a time, asking the scheduler for
//! a slot first. After a restart it rebuilds its queue from the run table.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use actix::prelude::*;
use tracing::Instrument;

use super::hub::{persistently, Hub};
use super::in_flight::Held;
use super::scheduler::{AcquireSlot, ReleaseSlot, SlotGranted, SlotLease};
use crate::db::{noderoles, runs, RepoError};
use crate::domain::anneal::queued_by_annealer;
use crate::domain::outcome::{finish_run, start_annealed_run, start_run, JigResult};
use crate::domain::{merge_json, DomainError, Effects};
use crate::jigs::JigContext;

/// A queued run as the node actor holds it.
#[derive(Debug, Clone)]
pub struct Ticket {
    pub run_id: i64,
    pub noderole_id: i64,
    pub role: Arc<str>,
    pub priority: bool,
    /// The annealer queued it, so its noderole is in transition already.
    pub annealed: bool,
}

/// Queue this run on the node (the annealer's or a hook's).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct EnqueueRun(pub Ticket);

/// Internal: the current run is over.
#[derive(Debug, Message)]
#[rtype(result = "()")]
struct RunDone;

/// Internal: the queue as the run table has it (after a restart).
#[derive(Debug, Message)]
#[rtype(result = "()")]
struct Rebuilt(Vec<Ticket>);

/// A node's runs in the order it executes them: priority runs (the DHCP
/// and DNS databases) ahead of annealer runs, first in first out within
/// each; one run at a time, and a run already known is not queued twice.
#[derive(Debug, Default)]
pub struct RunQueue {
    waiting: VecDeque<Ticket>,
    /// The run holding or waiting for a slot.
    current: Option<Ticket>,
}

impl RunQueue {
    pub fn new(tickets: Vec<Ticket>) -> Self {
        let mut queue = Self::default();
        for ticket in tickets {
            queue.push(ticket);
        }
        queue
    }

    /// Adds a run unless it is already the current one or waiting.
    pub fn push(&mut self, ticket: Ticket) {
        let known = self.current.as_ref().map(|t| t.run_id) == Some(ticket.run_id)
            || self.waiting.iter().any(|t| t.run_id == ticket.run_id);
        if known {
            return;
        }
        let at = if ticket.priority {
            self.waiting
                .iter()
                .position(|t| !t.priority)
                .unwrap_or(self.waiting.len())
        } else {
            self.waiting.len()
        };
        self.waiting.insert(at, ticket);
    }

    /// The next run to execute, once the current one is done.
    pub fn start_next(&mut self) -> Option<&Ticket> {
        if self.current.is_some() {
            return None;
        }
        self.current = Some(self.waiting.pop_front()?);
        self.current.as_ref()
    }

    /// The run holding or waiting for a slot.
    pub fn current(&self) -> Option<&Ticket> {
        self.current.as_ref()
    }

    /// The current run is over.
    pub fn done(&mut self) {
        self.current = None;
    }

    pub fn is_empty(&self) -> bool {
        self.current.is_none() && self.waiting.is_empty()
    }

    /// Forgets everything (a restarting actor rebuilds from the run table).
    pub fn clear(&mut self) {
        *self = Self::default();
    }
}

/// The node's worker.
pub struct NodeActor {
    node_id: i64,
    node: Arc<str>,
    hub: Arc<Hub>,
    queue: RunQueue,
    /// Held while the node has runs, so kiln does not look settled.
    busy: Option<Held>,
}

impl NodeActor {
    pub fn new(node_id: i64, node: Arc<str>, hub: Arc<Hub>, queue: Vec<Ticket>) -> Self {
        let mut actor = Self {
            node_id,
            node,
            hub,
            queue: RunQueue::new(queue),
            busy: None,
        };
        actor.hold_while_busy();
        actor
    }

    fn enqueue(&mut self, ticket: Ticket) {
        self.queue.push(ticket);
        self.hold_while_busy();
    }

    fn hold_while_busy(&mut self) {
        if self.queue.is_empty() {
            self.busy = None;
        } else if self.busy.is_none() {
            self.busy = Some(self.hub.in_flight.hold());
        }
    }

    /// Asks for a slot for the next run when idle.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        self.hold_while_busy();
        if self.hub.shutdown.is_stopping() {
            return;
        }
        let Some(ticket) = self.queue.start_next().cloned() else {
            return;
        };
        self.hub.trace.record(
            "NodeActor",
            "Scheduler",
            "AcquireSlot",
            &self.node,
            &*ticket.role,
        );
        self.hub.scheduler.do_send(AcquireSlot {
            run_id: ticket.run_id,
            node_id: self.node_id,
            noderole_id: ticket.noderole_id,
            node: self.node.clone(),
            role: ticket.role.clone(),
            priority: ticket.priority,
            reply: ctx.address().recipient(),
        });
    }
}

impl Actor for NodeActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.pump(ctx);
    }
}

impl Supervised for NodeActor {
    fn restarting(&mut self, ctx: &mut Self::Context) {
        tracing::warn!(node = %self.node, "node actor restarting; rebuilding its queue");
        self.queue.clear();
        self.hold_while_busy();
        let hub = self.hub.clone();
        let node_id = self.node_id;
        ctx.spawn(
            async move { rebuild_queue(&hub, node_id).await }
                .into_actor(self)
                .map(|tickets, _, ctx| ctx.notify(Rebuilt(tickets))),
        );
    }
}

impl Handler<EnqueueRun> for NodeActor {
    type Result = ();

    fn handle(&mut self, EnqueueRun(ticket): EnqueueRun, ctx: &mut Self::Context) {
        self.enqueue(ticket);
        self.pump(ctx);
    }
}

impl Handler<Rebuilt> for NodeActor {
    type Result = ();

    fn handle(&mut self, Rebuilt(tickets): Rebuilt, ctx: &mut Self::Context) {
        for ticket in tickets {
            self.enqueue(ticket);
        }
        self.pump(ctx);
    }
}

impl Handler<SlotGranted> for NodeActor {
    type Result = ();

    fn handle(&mut self, granted: SlotGranted, ctx: &mut Self::Context) {
        let Some(ticket) = self.queue.current().cloned() else {
            return;
        };
        if ticket.run_id != granted.run_id {
            return;
        }
        let hub = self.hub.clone();
        let node = self.node.clone();
        let span = tracing::info_span!("run", node = %node, noderole = ticket.noderole_id, run = ticket.run_id);
        let shutdown = self.hub.shutdown.clone();
        ctx.spawn(
            shutdown
                .track(async move {
                    match execute(&hub, &node, &ticket).await {
                        Ok(()) => {}
                        Err(e) if hub.shutdown.is_stopping() => {
                            tracing::info!(error = %e, "kiln stopped before the run was recorded; the next start runs it again");
                        }
                        // The node was deleted (or enrolled into another)
                        // while its run was out: nothing is left to record on.
                        Err(DomainError::Repo(RepoError::NotFound { .. })) => {
                            tracing::info!("the run's node is gone; its result is not recorded");
                        }
                        Err(e) => tracing::error!(error = %e, "run could not be recorded"),
                    }
                    hub.trace.record(
                        "NodeActor",
                        "Scheduler",
                        "ReleaseSlot",
                        &node,
                        &*ticket.role,
                    );
                    hub.scheduler.do_send(ReleaseSlot {
                        run_id: ticket.run_id,
                        node: node.clone(),
                    });
                })
                .instrument(span)
                .into_actor(self)
                .map(|_, _, ctx| ctx.notify(RunDone)),
        );
    }
}

impl Handler<RunDone> for NodeActor {
    type Result = ();

    fn handle(&mut self, _: RunDone, ctx: &mut Self::Context) {
        self.queue.done();
        self.pump(ctx);
    }
}

/// Starts, executes and records one run. What the jig reports having
/// done (its facts; a reboot it scheduled is recorded with the result) is
/// published with the run's own facts, after its result committed. Every
/// database step is retried until it passes, so only the jig's own failure
/// fails the run; a stopping kiln leaves the run for the next start to
/// queue again.
async fn execute(hub: &Arc<Hub>, node: &str, ticket: &Ticket) -> Result<(), DomainError> {
    // The start and the read of the run's context are independent; the
    // run holds one of the global slots while it waits, so both go out at
    // once.
    let (started, context) = tokio::join!(start(hub, ticket), load_context(hub, ticket));
    let Some(effects) = started? else {
        return Ok(());
    };
    hub.counters.started();
    hub.announce("NodeActor", effects);
    hub.trace
        .record("NodeActor", "Jig", "StartRun", node, &*ticket.role);
    let result = match context {
        Ok(ctx) => {
            // A stopping kiln abandons the jig: the run stays `running`,
            // and the next start queues it again (jigs are idempotent).
            tokio::select! {
                result = hub.jigs.run(ctx) => result,
                () = hub.shutdown.stopping() => return Ok(()),
            }
        }
        Err(e @ DomainError::Repo(RepoError::Database(_))) => return Err(e),
        Err(e) => JigResult::failed(format!("could not load the run's context: {e}")),
    };
    let run_id = ticket.run_id;
    // Its children become ready at this commit: no annealer pass may see
    // them before the run's facts are out (see `Hub::fact_order`).
    let _shared = hub.fact_order.read().await;
    let ((), effects) = hub
        .commit_retrying("recording a run", |txn| {
            let result = result.clone();
            Box::pin(async move { Ok(((), finish_run(txn, run_id, &result).await?)) })
        })
        .await?;
    hub.counters.finished(result.succeeded);
    hub.announce("NodeActor", effects);
    Ok(())
}

/// Marks the run running (and, for a hook's re-run, its noderole in
/// transition). `None` when it was no longer queued.
async fn start(hub: &Arc<Hub>, ticket: &Ticket) -> Result<Option<Effects>, DomainError> {
    let run_id = ticket.run_id;
    if ticket.annealed {
        return persistently("starting a run", &hub.shutdown, || {
            start_annealed_run(&hub.db, run_id)
        })
        .await;
    }
    let (started, _) = hub
        .commit_retrying("starting a run", |txn| {
            Box::pin(async move { Ok((start_run(txn, run_id).await?, Effects::default())) })
        })
        .await?;
    Ok(started)
}

/// Reads the run's noderole, role, node and data now, when it starts, in
/// one query (and the node's inventory in a second), retried through
/// database faults (see [`persistently`]).
async fn load_context(hub: &Arc<Hub>, ticket: &Ticket) -> Result<JigContext, DomainError> {
    let noderole_id = ticket.noderole_id;
    let row = persistently("loading a run's context", &hub.shutdown, || async move {
        Ok(noderoles::run_context(&hub.db, noderole_id).await?)
    })
    .await?
    .ok_or_else(|| RepoError::not_found("noderole", noderole_id))?;
    let mut data = row.role.data.clone();
    if !data.is_object() {
        data = serde_json::json!({});
    }
    merge_json(&mut data, &row.noderole.committed_data);
    // What the machine reported of itself, for scripts, as `inventory`
    // (over any `inventory` key a role's data has).
    let node_id = row.node.id;
    let inventory = persistently("loading a node's inventory", &hub.shutdown, || async move {
        Ok(crate::db::inventory::of_node(&hub.db, node_id).await?)
    })
    .await?;
    if let Some(inventory) = inventory {
        data["inventory"] = inventory.document;
    }
    let slot = SlotLease::new(
        hub.scheduler.clone(),
        hub.trace.clone(),
        ticket.run_id,
        Arc::from(row.node.name.as_str()),
        ticket.role.clone(),
    );
    Ok(JigContext {
        slot,
        run_id: ticket.run_id,
        noderole_id: row.noderole.id,
        node: row.node,
        address: row.address,
        role: row.role,
        deployment: row.deployment,
        data,
    })
}

/// The node's queued runs from the run table, in queue order (empty only
/// when kiln stops before the database answers).
async fn rebuild_queue(hub: &Arc<Hub>, node_id: i64) -> Vec<Ticket> {
    let read = persistently("rebuilding a node's queue", &hub.shutdown, || async {
        Ok(runs::queued_of_node(&hub.db, node_id).await?)
    });
    let queued = match read.await {
        Ok(q) => q,
        Err(e) => {
            tracing::error!(error = %e, node_id, "cannot rebuild node queue");
            return Vec::new();
        }
    };
    named_tickets(&hub.db, &queued)
        .await
        .into_iter()
        .map(|(ticket, _)| ticket)
        .collect()
}

/// Tickets for runs with their node's name, the role names read in one
/// query.
pub async fn named_tickets(
    db: &sea_orm::DatabaseConnection,
    runs: &[entity::run::Model],
) -> Vec<(Ticket, String)> {
    let ids: Vec<i64> = runs.iter().map(|r| r.noderole_id).collect();
    let names: HashMap<i64, (Arc<str>, String)> = match noderoles::refs(db, &ids).await {
        Ok(refs) => refs
            .into_iter()
            .map(|r| (r.id, (Arc::from(r.role.as_str()), r.node)))
            .collect(),
        Err(e) => {
            tracing::error!(error = %e, "cannot name runs' roles");
            HashMap::new()
        }
    };
    runs.iter()
        .map(|r| {
            let (role, node) = names
                .get(&r.noderole_id)
                .cloned()
                .unwrap_or_else(|| (Arc::from("?"), String::new()));
            let ticket = Ticket {
                run_id: r.id,
                noderole_id: r.noderole_id,
                role,
                priority: r.priority,
                annealed: queued_by_annealer(r),
            };
            (ticket, node)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticket(run_id: i64, priority: bool) -> Ticket {
        Ticket {
            run_id,
            noderole_id: run_id * 10,
            role: Arc::from("r"),
            priority,
            annealed: !priority,
        }
    }

    fn drain(queue: &mut RunQueue) -> Vec<i64> {
        let mut order = Vec::new();
        while let Some(t) = queue.start_next() {
            order.push(t.run_id);
            queue.done();
        }
        order
    }

    #[test]
    fn priority_runs_go_first_in_their_own_order() {
        let mut queue = RunQueue::new(vec![ticket(1, false), ticket(2, false)]);
        queue.push(ticket(3, true));
        queue.push(ticket(4, false));
        queue.push(ticket(5, true));
        assert_eq!(drain(&mut queue), vec![3, 5, 1, 2, 4]);
        assert!(queue.is_empty());
    }

    #[test]
    fn one_run_at_a_time() {
        let mut queue = RunQueue::new(vec![ticket(1, false), ticket(2, false)]);
        assert_eq!(queue.start_next().map(|t| t.run_id), Some(1));
        assert!(
            queue.start_next().is_none(),
            "a second run while the first holds"
        );
        // A priority run arriving now waits for the current one.
        queue.push(ticket(3, true));
        assert_eq!(queue.current().map(|t| t.run_id), Some(1));
        queue.done();
        assert_eq!(drain(&mut queue), vec![3, 2]);
    }

    #[test]
    fn a_known_run_is_not_queued_twice() {
        let mut queue = RunQueue::new(vec![ticket(1, false), ticket(2, false)]);
        assert_eq!(queue.start_next().map(|t| t.run_id), Some(1));
        queue.push(ticket(1, false));
        queue.push(ticket(2, false));
        queue.done();
        assert_eq!(drain(&mut queue), vec![2]);
    }
}
