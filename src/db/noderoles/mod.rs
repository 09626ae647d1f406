//! Noderoles and the edges between them, by noun: the rows themselves
//! (`rows`), the dependency graph (`graph`), and queries written for one
//! caller each (`queries`). Callers keep using `db::noderoles::...`.

mod graph;
mod queries;
mod rows;

pub use graph::{
    add_edge, adjust_unmet_parents, children, descendants, finish_transition, lock_parents,
    parents, reaches, recount_unmet_parents, with_failed_parent, Descendant, FinishedTransition,
};
pub use queries::{
    any_in_state, any_of_deployment, awaiting_return, count_by_state, ready, run_context,
    transition_without_queued_run, waiting_counts, AwaitingReturn, ReadyNoderole, RunContextRow,
    StateTest, WaitingCounts,
};
pub use rows::{
    commit_proposed_data, find, find_in, forget_successes, get, insert, list_refs,
    of_deployment_in, of_node, of_role, on_node, record_run_result, refs, set_data, set_state,
    NoderoleFilter, NoderoleRef,
};
