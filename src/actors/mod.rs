//! The actors of DESIGN section 3, inside one actix System: the annealer,
//! the scheduler, one supervised NodeActor per node, the event bus and the
//! trace recorder they all write to. kiln's role hooks are actors too; they
//! live with their roles in `crate::roles`.
//!
//! Architecture invariant: actors change the database only through
//! `domain` functions in a transaction, and act on the effects only after
//! it committed (`Hub::commit`, `Dispatch::transact`).

pub mod annealer;
pub mod dispatch;
pub mod event_bus;
pub mod hub;
pub mod in_flight;
pub mod node;
pub mod scheduler;
pub mod trace;
