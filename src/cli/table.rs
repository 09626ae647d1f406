//! Plain-text tables for API lists.

use serde_json::Value;

/// Which columns each kind of list shows.
fn columns(kind: &str) -> &'static [&'static str] {
    match kind {
        "nodes" => &["id", "name", "bootenv", "alive", "available", "addresses"],
        "deployments" => &["id", "name", "state", "parent_id"],
        "noderoles" => &["id", "node", "role", "deployment", "state", "run_count"],
        "runs" => &[
            "id",
            "node",
            "role",
            "state",
            "reason",
            "position",
            "queued_at",
        ],
        _ => &["id", "name", "state"],
    }
}

fn cell(row: &Value, column: &str) -> String {
    if column == "addresses" {
        return row["interfaces"]
            .as_array()
            .map(|ifaces| {
                ifaces
                    .iter()
                    .filter_map(|i| i["ip"].as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default();
    }
    match &row[column] {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A list (or one object) as an aligned table.
pub fn render(kind: &str, value: &Value) -> String {
    let rows: Vec<&Value> = match value {
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    };
    let cols = columns(kind);
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| cols.iter().map(|c| cell(r, c)).collect())
        .collect();
    align(cols, &cells)
}

/// Columns padded to their widest cell, two spaces apart, a header first.
pub fn align(headers: &[&str], rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = headers
        .iter()
        .enumerate()
        .map(|(i, h)| {
            rows.iter()
                .map(|r| r[i].len())
                .chain([h.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |vals: Vec<&str>| {
        vals.iter()
            .zip(&widths)
            .map(|(v, w)| format!("{v:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let mut out = line(headers.to_vec()) + "\n";
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
        out.push('\n');
    }
    out
}
