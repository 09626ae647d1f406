//! Work in flight that the database does not show yet: a fact on its way
//! to the hooks that will queue runs for it, a node actor holding runs
//! between their queueing and their recorded end. Whoever asks whether
//! kiln has settled waits until none is left, then believes the database
//! (`Orchestrator::settled`), so a test never sleeps to let a hook catch up.
//!
//! A hold is handed on before it is let go (a run's hold outlives the
//! publishing of its facts; a fact's hold outlives its delivery to each
//! subscriber), so the count never touches zero between a change and the
//! work it causes.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

/// The count of holds, and a generation that moves at every hold and
/// release so a waiter can tell that something happened.
#[derive(Debug, Default)]
pub struct InFlight {
    holds: AtomicUsize,
    generation: AtomicU64,
    changed: Notify,
}

/// One piece of work in flight; dropping it says the work is done.
#[derive(Debug)]
pub struct Held(Arc<InFlight>);

impl InFlight {
    pub fn hold(self: &Arc<Self>) -> Held {
        self.holds.fetch_add(1, Ordering::SeqCst);
        self.bump();
        Held(self.clone())
    }

    /// How many holds there are now.
    pub fn holds(&self) -> usize {
        self.holds.load(Ordering::SeqCst)
    }

    /// A number that differs from every earlier reading once anything was
    /// held or let go since.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Resolves when nothing is held.
    pub async fn quiet(&self) {
        self.wait_until(|me| me.holds() == 0).await;
    }

    /// Resolves once anything was held or let go after `generation`.
    pub async fn changed_since(&self, generation: u64) {
        self.wait_until(|me| me.generation() != generation).await;
    }

    async fn wait_until(&self, done: impl Fn(&Self) -> bool) {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            // Registered before the check, so a change between the check
            // and the await still wakes this waiter.
            notified.as_mut().enable();
            if done(self) {
                return;
            }
            notified.await;
        }
    }

    fn bump(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.changed.notify_waiters();
    }
}

impl Held {
    /// Another hold on the same count, for work this work hands on.
    pub fn another(&self) -> Held {
        self.0.hold()
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.0.holds.fetch_sub(1, Ordering::SeqCst);
        self.0.bump();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn quiet_waits_for_the_last_hold() {
        let in_flight = Arc::new(InFlight::default());
        let first = in_flight.hold();
        let handed_on = first.another();
        drop(first);
        assert_eq!(in_flight.holds(), 1);
        let waiter = tokio::spawn({
            let in_flight = in_flight.clone();
            async move { in_flight.quiet().await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "quiet while a hold remains");
        drop(handed_on);
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("quiet after the last hold")
            .unwrap();
    }

    #[tokio::test]
    async fn a_hold_and_its_release_move_the_generation() {
        let in_flight = Arc::new(InFlight::default());
        let before = in_flight.generation();
        let waiter = tokio::spawn({
            let in_flight = in_flight.clone();
            async move { in_flight.changed_since(before).await }
        });
        drop(in_flight.hold());
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("woken by the change")
            .unwrap();
        assert_eq!(in_flight.generation(), before + 2);
        assert_eq!(in_flight.holds(), 0);
    }
}
