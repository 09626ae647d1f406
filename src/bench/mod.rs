//! `kiln bench`: benchmarks that print numbers, each against a baseline
//! measured in the same run on the same machine (these machines are shared
//! and noisy, so only ratios travel).
//!
//! Every benchmark prints a table and ends with one line
//! `RESULT <name> ratio=<x> target=<comparison>`, and can write its numbers
//! as JSON to a file.

pub mod anneal;
pub mod api;
mod args;
pub mod commit_bound;
pub mod fleet;
pub mod memory;
pub mod scale;
pub mod scratch;
pub mod seed;

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

pub use args::{BenchTarget, Benchmark};

/// Why a benchmark could not produce its numbers.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("scratch database: {0}")]
    Scratch(String),
    #[error("database: {0}")]
    Database(#[from] sea_orm::DbErr),
    #[error("{0}")]
    Setup(String),
    #[error("writing {path}: {reason}")]
    Output { path: String, reason: String },
}

/// One row of a benchmark's table.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub label: String,
    pub values: Vec<(String, String)>,
}

impl Row {
    pub fn new(label: impl Into<String>) -> Self {
        Self {
            label: label.into(),
            values: Vec::new(),
        }
    }

    /// Adds a named value, formatted for the table.
    pub fn with(mut self, name: &str, value: impl std::fmt::Display) -> Self {
        self.values.push((name.to_string(), value.to_string()));
        self
    }
}

/// What a benchmark measured: its table, its ratio, and the target.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub name: String,
    pub rows: Vec<Row>,
    pub ratio: f64,
    /// e.g. `>=0.5`, `<=1.3`, or `none`.
    pub target: String,
    pub notes: Vec<String>,
}

impl Report {
    /// The table, notes, and the final `RESULT` line.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut headers: Vec<&str> = vec![""];
        for row in &self.rows {
            for (name, _) in &row.values {
                if !headers.contains(&name.as_str()) {
                    headers.push(name);
                }
            }
        }
        let cells: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|row| {
                headers
                    .iter()
                    .enumerate()
                    .map(|(i, h)| {
                        if i == 0 {
                            row.label.clone()
                        } else {
                            row.values
                                .iter()
                                .find(|(n, _)| n == h)
                                .map(|(_, v)| v.clone())
                                .unwrap_or_default()
                        }
                    })
                    .collect()
            })
            .collect();
        out.push_str(&crate::cli::align(&headers, &cells));
        for note in &self.notes {
            let _ = writeln!(out, "# {note}");
        }
        let _ = writeln!(
            out,
            "RESULT {} ratio={:.3} target={}",
            self.name, self.ratio, self.target
        );
        out
    }

    /// Writes the report as JSON when a path was asked for.
    pub fn write_json(&self, path: Option<&Path>) -> Result<(), BenchError> {
        let Some(path) = path else { return Ok(()) };
        let json = serde_json::to_string_pretty(self).expect("report serialises");
        std::fs::write(path, json).map_err(|e| BenchError::Output {
            path: path.display().to_string(),
            reason: e.to_string(),
        })
    }
}
