//! What every actor shares: the database, the addresses of the singleton
//! actors, the annealer's wake handle, the trace, counters and the queue
//! sequence.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use actix::prelude::*;
use futures::future::BoxFuture;
use sea_orm::{DatabaseConnection, DatabaseTransaction, TransactionTrait};
use serde::Serialize;
use tokio::sync::Notify;

use super::event_bus::{EventBus, Publish};
use super::in_flight::InFlight;
use super::scheduler::Scheduler;
use super::trace::TraceRecorder;
use crate::db::RepoError;
use crate::domain::anneal::QueueSeq;
use crate::domain::{DomainError, DomainResult, Effects, Fact};
use crate::jigs::Jigs;
use crate::shutdown::Shutdown;

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

/// Asks the annealer for a pass. Wake-ups that arrive before it looks
/// coalesce into one, so waking is cheap enough to do after every change;
/// whoever wakes it needs this handle, not the annealer's address.
#[derive(Debug, Clone, Default)]
pub struct AnnealerWake(Arc<Notify>);

impl AnnealerWake {
    pub fn wake(&self) {
        self.0.notify_one();
    }

    /// Resolves at the next wake-up (or at once if one is pending).
    pub async fn woken(&self) {
        self.0.notified().await;
    }
}

/// What the actors of one kiln share: the database, the singleton actors
/// they message, the trace, counters and the queue sequence.
pub struct Hub {
    pub db: DatabaseConnection,
    pub bus: Addr<EventBus>,
    pub scheduler: Addr<Scheduler>,
    pub wake: AnnealerWake,
    pub trace: Arc<TraceRecorder>,
    pub counters: RunCounters,
    pub seq: Arc<QueueSeq>,
    pub jigs: Jigs,
    pub shutdown: Shutdown,
    pub in_flight: Arc<InFlight>,
}

/// A domain change: runs inside the transaction it is given and returns
/// its value with the effects to apply once that transaction committed.
pub type Change<'c, T> = BoxFuture<'c, DomainResult<(T, Effects)>>;

impl Hub {
    /// Runs `change` in one transaction and returns its value and effects
    /// once it committed (nothing is applied: see `Dispatch::transact`).
    pub async fn commit<T, F>(&self, change: F) -> DomainResult<(T, Effects)>
    where
        F: for<'c> FnOnce(&'c DatabaseTransaction) -> Change<'c, T>,
    {
        let txn = self.db.begin().await.map_err(RepoError::from)?;
        let (value, effects) = change(&txn).await?;
        txn.commit().await.map_err(RepoError::from)?;
        Ok((value, effects))
    }

    /// [`Self::commit`] for a change that must happen: a run that executed
    /// must be recorded, a hook's re-run must be queued. A database fault
    /// is retried until it passes, so `change` may run more than once.
    pub async fn commit_retrying<T, F>(&self, what: &str, change: F) -> DomainResult<(T, Effects)>
    where
        F: for<'c> Fn(&'c DatabaseTransaction) -> Change<'c, T>,
    {
        persistently(what, || self.commit(&change)).await
    }

    /// Publishes facts and wakes the annealer: the effects of a change that
    /// queues no runs (a run's start and end), after its commit.
    pub fn announce(&self, from: &'static str, effects: Effects) {
        debug_assert!(effects.runs.is_empty(), "runs go through Dispatch");
        for fact in effects.facts {
            self.publish(from, fact);
        }
        if effects.wake_annealer {
            self.wake.wake();
        }
    }

    /// Publishes one fact on the bus, recorded as sent by `from`.
    pub fn publish(&self, from: &'static str, fact: Fact) {
        self.trace
            .record(from, "EventBus", fact.name(), fact.node(), fact.summary());
        self.bus.do_send(Publish {
            fact,
            held: self.in_flight.hold(),
        });
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
