//! What every actor shares: the database, the addresses of the singleton
//! actors, the node actor registry, the trace, counters and queue sequence.
//! `apply` is the one place effects of a committed transaction reach the
//! actors.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use actix::prelude::*;
use dashmap::DashMap;
use entity::run;
use sea_orm::DatabaseConnection;
use serde::Serialize;

use super::annealer::{Annealer, Wake};
use super::event_bus::{EventBus, Publish};
use super::node::{EnqueueRun, NodeActor, Ticket};
use super::scheduler::Scheduler;
use super::trace::TraceRecorder;
use crate::db::noderoles;
use crate::domain::anneal::{queued_by_annealer, QueueSeq};
use crate::domain::{DomainError, Effects, Fact};
use crate::jigs::Jigs;

/// Run counters for `/metrics`.
#[derive(Debug, Default)]
pub struct RunCounters {
    queued: AtomicU64,
    started: AtomicU64,
    succeeded: AtomicU64,
    failed: AtomicU64,
}

/// A reading of [`RunCounters`].
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
pub struct RunCounts {
    pub queued_total: u64,
    pub started_total: u64,
    pub succeeded_total: u64,
    pub failed_total: u64,
    /// Queued or waiting, not yet started.
    pub queue_depth: u64,
    pub running: u64,
}

impl RunCounters {
    pub fn queued(&self, n: usize) {
        self.queued.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub fn started(&self) {
        self.started.fetch_add(1, Ordering::Relaxed);
    }

    pub fn finished(&self, succeeded: bool) {
        let counter = if succeeded {
            &self.succeeded
        } else {
            &self.failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn read(&self) -> RunCounts {
        let queued = self.queued.load(Ordering::Relaxed);
        let started = self.started.load(Ordering::Relaxed);
        let succeeded = self.succeeded.load(Ordering::Relaxed);
        let failed = self.failed.load(Ordering::Relaxed);
        RunCounts {
            queued_total: queued,
            started_total: started,
            succeeded_total: succeeded,
            failed_total: failed,
            queue_depth: queued.saturating_sub(started),
            running: started.saturating_sub(succeeded + failed),
        }
    }
}

/// Shared by all actors of one kiln.
pub struct Runtime {
    pub db: DatabaseConnection,
    pub bus: Addr<EventBus>,
    pub scheduler: Addr<Scheduler>,
    pub annealer: Addr<Annealer>,
    pub nodes: DashMap<i64, Addr<NodeActor>>,
    pub trace: Arc<TraceRecorder>,
    pub counters: RunCounters,
    pub seq: QueueSeq,
    pub jigs: Jigs,
}

impl Runtime {
    /// Publishes facts, hands runs to node actors and wakes the annealer,
    /// recording each message as sent by `from`.
    pub async fn apply(self: &Arc<Self>, from: &'static str, effects: Effects) {
        for fact in effects.facts {
            self.publish(from, fact);
        }
        if !effects.runs.is_empty() {
            self.counters.queued(effects.runs.len());
            let named = self.named_tickets(&effects.runs).await;
            for (run, (ticket, node)) in effects.runs.iter().zip(named) {
                self.enqueue(from, run.node_id, &node, ticket).await;
            }
        }
        if effects.wake_annealer {
            self.annealer.do_send(Wake);
        }
    }

    /// Publishes one fact on the bus.
    pub fn publish(&self, from: &'static str, fact: Fact) {
        self.trace
            .record(from, "EventBus", fact.name(), fact.node(), fact.summary());
        self.bus.do_send(Publish(fact));
    }

    /// Hands a run to its node actor. No await before the send when the
    /// actor exists, so the trace keeps the order the runs were queued in.
    async fn enqueue(
        self: &Arc<Self>,
        from: &'static str,
        node_id: i64,
        node: &str,
        ticket: Ticket,
    ) {
        let addr = match self.nodes.get(&node_id).map(|a| a.clone()) {
            Some(addr) => addr,
            None => match self.node_actor(node_id).await {
                Some(addr) => addr,
                None => {
                    tracing::error!(
                        node_id,
                        run = ticket.run_id,
                        "run for a node that no longer exists"
                    );
                    return;
                }
            },
        };
        self.trace
            .record(from, "NodeActor", "EnqueueRun", node, &*ticket.role);
        addr.do_send(EnqueueRun(ticket));
    }

    /// The node's actor, started (supervised) on first use.
    pub async fn node_actor(self: &Arc<Self>, node_id: i64) -> Option<Addr<NodeActor>> {
        if let Some(addr) = self.nodes.get(&node_id) {
            return Some(addr.clone());
        }
        let node = crate::db::nodes::get(&self.db, &crate::db::Key::Id(node_id))
            .await
            .ok()?;
        Some(self.start_node_actor(node.id, &node.name, Vec::new()))
    }

    /// Starts a node's supervised actor with an initial queue.
    pub fn start_node_actor(
        self: &Arc<Self>,
        node_id: i64,
        name: &str,
        queue: Vec<Ticket>,
    ) -> Addr<NodeActor> {
        self.nodes
            .entry(node_id)
            .or_insert_with(|| {
                let rt = self.clone();
                let name: Arc<str> = Arc::from(name);
                actix::Supervisor::start(move |_| NodeActor::new(node_id, name, rt, queue))
            })
            .clone()
    }

    /// Tickets for runs, with role names looked up in one query.
    pub async fn tickets_for(&self, runs: &[run::Model]) -> Vec<Ticket> {
        self.named_tickets(runs)
            .await
            .into_iter()
            .map(|(ticket, _)| ticket)
            .collect()
    }

    /// Tickets with their node's name, in one query.
    async fn named_tickets(&self, runs: &[run::Model]) -> Vec<(Ticket, String)> {
        let ids: Vec<i64> = runs.iter().map(|r| r.noderole_id).collect();
        let names: HashMap<i64, (Arc<str>, String)> = match noderoles::refs(&self.db, &ids).await {
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
}

/// Retries a database step that failed for a passing reason (a lost
/// connection, a busy database, a deadlock PostgreSQL broke): a run that
/// executed must be recorded, or its noderole would stay in transition, and
/// a hook's re-run must be queued, or the DHCP answers would lag behind.
pub async fn persistently<T, F, Fut>(what: &str, mut step: F) -> Result<T, DomainError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, DomainError>>,
{
    let mut delay = std::time::Duration::from_millis(20);
    let mut attempt = 0;
    loop {
        match step().await {
            Ok(value) => return Ok(value),
            Err(DomainError::Repo(crate::db::RepoError::Database(e))) if attempt < 30 => {
                attempt += 1;
                tracing::warn!(error = %e, attempt, "{what} failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(std::time::Duration::from_secs(2));
            }
            Err(e) => return Err(e),
        }
    }
}
