//! What every actor shares: the database, the addresses of the singleton
//! actors, the annealer's wake handle, the trace, counters and the queue
//! sequence.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

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
    /// Orders what is seen against what is said: a change holds it shared
    /// from before its commit until its facts are published, an annealer
    /// pass holds it alone. So no pass acts on a change whose facts are not
    /// out yet, and the trace and the event stream show a parent's facts
    /// before its child's.
    pub fact_order: tokio::sync::RwLock<()>,
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
    /// is retried until it passes or kiln stops (see [`persistently`]), so
    /// `change` may run more than once.
    pub async fn commit_retrying<T, F>(&self, what: &str, change: F) -> DomainResult<(T, Effects)>
    where
        F: for<'c> Fn(&'c DatabaseTransaction) -> Change<'c, T>,
    {
        persistently(what, &self.shutdown, || self.commit(&change)).await
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

/// The first wait before a failed database step is tried again; each
/// further failure doubles it, up to [`LONGEST_RETRY_WAIT`].
const FIRST_RETRY_WAIT: Duration = Duration::from_millis(20);

/// The longest wait between two tries, so a step goes through within
/// about this long of the database being back.
const LONGEST_RETRY_WAIT: Duration = Duration::from_millis(500);

/// Retries a database step that failed for a passing reason (the database
/// restarting or down, a lost connection, a busy database, a deadlock
/// PostgreSQL broke) with backoff, for as long as it takes: a run that
/// executed must be recorded, or its noderole would stay in transition; a
/// run's start and context must be read, or the run would fail for no
/// fault of its jig; a hook's re-run must be queued, or the DHCP answers
/// would lag behind. Only `shutdown` ends the retries (returning the last
/// failure): the next start picks the work up again.
pub async fn persistently<T, F, Fut>(
    what: &str,
    shutdown: &Shutdown,
    mut step: F,
) -> Result<T, DomainError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, DomainError>>,
{
    let mut wait = FIRST_RETRY_WAIT;
    let mut attempt: u64 = 0;
    loop {
        let fault = match step().await {
            Err(DomainError::Repo(RepoError::Database(fault))) => fault,
            done => return done,
        };
        attempt += 1;
        if shutdown.is_stopping() {
            return Err(RepoError::Database(fault).into());
        }
        tracing::warn!(error = %fault, attempt, "{what} failed; retrying");
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = shutdown.stopping() => return Err(RepoError::Database(fault).into()),
        }
        wait = (wait * 2).min(LONGEST_RETRY_WAIT);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fault() -> DomainError {
        let gone = sea_orm::RuntimeErr::Internal("connection refused".into());
        RepoError::Database(sea_orm::DbErr::Conn(gone)).into()
    }

    #[tokio::test]
    async fn a_database_fault_is_retried_until_it_passes() {
        let mut tries = 0;
        let result = persistently("a step", &Shutdown::default(), || {
            tries += 1;
            let failing = tries <= 5;
            async move {
                if failing {
                    Err(fault())
                } else {
                    Ok(tries)
                }
            }
        })
        .await;
        assert_eq!(result.unwrap(), 6);
    }

    #[tokio::test]
    async fn any_other_failure_comes_back_at_once() {
        let mut tries = 0;
        let result: Result<(), _> = persistently("a step", &Shutdown::default(), || {
            tries += 1;
            async { Err(DomainError::StateConflict("no".into())) }
        })
        .await;
        assert!(matches!(result, Err(DomainError::StateConflict(_))));
        assert_eq!(tries, 1);
    }

    #[tokio::test]
    async fn stopping_ends_the_retries() {
        let shutdown = Shutdown::default();
        let stopper = shutdown.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            stopper.stop().await;
        });
        let result: Result<(), _> =
            persistently("a step", &shutdown, || async { Err(fault()) }).await;
        assert!(matches!(
            result,
            Err(DomainError::Repo(RepoError::Database(_)))
        ));
    }
}
