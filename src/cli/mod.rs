//! The commands that drive a running kiln through its admin API, printing
//! a table by default and the API's JSON with `--json`.
//!
//! Architecture invariant: with `main.rs`, the only place that prints.

mod commands;
mod table;

use serde_json::Value;

pub use commands::{ApiArgs, Command};
pub use table::align;
use table::render;

/// Why an API command failed, in one line.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("cannot reach kiln at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("{status}: {message}{}", field.as_ref().map(|f| format!(" (field {f})")).unwrap_or_default())]
    Api {
        status: u16,
        message: String,
        field: Option<String>,
    },
    #[error("{0}")]
    Usage(String),
}

/// A client for `/api/v2` with the admin token.
pub struct ApiClient {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl ApiClient {
    pub fn new(url: &str, token: Option<String>) -> Self {
        Self {
            base: url.trim_end_matches('/').to_string(),
            token: token.filter(|t| !t.is_empty()),
            http: reqwest::Client::new(),
        }
    }

    /// Sends a request and returns the JSON body, or the API's error.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, CliError> {
        let url = format!("{}/api/v2{path}", self.base);
        let mut req = self.http.request(method, &url);
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.map_err(|e| CliError::Unreachable {
            url: self.base.clone(),
            reason: e.to_string(),
        })?;
        let status = resp.status().as_u16();
        let value: Value = resp.json().await.unwrap_or(Value::Null);
        if status >= 400 {
            let err = &value["error"];
            return Err(CliError::Api {
                status,
                message: err["message"]
                    .as_str()
                    .unwrap_or("request failed")
                    .to_string(),
                field: err["field"].as_str().map(str::to_string),
            });
        }
        Ok(value)
    }
}

/// The query string for the given optional filters.
fn query(pairs: &[(&str, &Option<String>)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", urlencode(v))))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

fn urlencode(raw: &str) -> String {
    url::form_urlencoded::byte_serialize(raw.as_bytes()).collect()
}
