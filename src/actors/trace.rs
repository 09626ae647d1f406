//! The trace recorder: every message that crosses actors, with a logical
//! sequence number, so tests can snapshot orchestration as a story.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use serde::Serialize;

/// One message between two actors.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TraceEntry {
    pub seq: u64,
    pub from: &'static str,
    pub to: &'static str,
    pub message: &'static str,
    /// The node the message is about.
    pub node: String,
    /// Key fields, ids left out so the story is stable.
    pub detail: String,
}

impl TraceEntry {
    /// `Annealer -> NodeActor EnqueueRun(burnin)`.
    pub fn line(&self) -> String {
        if self.detail.is_empty() {
            format!("{} -> {} {}", self.from, self.to, self.message)
        } else {
            format!(
                "{} -> {} {}({})",
                self.from, self.to, self.message, self.detail
            )
        }
    }
}

/// Appends entries; cheap enough to leave on (a bounded ring).
#[derive(Debug)]
pub struct TraceRecorder {
    seq: AtomicU64,
    entries: Mutex<std::collections::VecDeque<TraceEntry>>,
    capacity: usize,
}

impl TraceRecorder {
    /// Keeps the most recent `capacity` entries.
    pub fn new(capacity: usize) -> Self {
        Self {
            seq: AtomicU64::new(0),
            entries: Mutex::new(std::collections::VecDeque::new()),
            capacity,
        }
    }

    /// Records one message.
    pub fn record(
        &self,
        from: &'static str,
        to: &'static str,
        message: &'static str,
        node: &str,
        detail: impl Into<String>,
    ) {
        if self.capacity == 0 {
            return;
        }
        let mut entries = self.entries.lock().expect("trace lock");
        let entry = TraceEntry {
            seq: self.seq.fetch_add(1, Ordering::SeqCst),
            from,
            to,
            message,
            node: node.to_string(),
            detail: detail.into(),
        };
        if entries.len() == self.capacity {
            entries.pop_front();
        }
        entries.push_back(entry);
    }

    /// Everything recorded so far, in sequence order.
    pub fn entries(&self) -> Vec<TraceEntry> {
        self.entries
            .lock()
            .expect("trace lock")
            .iter()
            .cloned()
            .collect()
    }

    /// The story per node: `node -> [lines in causal order]`, nodes sorted.
    pub fn by_node(&self) -> std::collections::BTreeMap<String, Vec<String>> {
        let mut out: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        for entry in self.entries() {
            out.entry(entry.node.clone())
                .or_default()
                .push(entry.line());
        }
        out
    }

    pub fn clear(&self) {
        self.entries.lock().expect("trace lock").clear();
    }
}
