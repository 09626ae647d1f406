//! Dispatch: the one way a domain change reaches the actors. It runs the
//! change in a transaction, and only after the commit publishes its facts,
//! hands its runs to their node actors (starting an actor on first use) and
//! wakes the annealer, so no actor ever acts on a change that rolled back.

use std::sync::Arc;

use actix::prelude::*;
use dashmap::DashMap;
use entity::run;
use sea_orm::DatabaseTransaction;

use super::hub::{persistently, Change, Hub};
use super::node::{named_tickets, EnqueueRun, NodeActor, Ticket};
use crate::domain::{DomainResult, Effects};

/// The node actors, and the applying of committed effects.
pub struct Dispatch {
    pub hub: Arc<Hub>,
    nodes: DashMap<i64, Addr<NodeActor>>,
}

impl Dispatch {
    pub fn new(hub: Arc<Hub>) -> Self {
        Self {
            hub,
            nodes: DashMap::new(),
        }
    }

    /// Runs `change` in one transaction and applies its effects as `from`
    /// after the commit.
    pub async fn transact<T, F>(&self, from: &'static str, change: F) -> DomainResult<T>
    where
        F: for<'c> FnOnce(&'c DatabaseTransaction) -> Change<'c, T>,
    {
        let _shared = self.hub.fact_order.read().await;
        let (value, effects) = self.hub.commit(change).await?;
        self.apply(from, effects).await;
        Ok(value)
    }

    /// [`Self::transact`] for an annealer pass: no other change commits or
    /// publishes meanwhile (see [`Hub::fact_order`]).
    pub async fn transact_alone<T, F>(&self, from: &'static str, change: F) -> DomainResult<T>
    where
        F: for<'c> FnOnce(&'c DatabaseTransaction) -> Change<'c, T>,
    {
        let _alone = self.hub.fact_order.write().await;
        let (value, effects) = self.hub.commit(change).await?;
        self.apply(from, effects).await;
        Ok(value)
    }

    /// [`Self::transact`] for a change that must happen: a database fault
    /// is retried until it passes (see [`Hub::commit_retrying`]).
    pub async fn transact_retrying<T, F>(
        &self,
        from: &'static str,
        what: &str,
        change: F,
    ) -> DomainResult<T>
    where
        F: for<'c> Fn(&'c DatabaseTransaction) -> Change<'c, T>,
    {
        let _shared = self.hub.fact_order.read().await;
        let (value, effects) = self.hub.commit_retrying(what, change).await?;
        self.apply(from, effects).await;
        Ok(value)
    }

    /// Publishes facts, hands runs to node actors and wakes the annealer,
    /// recording each message as sent by `from`. Call only after the
    /// transaction that produced `effects` committed.
    pub async fn apply(&self, from: &'static str, effects: Effects) {
        for fact in effects.facts {
            self.hub.publish(from, fact);
        }
        if !effects.runs.is_empty() {
            self.hub.counters.queued(effects.runs.len());
            let named = named_tickets(&self.hub.db, &effects.runs).await;
            for (run, (ticket, node)) in effects.runs.iter().zip(named) {
                self.enqueue(from, run.node_id, &node, ticket).await;
            }
        }
        if effects.wake_annealer {
            self.hub.wake.wake();
        }
    }

    /// Hands a run to its node actor. No await before the send when the
    /// actor exists, so the trace keeps the order the runs were queued in.
    async fn enqueue(&self, from: &'static str, node_id: i64, node: &str, ticket: Ticket) {
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
        self.hub
            .trace
            .record(from, "NodeActor", "EnqueueRun", node, &*ticket.role);
        addr.do_send(EnqueueRun(ticket));
    }

    /// The node's actor, started (supervised) on first use; `None` once the
    /// node is gone (or kiln stops while the database is away).
    async fn node_actor(&self, node_id: i64) -> Option<Addr<NodeActor>> {
        if let Some(addr) = self.nodes.get(&node_id) {
            return Some(addr.clone());
        }
        let hub = &self.hub;
        let node = persistently("finding a run's node", &hub.shutdown, || async move {
            Ok(crate::db::nodes::get(&hub.db, &crate::db::Key::Id(node_id)).await?)
        })
        .await
        .ok()?;
        Some(self.start_node_actor(node.id, &node.name, Vec::new()))
    }

    /// Starts a node's supervised actor with an initial queue.
    pub fn start_node_actor(
        &self,
        node_id: i64,
        name: &str,
        queue: Vec<Ticket>,
    ) -> Addr<NodeActor> {
        self.nodes
            .entry(node_id)
            .or_insert_with(|| {
                let hub = self.hub.clone();
                let name: Arc<str> = Arc::from(name);
                actix::Supervisor::start(move |_| NodeActor::new(node_id, name, hub, queue))
            })
            .clone()
    }

    /// Forgets a deleted node's actor (it stops once nothing holds it).
    pub fn remove_node_actor(&self, node_id: i64) {
        self.nodes.remove(&node_id);
    }

    /// How many node actors exist.
    pub fn node_actor_count(&self) -> usize {
        self.nodes.len()
    }

    /// Tickets for runs, with role names looked up in one query.
    pub async fn tickets_for(&self, runs: &[run::Model]) -> Vec<Ticket> {
        named_tickets(&self.hub.db, runs)
            .await
            .into_iter()
            .map(|(ticket, _)| ticket)
            .collect()
    }
}
