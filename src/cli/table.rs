//! Plain-text tables for API lists.

use serde_json::Value;

/// Which columns each kind of list shows.
fn columns(kind: &str) -> &'static [&'static str] {
    match kind {
        "nodes" => &[
            "id",
            "name",
            "bootenv",
            "alive",
            "available",
            "power",
            "addresses",
        ],
        "power" => &["state", "checked_at", "error"],
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
    if column == "power" && row.get("bmc").is_some() {
        return row["bmc"]["power"]["state"]
            .as_str()
            .unwrap_or("-")
            .to_string();
    }
    match &row[column] {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Why todo noderoles wait, as `/api/v2/anneal` names the reasons, and
/// how the CLI says them.
const WAITING: [(&str, &str); 5] = [
    ("node_not_alive", "node not alive"),
    ("node_not_available", "node not available"),
    ("parents_not_active", "parents not active"),
    ("deployment_not_committed", "deployment not committed"),
    ("ready", "ready to start"),
];

/// `/api/v2/anneal`: settled or not, noderoles by state, and the reasons
/// the todo ones wait with their counts.
fn anneal(value: &Value) -> String {
    let settled = value["settled"].as_bool().unwrap_or(false);
    let mut out = format!("{}\n", if settled { "settled" } else { "work remains" });
    let counts: Vec<Vec<String>> = value["counts"]
        .as_object()
        .map(|c| {
            c.iter()
                .map(|(state, n)| vec![state.clone(), n.to_string()])
                .collect()
        })
        .unwrap_or_default();
    out.push_str(&align(&["state", "noderoles"], &counts));
    let waiting = &value["waiting"];
    let reasons: Vec<Vec<String>> = WAITING
        .iter()
        .filter_map(|(key, label)| {
            let n = waiting[key].as_i64().filter(|n| *n > 0)?;
            Some(vec![label.to_string(), n.to_string()])
        })
        .collect();
    if !reasons.is_empty() {
        out.push('\n');
        out.push_str(&align(&["todo waits for", "noderoles"], &reasons));
    }
    out
}

/// A list (or one object) as an aligned table.
pub fn render(kind: &str, value: &Value) -> String {
    if kind == "anneal" {
        return anneal(value);
    }
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
