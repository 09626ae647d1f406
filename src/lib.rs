//! kiln: a bare-metal provisioning orchestrator.
//!
//! See `ARCHITECTURE.md` for the map of this crate.

pub mod api;
pub mod app;
pub mod bench;
pub mod db;
pub mod settings;
pub mod telemetry;
pub mod domain;
