//! The annealer: finds todo noderoles whose parents are all active, on
//! alive and available nodes of committed deployments, marks them
//! transition and queues their runs — in one transaction per pass — then
//! hands the runs to their node actors. Wake-ups arriving during a pass are
//! coalesced into one more pass.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use serde::Serialize;

use super::dispatch::Dispatch;
use crate::domain::anneal::pass;

/// Noderoles moved per pass; more ready ones trigger another pass at once.
const PASS_LIMIT: u64 = 500;

/// After a failed pass (the database restarting, a deadlock it broke), the
/// next one comes this much later even if nothing else wakes the annealer:
/// ready noderoles must not wait for an unrelated event.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Look for ready noderoles (what an [`super::hub::AnnealerWake`] turns
/// into inside the annealer).
struct Wake;

/// Asks for the annealer's status.
#[derive(Debug, Message)]
#[rtype(result = "AnnealerStatus")]
pub struct GetAnnealerStatus;

/// What the annealer has done (for `/api/v2/anneal` and `/metrics`).
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct AnnealerStatus {
    pub passes: u64,
    pub started_runs: u64,
    pub running: bool,
    pub last_pass_ms: Option<u64>,
    pub last_error: Option<String>,
}

/// Internal: a pass ended.
#[derive(Message)]
#[rtype(result = "()")]
enum PassDone {
    /// It hit the limit: more may be ready.
    Full,
    /// It took every ready noderole.
    Drained,
    Failed,
}

/// The annealer actor. It listens to the hub's wake handle, so nothing
/// needs its address to wake it.
pub struct Annealer {
    dispatch: Arc<Dispatch>,
    running: bool,
    again: bool,
    status: AnnealerStatus,
}

impl Annealer {
    pub fn new(dispatch: Arc<Dispatch>) -> Self {
        Self {
            dispatch,
            running: false,
            again: false,
            status: AnnealerStatus::default(),
        }
    }

    fn start_pass(&mut self, ctx: &mut Context<Self>) {
        if self.dispatch.hub.shutdown.is_stopping() {
            return;
        }
        if self.running {
            self.again = true;
            return;
        }
        self.running = true;
        self.again = false;
        let started = Instant::now();
        let dispatch = self.dispatch.clone();
        let shutdown = dispatch.hub.shutdown.clone();
        ctx.spawn(
            shutdown
                .track(async move {
                    let outcome = one_pass(&dispatch).await;
                    (outcome, started.elapsed())
                })
                .into_actor(self)
            .map(|(outcome, elapsed), act, ctx| {
                act.status.passes += 1;
                act.status.last_pass_ms = Some(elapsed.as_millis() as u64);
                let done = match outcome {
                    Ok((started_runs, full)) => {
                        act.status.started_runs += started_runs as u64;
                        act.status.last_error = None;
                        if full {
                            PassDone::Full
                        } else {
                            PassDone::Drained
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "annealer pass failed; trying again shortly");
                        act.status.last_error = Some(e);
                        PassDone::Failed
                    }
                };
                ctx.notify(done);
            }),
        );
    }
}

async fn one_pass(dispatch: &Dispatch) -> Result<(usize, bool), String> {
    let seq = dispatch.hub.seq.clone();
    dispatch
        .transact_alone("Annealer", |txn| {
            Box::pin(async move {
                let (effects, full) = pass(txn, PASS_LIMIT, &seq).await?;
                Ok(((effects.runs.len(), full), effects))
            })
        })
        .await
        .map_err(|e| e.to_string())
}

impl Actor for Annealer {
    type Context = Context<Self>;

    /// Turns every wake-up of the hub's handle into a pass. The first
    /// comes when the orchestrator resumes work.
    fn started(&mut self, ctx: &mut Self::Context) {
        let wake = self.dispatch.hub.wake.clone();
        ctx.add_stream(futures::stream::unfold(wake, |wake| async move {
            wake.woken().await;
            Some((Wake, wake))
        }));
    }
}

impl StreamHandler<Wake> for Annealer {
    fn handle(&mut self, _: Wake, ctx: &mut Self::Context) {
        self.start_pass(ctx);
    }

    /// The stream never ends on its own; the annealer stops with its system.
    fn finished(&mut self, _: &mut Self::Context) {}
}

impl Handler<PassDone> for Annealer {
    type Result = ();

    fn handle(&mut self, done: PassDone, ctx: &mut Self::Context) {
        self.running = false;
        match done {
            PassDone::Failed => {
                ctx.run_later(RETRY_AFTER, |annealer, ctx| {
                    annealer.start_pass(ctx);
                });
            }
            PassDone::Full => self.start_pass(ctx),
            PassDone::Drained if self.again => self.start_pass(ctx),
            PassDone::Drained => {}
        }
    }
}

impl Handler<GetAnnealerStatus> for Annealer {
    type Result = MessageResult<GetAnnealerStatus>;

    fn handle(&mut self, _: GetAnnealerStatus, _: &mut Self::Context) -> Self::Result {
        let mut status = self.status.clone();
        status.running = self.running;
        MessageResult(status)
    }
}
