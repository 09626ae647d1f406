//! Generated-style mirror of the tables the migrations create.
//!
//! Nothing but column shapes and relations lives here, so regenerating the
//! entities never loses domain logic (that lives in `kiln::db` and above).

pub mod bootenv;
pub mod deployment;
pub mod interface;
pub mod lease;
pub mod network;
pub mod node;
pub mod node_bmc;
pub mod node_inventory;
pub mod noderole;
pub mod noderole_edge;
pub mod prelude;
pub mod reboot;
pub mod role;
pub mod role_requirement;
pub mod run;
pub mod states;
