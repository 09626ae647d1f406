//! The one shutdown signal. Every background task kiln starts (the DHCP
//! and TFTP servers, discovery, the power driver, the install watchdog,
//! the simulator, the annealer's passes, node actors' runs, role hooks)
//! takes it, stops starting new work when it fires, and is tracked, so
//! stopping kiln can wait until each has ended: nothing is left holding a
//! database connection when the system goes away.

use std::future::Future;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The shutdown token and the tasks that answer to it.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    token: CancellationToken,
    tasks: TaskTracker,
}

impl Shutdown {
    /// Whether stopping has begun (start no new work).
    pub fn is_stopping(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Resolves once stopping has begun.
    pub async fn stopping(&self) {
        self.token.cancelled().await;
    }

    /// `task`, counted until it ends, so [`Self::stop`] waits for it.
    pub fn track<F: Future>(&self, task: F) -> impl Future<Output = F::Output> {
        self.tasks.track_future(task)
    }

    /// Runs `task` on Tokio, tracked, dropping it when stopping begins.
    pub fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let token = self.token.clone();
        self.tasks.spawn(async move {
            tokio::select! {
                () = task => {}
                () = token.cancelled() => {}
            }
        });
    }

    /// Runs `task` on the current actix arbiter (it may start actors),
    /// tracked, dropping it when stopping begins.
    pub fn spawn_local<F>(&self, task: F)
    where
        F: Future<Output = ()> + 'static,
    {
        let token = self.token.clone();
        actix::spawn(self.track(async move {
            tokio::select! {
                () = task => {}
                () = token.cancelled() => {}
            }
        }));
    }

    /// Signals every task and waits until each tracked one has ended.
    pub async fn stop(&self) {
        self.token.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }
}
