//! The scheduler: the global semaphore. It alone limits how many runs
//! execute at once (`scheduler.max_concurrent_runs`), granting slots first
//! come, first served; priority runs (the DHCP and DNS databases) go ahead
//! of waiting annealer runs. Each node asks for one slot at a time, so a
//! node with a long queue cannot starve the others.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use serde::Serialize;

use super::trace::TraceRecorder;
use crate::shutdown::Shutdown;

/// A node asks for a slot for its next run.
#[derive(Message)]
#[rtype(result = "()")]
pub struct AcquireSlot {
    pub run_id: i64,
    pub node_id: i64,
    pub noderole_id: i64,
    pub node: Arc<str>,
    pub role: Arc<str>,
    pub priority: bool,
    pub reply: Recipient<SlotGranted>,
}

/// The slot is yours; run `run_id` now.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct SlotGranted {
    pub run_id: i64,
}

/// The run is over; the slot goes to the next in line.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ReleaseSlot {
    pub run_id: i64,
    pub node: Arc<str>,
}

/// Asks for the scheduler's state.
#[derive(Debug, Message)]
#[rtype(result = "SchedulerStatus")]
pub struct GetSchedulerStatus;

/// What the scheduler holds now.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SchedulerStatus {
    pub capacity: usize,
    pub in_use: usize,
    pub running: Vec<RunningSlot>,
    pub waiting: Vec<WaitingRun>,
    /// Total time runs have spent waiting for a slot, in milliseconds.
    pub total_wait_ms: u64,
    pub granted: u64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RunningSlot {
    pub run_id: i64,
    pub node_id: i64,
    pub noderole_id: i64,
    pub node: String,
    pub role: String,
    pub running_ms: u64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct WaitingRun {
    pub run_id: i64,
    pub node_id: i64,
    pub noderole_id: i64,
    pub node: String,
    pub role: String,
    /// 1 is next.
    pub position: usize,
    pub priority: bool,
}

struct Held {
    node_id: i64,
    noderole_id: i64,
    node: Arc<str>,
    role: Arc<str>,
    since: Instant,
}

struct Waiter {
    request: AcquireSlot,
    since: Instant,
}

/// Holds the slots and the line for them.
pub struct Scheduler {
    capacity: usize,
    running: HashMap<i64, Held>,
    priority: VecDeque<Waiter>,
    normal: VecDeque<Waiter>,
    trace: Arc<TraceRecorder>,
    total_wait: Duration,
    granted: u64,
    shutdown: Shutdown,
}

impl Scheduler {
    pub fn new(capacity: usize, trace: Arc<TraceRecorder>, shutdown: Shutdown) -> Self {
        Self {
            shutdown,
            capacity: capacity.max(1),
            running: HashMap::new(),
            priority: VecDeque::new(),
            normal: VecDeque::new(),
            trace,
            total_wait: Duration::ZERO,
            granted: 0,
        }
    }

    fn grant(&mut self) {
        // A stopping kiln starts no run; the waiting ones stay queued in
        // the run table for the next start.
        if self.shutdown.is_stopping() {
            return;
        }
        while self.running.len() < self.capacity {
            let Some(waiter) = self
                .priority
                .pop_front()
                .or_else(|| self.normal.pop_front())
            else {
                return;
            };
            let req = waiter.request;
            self.total_wait += waiter.since.elapsed();
            self.granted += 1;
            self.trace.record(
                "Scheduler",
                "NodeActor",
                "SlotGranted",
                &req.node,
                &*req.role,
            );
            self.running.insert(
                req.run_id,
                Held {
                    node_id: req.node_id,
                    noderole_id: req.noderole_id,
                    node: req.node.clone(),
                    role: req.role.clone(),
                    since: Instant::now(),
                },
            );
            req.reply.do_send(SlotGranted { run_id: req.run_id });
        }
    }
}

impl Actor for Scheduler {
    type Context = Context<Self>;
}

impl Handler<AcquireSlot> for Scheduler {
    type Result = ();

    fn handle(&mut self, request: AcquireSlot, _: &mut Self::Context) {
        let waiter = Waiter {
            request,
            since: Instant::now(),
        };
        if waiter.request.priority {
            self.priority.push_back(waiter);
        } else {
            self.normal.push_back(waiter);
        }
        self.grant();
    }
}

impl Handler<ReleaseSlot> for Scheduler {
    type Result = ();

    fn handle(&mut self, msg: ReleaseSlot, _: &mut Self::Context) {
        self.running.remove(&msg.run_id);
        self.grant();
    }
}

impl Handler<GetSchedulerStatus> for Scheduler {
    type Result = MessageResult<GetSchedulerStatus>;

    fn handle(&mut self, _: GetSchedulerStatus, _: &mut Self::Context) -> Self::Result {
        let mut running: Vec<RunningSlot> = self
            .running
            .iter()
            .map(|(run_id, held)| RunningSlot {
                run_id: *run_id,
                node_id: held.node_id,
                noderole_id: held.noderole_id,
                node: held.node.to_string(),
                role: held.role.to_string(),
                running_ms: held.since.elapsed().as_millis() as u64,
            })
            .collect();
        running.sort_by_key(|r| r.run_id);
        let waiting = self
            .priority
            .iter()
            .chain(self.normal.iter())
            .enumerate()
            .map(|(i, w)| WaitingRun {
                run_id: w.request.run_id,
                node_id: w.request.node_id,
                noderole_id: w.request.noderole_id,
                node: w.request.node.to_string(),
                role: w.request.role.to_string(),
                position: i + 1,
                priority: w.request.priority,
            })
            .collect();
        MessageResult(SchedulerStatus {
            capacity: self.capacity,
            in_use: self.running.len(),
            running,
            waiting,
            total_wait_ms: self.total_wait.as_millis() as u64,
            granted: self.granted,
        })
    }
}
