//! The scheduler: the global semaphore. It alone limits how many runs
//! execute at once (`scheduler.max_concurrent_runs`), granting slots first
//! come, first served; priority runs (the DHCP and DNS databases) go ahead
//! of waiting annealer runs. Each node asks for one slot at a time, so a
//! node with a long queue cannot starve the others.
//!
//! A run that waits on its machine rather than working (the inventory role
//! waiting for the discovery image's report) parks its slot: the slot goes
//! to the next in line, and the run takes one back, ahead of its line,
//! before it reports its result ([`SlotLease`]). A slot counts work, not
//! waiting, so ten silent machines cannot stall every other node.

use std::collections::{BTreeMap, VecDeque};
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

/// A running run waits on something outside kiln: its slot goes to the
/// next in line until it unparks.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ParkSlot {
    pub run_id: i64,
    pub node: Arc<str>,
}

/// A parked run has work again: it waits for a slot at the front of its
/// line, and `granted` fires when it holds one.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct UnparkSlot {
    pub run_id: i64,
    pub node: Arc<str>,
    pub granted: tokio::sync::oneshot::Sender<()>,
}

/// A run's hold on its slot, as its jig sees it: what lets a jig that
/// waits on the machine give the slot up while it waits.
#[derive(Clone)]
pub struct SlotLease {
    scheduler: Addr<Scheduler>,
    trace: Arc<TraceRecorder>,
    run_id: i64,
    node: Arc<str>,
    role: Arc<str>,
}

impl SlotLease {
    pub fn new(
        scheduler: Addr<Scheduler>,
        trace: Arc<TraceRecorder>,
        run_id: i64,
        node: Arc<str>,
        role: Arc<str>,
    ) -> Self {
        Self {
            scheduler,
            trace,
            run_id,
            node,
            role,
        }
    }

    /// Runs `wait` with the slot parked, and holds a slot again when it
    /// returns (so the run's result is recorded inside the cap, as every
    /// run's is).
    pub async fn parked_while<F: std::future::Future>(&self, wait: F) -> F::Output {
        self.trace
            .record("Jig", "Scheduler", "ParkSlot", &self.node, &*self.role);
        self.scheduler.do_send(ParkSlot {
            run_id: self.run_id,
            node: self.node.clone(),
        });
        let out = wait.await;
        let (granted, slot) = tokio::sync::oneshot::channel();
        self.trace
            .record("Jig", "Scheduler", "UnparkSlot", &self.node, &*self.role);
        self.scheduler.do_send(UnparkSlot {
            run_id: self.run_id,
            node: self.node.clone(),
            granted,
        });
        // A scheduler that is gone (kiln stopping) grants nothing; the run
        // is abandoned with everything else then.
        let _ = slot.await;
        out
    }
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
    /// Runs waiting on their machines with their slots given up.
    pub parked: usize,
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

/// The line for the slots: at most `capacity` runs hold one; priority runs
/// are granted before the others, each line first come, first served.
#[derive(Debug)]
pub struct SlotLine<T> {
    capacity: usize,
    running: BTreeMap<i64, T>,
    /// Runs that hold no slot while they wait on their machine.
    parked: BTreeMap<i64, T>,
    priority: VecDeque<(i64, T)>,
    normal: VecDeque<(i64, T)>,
}

impl<T> SlotLine<T> {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            running: BTreeMap::new(),
            parked: BTreeMap::new(),
            priority: VecDeque::new(),
            normal: VecDeque::new(),
        }
    }

    /// Run `run_id` waits for a slot.
    pub fn wait(&mut self, run_id: i64, priority: bool, item: T) {
        let line = if priority {
            &mut self.priority
        } else {
            &mut self.normal
        };
        line.push_back((run_id, item));
    }

    /// Grants the next slot, if one is free and a run waits.
    pub fn grant_next(&mut self) -> Option<(i64, &mut T)> {
        if self.running.len() >= self.capacity {
            return None;
        }
        let (run_id, item) = self
            .priority
            .pop_front()
            .or_else(|| self.normal.pop_front())?;
        let held = self.running.entry(run_id).or_insert(item);
        Some((run_id, held))
    }

    /// The run is over; its slot (or its parked place) is free.
    pub fn release(&mut self, run_id: i64) -> Option<T> {
        self.running
            .remove(&run_id)
            .or_else(|| self.parked.remove(&run_id))
    }

    /// The running run `run_id` gives its slot up while it waits; false
    /// when it holds none.
    pub fn park(&mut self, run_id: i64) -> bool {
        match self.running.remove(&run_id) {
            Some(item) => {
                self.parked.insert(run_id, item);
                true
            }
            None => false,
        }
    }

    /// The parked run `run_id` waits for a slot again, first in its line
    /// (it was granted one before everyone now waiting); `change` updates
    /// what it waits with and says whether its line is the priority one.
    /// False when it was not parked.
    pub fn unpark(&mut self, run_id: i64, change: impl FnOnce(&mut T) -> bool) -> bool {
        let Some(mut item) = self.parked.remove(&run_id) else {
            return false;
        };
        let line = if change(&mut item) {
            &mut self.priority
        } else {
            &mut self.normal
        };
        line.push_front((run_id, item));
        true
    }

    /// How many runs wait on their machines without a slot.
    pub fn parked(&self) -> usize {
        self.parked.len()
    }

    /// The runs holding a slot, by run id.
    pub fn running(&self) -> impl Iterator<Item = (i64, &T)> {
        self.running.iter().map(|(id, item)| (*id, item))
    }

    /// The waiting runs, in the order they will be granted.
    pub fn waiting(&self) -> impl Iterator<Item = &T> {
        self.priority
            .iter()
            .chain(self.normal.iter())
            .map(|(_, item)| item)
    }

    pub fn in_use(&self) -> usize {
        self.running.len()
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

/// A run in the line or holding a slot, `since` it asked or was granted.
struct Request {
    request: AcquireSlot,
    since: Instant,
    /// Set for a parked run taking a slot back: told here, not its node.
    unparked: Option<tokio::sync::oneshot::Sender<()>>,
}

/// Holds the slots and the line for them.
pub struct Scheduler {
    line: SlotLine<Request>,
    trace: Arc<TraceRecorder>,
    total_wait: Duration,
    granted: u64,
    shutdown: Shutdown,
}

impl Scheduler {
    pub fn new(capacity: usize, trace: Arc<TraceRecorder>, shutdown: Shutdown) -> Self {
        Self {
            shutdown,
            line: SlotLine::new(capacity),
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
        while let Some((run_id, held)) = self.line.grant_next() {
            self.total_wait += held.since.elapsed();
            held.since = Instant::now();
            self.granted += 1;
            if let Some(granted) = held.unparked.take() {
                let req = &held.request;
                self.trace
                    .record("Scheduler", "Jig", "SlotGranted", &req.node, &*req.role);
                let _ = granted.send(());
                continue;
            }
            let req = &held.request;
            self.trace.record(
                "Scheduler",
                "NodeActor",
                "SlotGranted",
                &req.node,
                &*req.role,
            );
            req.reply.do_send(SlotGranted { run_id });
        }
    }
}

impl Actor for Scheduler {
    type Context = Context<Self>;
}

impl Handler<AcquireSlot> for Scheduler {
    type Result = ();

    fn handle(&mut self, request: AcquireSlot, _: &mut Self::Context) {
        let (run_id, priority) = (request.run_id, request.priority);
        let request = Request {
            request,
            since: Instant::now(),
            unparked: None,
        };
        self.line.wait(run_id, priority, request);
        self.grant();
    }
}

impl Handler<ReleaseSlot> for Scheduler {
    type Result = ();

    fn handle(&mut self, msg: ReleaseSlot, _: &mut Self::Context) {
        self.line.release(msg.run_id);
        self.grant();
    }
}

impl Handler<ParkSlot> for Scheduler {
    type Result = ();

    fn handle(&mut self, msg: ParkSlot, _: &mut Self::Context) {
        if self.line.park(msg.run_id) {
            self.grant();
        }
    }
}

impl Handler<UnparkSlot> for Scheduler {
    type Result = ();

    fn handle(&mut self, msg: UnparkSlot, _: &mut Self::Context) {
        let UnparkSlot {
            run_id, granted, ..
        } = msg;
        let mut granted = Some(granted);
        let unparked = self.line.unpark(run_id, |held: &mut Request| {
            held.since = Instant::now();
            held.unparked = granted.take();
            held.request.priority
        });
        match (unparked, granted) {
            (true, _) => self.grant(),
            // Never parked (it held its slot all along): it has one.
            (false, Some(granted)) => {
                let _ = granted.send(());
            }
            (false, None) => {}
        }
    }
}

impl Handler<GetSchedulerStatus> for Scheduler {
    type Result = MessageResult<GetSchedulerStatus>;

    fn handle(&mut self, _: GetSchedulerStatus, _: &mut Self::Context) -> Self::Result {
        let running = self
            .line
            .running()
            .map(|(run_id, held)| RunningSlot {
                run_id,
                node_id: held.request.node_id,
                noderole_id: held.request.noderole_id,
                node: held.request.node.to_string(),
                role: held.request.role.to_string(),
                running_ms: held.since.elapsed().as_millis() as u64,
            })
            .collect();
        let waiting = self
            .line
            .waiting()
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
            capacity: self.line.capacity(),
            in_use: self.line.in_use(),
            parked: self.line.parked(),
            running,
            waiting,
            total_wait_ms: self.total_wait.as_millis() as u64,
            granted: self.granted,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::SlotLine;

    fn grant_all(line: &mut SlotLine<&'static str>) -> Vec<&'static str> {
        std::iter::from_fn(|| line.grant_next().map(|(_, name)| *name)).collect()
    }

    #[test]
    fn grants_no_more_than_capacity_first_come_first_served() {
        let mut line = SlotLine::new(2);
        for (id, name) in [(1, "a"), (2, "b"), (3, "c")] {
            line.wait(id, false, name);
        }
        assert_eq!(grant_all(&mut line), vec!["a", "b"]);
        assert_eq!(line.in_use(), 2);
        assert_eq!(line.waiting().copied().collect::<Vec<_>>(), vec!["c"]);
        line.release(1);
        assert_eq!(grant_all(&mut line), vec!["c"]);
        assert_eq!(
            line.running().map(|(id, _)| id).collect::<Vec<_>>(),
            vec![2, 3]
        );
    }

    #[test]
    fn priority_runs_are_granted_before_earlier_ones() {
        let mut line = SlotLine::new(1);
        line.wait(1, false, "held");
        assert_eq!(grant_all(&mut line), vec!["held"]);
        line.wait(2, false, "annealed-1");
        line.wait(3, true, "dhcp-1");
        line.wait(4, false, "annealed-2");
        line.wait(5, true, "dhcp-2");
        assert_eq!(
            line.waiting().copied().collect::<Vec<_>>(),
            vec!["dhcp-1", "dhcp-2", "annealed-1", "annealed-2"]
        );
        let mut order = Vec::new();
        let mut holding = 1;
        while line.release(holding).is_some() {
            if let Some((id, name)) = line.grant_next() {
                order.push(*name);
                holding = id;
            }
        }
        assert_eq!(order, vec!["dhcp-1", "dhcp-2", "annealed-1", "annealed-2"]);
    }

    #[test]
    fn a_parked_run_frees_its_slot_and_takes_the_next_one_back() {
        let mut line = SlotLine::new(1);
        line.wait(1, false, "waits-on-its-machine");
        assert_eq!(grant_all(&mut line), vec!["waits-on-its-machine"]);
        line.wait(2, false, "b");
        line.wait(3, false, "c");
        assert!(line.park(1));
        assert!(!line.park(1), "parked already");
        assert_eq!(grant_all(&mut line), vec!["b"]);
        assert_eq!((line.in_use(), line.parked()), (1, 1));
        // Back first in line, ahead of c, once b is done.
        assert!(line.unpark(1, |_| false));
        assert!(!line.unpark(1, |_| false), "not parked any more");
        line.release(2);
        assert_eq!(grant_all(&mut line), vec!["waits-on-its-machine"]);
        line.release(1);
        assert_eq!(grant_all(&mut line), vec!["c"]);
        // A parked run that ends without unparking leaves nothing behind.
        assert!(line.park(3));
        assert_eq!(line.release(3), Some("c"));
        assert_eq!((line.in_use(), line.parked()), (0, 0));
    }

    #[test]
    fn a_zero_capacity_still_runs_one_at_a_time() {
        let mut line = SlotLine::new(0);
        line.wait(1, false, "a");
        line.wait(2, false, "b");
        assert_eq!(grant_all(&mut line), vec!["a"]);
    }
}
