//! kiln: a bare-metal provisioning orchestrator.
//!
//! See `ARCHITECTURE.md` for the map of this crate.

pub mod actors;
pub mod api;
pub mod app;
pub mod bench;
pub mod bmc;
pub mod cli;
pub mod cluster;
pub mod db;
pub mod domain;
pub mod jigs;
pub mod orchestrator;
pub mod provisioner;
pub mod roles;
pub mod settings;
pub mod shutdown;
pub mod sim;
pub mod telemetry;
pub mod ui;
