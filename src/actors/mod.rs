//! The actors of DESIGN section 3, inside one actix System: the annealer,
//! the scheduler, one supervised NodeActor per node, the event bus, the role
//! actors, and the trace recorder they all write to.
//!
//! Architecture invariant: actors change the database only through
//! `domain` functions in a transaction, and act on the effects only after
//! it committed.

pub mod annealer;
pub mod event_bus;
pub mod node;
pub mod roles;
pub mod runtime;
pub mod scheduler;
pub mod trace;
