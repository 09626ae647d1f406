//! The `redfish` driver: the DMTF Redfish HTTP JSON API. A node's
//! `address` is the BMC's base URL (`https://bmc.example`, or
//! `http://127.0.0.1:8000` for an emulator; a bare host means HTTPS). The
//! system is `bmc.system` or, when the node names none, the only member of
//! `/redfish/v1/Systems`.
//!
//! - status: the system's `PowerState`;
//! - power: a POST to the target of the system's `#ComputerSystem.Reset`
//!   action, with a `ResetType` the system lists as allowed;
//! - next boot: a PATCH of `Boot` with `BootSourceOverrideTarget` `Pxe` or
//!   `Hdd` and `BootSourceOverrideEnabled` `Once`;
//! - MACs: the `MACAddress` of each of the system's `EthernetInterfaces`.
//!
//! Every request carries HTTP basic auth and is bounded by the driver's
//! timeout; certificates are verified unless the node's `verify_tls` is
//! false. The BMC's own error message (`error.message` and
//! `error.@Message.ExtendedInfo`) is summarised in the error.

use std::time::Duration;

use futures::future::BoxFuture;
use reqwest::{header, Client, Method, StatusCode};
use serde_json::{json, Value};
use url::Url;

use super::process::summarise;
use super::{BmcError, BmcTarget, NextBoot, PowerAction, PowerControl, PowerState};

/// Power, next boot and NICs over Redfish.
#[derive(Clone, Debug)]
pub struct RedfishDriver {
    timeout: Duration,
    /// The clients that verify certificates and that do not, or why they
    /// could not be built.
    clients: Result<(Client, Client), String>,
}

impl RedfishDriver {
    /// A driver whose every request is bounded by `timeout`.
    pub fn new(timeout: Duration) -> Self {
        let build = |verify: bool| {
            Client::builder()
                .timeout(timeout)
                .connect_timeout(timeout)
                .danger_accept_invalid_certs(!verify)
                .build()
                .map_err(|e| format!("cannot build an HTTP client: {e}"))
        };
        Self {
            timeout,
            clients: build(true).and_then(|strict| Ok((strict, build(false)?))),
        }
    }

    fn session(&self, target: &BmcTarget) -> Result<Session, BmcError> {
        let base = base_url(&target.address)?;
        let client = match &self.clients {
            Ok((strict, lax)) => {
                if target.verify_tls {
                    strict.clone()
                } else {
                    lax.clone()
                }
            }
            Err(reason) => {
                return Err(BmcError::Failed {
                    address: target.address.clone(),
                    reason: reason.clone(),
                })
            }
        };
        Ok(Session {
            client,
            base,
            target: target.clone(),
            seconds: self.timeout.as_secs().max(1),
        })
    }

    fn with_session<T: Send + 'static, F>(
        &self,
        target: &BmcTarget,
        work: impl FnOnce(Session) -> F + Send + 'static,
    ) -> BoxFuture<'static, Result<T, BmcError>>
    where
        F: std::future::Future<Output = Result<T, BmcError>> + Send + 'static,
    {
        let session = self.session(target);
        Box::pin(async move { work(session?).await })
    }
}

impl PowerControl for RedfishDriver {
    fn status(&self, target: &BmcTarget) -> BoxFuture<'static, Result<PowerState, BmcError>> {
        self.with_session(target, |s| async move {
            let (system, _) = s.system().await?;
            Ok(power_state(&system))
        })
    }

    fn act(
        &self,
        target: &BmcTarget,
        action: PowerAction,
    ) -> BoxFuture<'static, Result<(), BmcError>> {
        self.with_session(target, move |s| async move {
            let (system, _) = s.system().await?;
            let power = power_state(&system);
            // Asking a machine that is already on to power on (or off to
            // power off) is an error on some BMCs; it is done already.
            match (action, power) {
                (PowerAction::On, PowerState::On)
                | (PowerAction::Off | PowerAction::SoftOff, PowerState::Off) => return Ok(()),
                _ => {}
            }
            let reset = system
                .pointer("/Actions/#ComputerSystem.Reset")
                .ok_or_else(|| BmcError::Unsupported {
                    driver: "redfish",
                    what: "reset this system (it has no #ComputerSystem.Reset action)".into(),
                })?;
            let target_path = reset
                .get("target")
                .and_then(Value::as_str)
                .ok_or_else(|| s.failed("the system's Reset action has no target"))?
                .to_string();
            let allowed = s.allowed_reset_types(reset).await?;
            let reset_type =
                choose_reset(action, power, &allowed).ok_or_else(|| BmcError::Unsupported {
                    driver: "redfish",
                    what: format!(
                        "{} this system (it allows only {})",
                        action.as_str(),
                        allowed.join(", ")
                    ),
                })?;
            s.send(
                Method::POST,
                &target_path,
                Some(json!({ "ResetType": reset_type })),
                None,
            )
            .await
            .map(drop)
        })
    }

    fn set_next_boot(
        &self,
        target: &BmcTarget,
        next: NextBoot,
    ) -> BoxFuture<'static, Result<(), BmcError>> {
        self.with_session(target, move |s| async move {
            let (system, etag) = s.system().await?;
            let wanted = match next {
                NextBoot::Pxe => "Pxe",
                NextBoot::Disk => "Hdd",
            };
            if let Some(allowed) = system
                .pointer("/Boot/BootSourceOverrideTarget@Redfish.AllowableValues")
                .and_then(Value::as_array)
            {
                if !allowed.iter().any(|v| v.as_str() == Some(wanted)) {
                    return Err(BmcError::Unsupported {
                        driver: "redfish",
                        what: format!(
                            "boot this system from {wanted} (not an allowed boot target)"
                        ),
                    });
                }
            }
            let path = odata_id(&system).unwrap_or_else(|| s.system_path_hint());
            let body = json!({
                "Boot": {
                    "BootSourceOverrideTarget": wanted,
                    "BootSourceOverrideEnabled": "Once",
                }
            });
            s.send(Method::PATCH, &path, Some(body), etag.as_deref())
                .await
                .map(drop)
        })
    }

    fn macs(&self, target: &BmcTarget) -> BoxFuture<'static, Result<Vec<String>, BmcError>> {
        self.with_session(target, |s| async move {
            let (system, _) = s.system().await?;
            let Some(collection) = system
                .pointer("/EthernetInterfaces/@odata.id")
                .and_then(Value::as_str)
            else {
                return Ok(Vec::new());
            };
            let collection = s.get(collection).await?.0;
            let mut macs = Vec::new();
            for member in members(&collection) {
                let nic = s.get(&member).await?.0;
                let mac = ["MACAddress", "PermanentMACAddress"]
                    .iter()
                    .find_map(|k| nic.get(*k).and_then(Value::as_str))
                    .map(|m| m.trim().to_ascii_lowercase())
                    .filter(|m| !m.is_empty());
                if let Some(mac) = mac {
                    if !macs.contains(&mac) {
                        macs.push(mac);
                    }
                }
            }
            Ok(macs)
        })
    }
}

/// One call's client, base URL and target.
struct Session {
    client: Client,
    base: Url,
    target: BmcTarget,
    seconds: u64,
}

impl Session {
    fn address(&self) -> String {
        self.target.address.clone()
    }

    fn failed(&self, reason: impl Into<String>) -> BmcError {
        BmcError::Failed {
            address: self.address(),
            reason: reason.into(),
        }
    }

    fn system_path_hint(&self) -> String {
        format!(
            "/redfish/v1/Systems/{}",
            self.target.system.as_deref().unwrap_or_default()
        )
    }

    /// The system resource and its ETag.
    async fn system(&self) -> Result<(Value, Option<String>), BmcError> {
        let path = match self.target.system.as_deref() {
            Some(id) => {
                let mut url = self
                    .base
                    .join("/redfish/v1/Systems/")
                    .expect("a fixed path");
                url.path_segments_mut()
                    .map_err(|()| self.failed("the base URL cannot take a path"))?
                    .pop_if_empty()
                    .push(id);
                url.path().to_string()
            }
            None => {
                let (systems, _) = self.get("/redfish/v1/Systems").await?;
                let ids = members(&systems);
                match ids.as_slice() {
                    [only] => only.clone(),
                    [] => return Err(self.failed("/redfish/v1/Systems lists no system")),
                    several => {
                        return Err(self.failed(format!(
                            "/redfish/v1/Systems lists {} systems ({}); name one in the node's bmc.system",
                            several.len(),
                            several.join(", ")
                        )))
                    }
                }
            }
        };
        self.get(&path).await
    }

    /// The reset types the system allows: the action's
    /// `ResetType@Redfish.AllowableValues`, else its `@Redfish.ActionInfo`
    /// resource's, else the types every Redfish BMC knows.
    async fn allowed_reset_types(&self, reset: &Value) -> Result<Vec<String>, BmcError> {
        let strings = |v: &Value| -> Vec<String> {
            v.as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default()
        };
        if let Some(values) = reset.get("ResetType@Redfish.AllowableValues") {
            return Ok(strings(values));
        }
        if let Some(info) = reset.get("@Redfish.ActionInfo").and_then(Value::as_str) {
            let (info, _) = self.get(info).await?;
            let values = info
                .get("Parameters")
                .and_then(Value::as_array)
                .and_then(|params| {
                    params
                        .iter()
                        .find(|p| p.get("Name").and_then(Value::as_str) == Some("ResetType"))
                })
                .and_then(|p| p.get("AllowableValues"));
            if let Some(values) = values {
                return Ok(strings(values));
            }
        }
        Ok(["On", "ForceOff", "GracefulShutdown", "ForceRestart"]
            .map(String::from)
            .to_vec())
    }

    async fn get(&self, path: &str) -> Result<(Value, Option<String>), BmcError> {
        self.send(Method::GET, path, None, None).await
    }

    /// One request to `path` (absolute, or relative to the base URL);
    /// the JSON it answered (`Null` for no body) and its ETag.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        if_match: Option<&str>,
    ) -> Result<(Value, Option<String>), BmcError> {
        let url = self
            .base
            .join(path)
            .map_err(|e| self.failed(format!("the BMC named a bad link {path:?}: {e}")))?;
        let mut request = self
            .client
            .request(method.clone(), url)
            .basic_auth(&self.target.username, Some(self.target.password.expose()))
            .header(header::ACCEPT, "application/json");
        if let Some(body) = body {
            request = request.json(&body);
        }
        if let Some(etag) = if_match {
            request = request.header(header::IF_MATCH, etag);
        }
        let response = request.send().await.map_err(|e| self.transport(&e))?;
        let status = response.status();
        let etag = response
            .headers()
            .get(header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(String::from);
        let text = response.text().await.map_err(|e| self.transport(&e))?;
        let json = if text.trim().is_empty() {
            Value::Null
        } else {
            match serde_json::from_str::<Value>(&text) {
                Ok(json) => json,
                Err(_) if !status.is_success() => Value::String(text),
                Err(e) => {
                    return Err(self.failed(format!("{method} {path} answered with bad JSON: {e}")))
                }
            }
        };
        if status.is_success() {
            return Ok((json, etag));
        }
        let message = summarise(&error_message(&json), &self.target.password);
        let said = if message.is_empty() {
            String::new()
        } else {
            format!(": {message}")
        };
        Err(match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => BmcError::Refused {
                address: self.address(),
                reason: format!(
                    "the credentials were refused (HTTP {}{said})",
                    status.as_u16()
                ),
            },
            _ => self.failed(format!("{method} {path}: HTTP {}{said}", status.as_u16())),
        })
    }

    /// The error for a request that got no HTTP answer.
    fn transport(&self, e: &reqwest::Error) -> BmcError {
        if e.is_timeout() {
            return BmcError::Timeout {
                address: self.address(),
                seconds: self.seconds,
            };
        }
        // The root cause (a refused connection, a bad certificate), not
        // reqwest's "error sending request for url ...".
        let mut cause: &dyn std::error::Error = e;
        while let Some(next) = cause.source() {
            cause = next;
        }
        let reason = summarise(&cause.to_string(), &self.target.password);
        if e.is_connect() || e.is_request() {
            BmcError::Unreachable {
                address: self.address(),
                reason,
            }
        } else {
            self.failed(reason)
        }
    }
}

/// The base URL in a node's `address`: `https://` when it names no
/// scheme; only `http` and `https`; no path beyond `/redfish/v1`, no
/// credentials (those are the node's username and password).
pub fn base_url(address: &str) -> Result<Url, BmcError> {
    let bad = |reason: &str| BmcError::BadAddress {
        address: address.to_string(),
        reason: reason.to_string(),
    };
    let trimmed = address.trim();
    if trimmed.is_empty() {
        return Err(bad("it is empty"));
    }
    let with_scheme = if trimmed.contains("://") {
        trimmed.to_string()
    } else {
        format!("https://{trimmed}")
    };
    let mut url = Url::parse(&with_scheme).map_err(|e| bad(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("the scheme is not http or https"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("it names no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        // The error shows the address without what looks like a password.
        let _ = url.set_username("");
        let _ = url.set_password(None);
        return Err(BmcError::BadAddress {
            address: url.to_string(),
            reason: "credentials go in the bmc's username and password, not the URL".into(),
        });
    }
    let path = url.path().trim_end_matches('/');
    if !(path.is_empty() || path == "/redfish/v1") {
        return Err(bad("a Redfish base URL has no path (or only /redfish/v1)"));
    }
    url.set_path("/");
    url.set_query(None);
    url.set_fragment(None);
    Ok(url)
}

/// The machine's power in a system resource's `PowerState`; a state in
/// transition counts as the one it is leaving.
pub fn power_state(system: &Value) -> PowerState {
    match system.get("PowerState").and_then(Value::as_str) {
        Some("On" | "PoweringOff" | "Paused") => PowerState::On,
        Some("Off" | "PoweringOn") => PowerState::Off,
        _ => PowerState::Unknown,
    }
}

/// The `ResetType` for `action` on a machine whose power is `power`, the
/// first of kiln's preferences that `allowed` lists. A cycle of a machine
/// that is off powers it on, so a cycle always ends with it running.
pub fn choose_reset(action: PowerAction, power: PowerState, allowed: &[String]) -> Option<&str> {
    let preferred: &[&str] = match (action, power) {
        (PowerAction::On, _) | (PowerAction::Cycle, PowerState::Off) => &["On", "ForceOn"],
        (PowerAction::Off, _) => &["ForceOff"],
        (PowerAction::SoftOff, _) => &["GracefulShutdown"],
        (PowerAction::Cycle, _) => &["PowerCycle", "ForceRestart", "GracefulRestart"],
    };
    preferred
        .iter()
        .find_map(|p| allowed.iter().find(|a| a == p))
        .map(String::as_str)
}

/// The `@odata.id` links of a collection's `Members`.
fn members(collection: &Value) -> Vec<String> {
    collection
        .get("Members")
        .and_then(Value::as_array)
        .map(|members| members.iter().filter_map(odata_id).collect())
        .unwrap_or_default()
}

fn odata_id(resource: &Value) -> Option<String> {
    resource
        .get("@odata.id")
        .and_then(Value::as_str)
        .map(String::from)
}

/// A Redfish error body as one line: `error.message` and the `Message`
/// (else `MessageId`) of each `@Message.ExtendedInfo` entry; a body that
/// is not Redfish JSON as it is.
pub fn error_message(body: &Value) -> String {
    let Some(error) = body.get("error") else {
        return match body {
            Value::String(text) => text.clone(),
            _ => String::new(),
        };
    };
    let mut parts: Vec<String> = Vec::new();
    if let Some(message) = error.get("message").and_then(Value::as_str) {
        parts.push(message.to_string());
    }
    for info in error
        .get("@Message.ExtendedInfo")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let text = info
            .get("Message")
            .or_else(|| info.get("MessageId"))
            .and_then(Value::as_str);
        if let Some(text) = text {
            if !parts.iter().any(|p| p == text) {
                parts.push(text.to_string());
            }
        }
    }
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(values: &[&str]) -> Vec<String> {
        values.iter().map(|v| v.to_string()).collect()
    }

    #[test]
    fn base_urls_default_to_https_and_refuse_paths_and_credentials() {
        assert_eq!(
            base_url("bmc.example").unwrap().as_str(),
            "https://bmc.example/"
        );
        assert_eq!(
            base_url("http://127.0.0.1:8000/").unwrap().as_str(),
            "http://127.0.0.1:8000/"
        );
        assert_eq!(
            base_url("https://[fd00::7]:8443/redfish/v1/")
                .unwrap()
                .as_str(),
            "https://[fd00::7]:8443/"
        );
        for bad in [
            "",
            "ftp://bmc",
            "https://bmc/other/path",
            "https://",
            "http://bad host",
        ] {
            assert!(
                matches!(base_url(bad), Err(BmcError::BadAddress { .. })),
                "{bad:?} was accepted"
            );
        }
        let err = base_url("https://admin:Sekrit-1@bmc.example").unwrap_err();
        assert!(matches!(err, BmcError::BadAddress { .. }));
        assert!(!format!("{err} {err:?}").contains("Sekrit-1"), "{err}");
    }

    #[test]
    fn a_reset_type_is_chosen_among_the_allowed() {
        let sushy = allowed(&[
            "On",
            "ForceOff",
            "GracefulShutdown",
            "GracefulRestart",
            "ForceRestart",
            "Nmi",
            "ForceOn",
        ]);
        let on = PowerState::On;
        let off = PowerState::Off;
        assert_eq!(choose_reset(PowerAction::On, off, &sushy), Some("On"));
        assert_eq!(choose_reset(PowerAction::Off, on, &sushy), Some("ForceOff"));
        assert_eq!(
            choose_reset(PowerAction::SoftOff, on, &sushy),
            Some("GracefulShutdown")
        );
        assert_eq!(
            choose_reset(PowerAction::Cycle, on, &sushy),
            Some("ForceRestart")
        );
        assert_eq!(choose_reset(PowerAction::Cycle, off, &sushy), Some("On"));
        let cycler = allowed(&["ForceOn", "ForceOff", "PowerCycle", "ForceRestart"]);
        assert_eq!(
            choose_reset(PowerAction::Cycle, on, &cycler),
            Some("PowerCycle")
        );
        assert_eq!(choose_reset(PowerAction::On, off, &cycler), Some("ForceOn"));
        assert_eq!(
            choose_reset(PowerAction::Cycle, PowerState::Unknown, &cycler),
            Some("PowerCycle")
        );
        assert_eq!(choose_reset(PowerAction::SoftOff, on, &cycler), None);
        assert_eq!(choose_reset(PowerAction::On, off, &[]), None);
    }

    #[test]
    fn power_state_in_transition_is_the_state_being_left() {
        for (value, state) in [
            ("On", PowerState::On),
            ("Off", PowerState::Off),
            ("PoweringOn", PowerState::Off),
            ("PoweringOff", PowerState::On),
            ("Sideways", PowerState::Unknown),
        ] {
            assert_eq!(power_state(&json!({ "PowerState": value })), state);
        }
        assert_eq!(power_state(&json!({})), PowerState::Unknown);
    }

    #[test]
    fn a_redfish_error_body_is_summarised() {
        let body = json!({"error": {
            "code": "Base.1.0.GeneralError",
            "message": "A general error has occurred.",
            "@Message.ExtendedInfo": [
                {"MessageId": "Base.1.8.PropertyValueNotInList",
                 "Message": "The value Floppy for BootSourceOverrideTarget is not in the list."},
                {"MessageId": "Base.1.0.GeneralError"}
            ]
        }});
        assert_eq!(
            error_message(&body),
            "A general error has occurred.; The value Floppy for BootSourceOverrideTarget is not in the list.; Base.1.0.GeneralError"
        );
        assert_eq!(
            error_message(&Value::String("Bad Gateway".into())),
            "Bad Gateway"
        );
        assert_eq!(error_message(&json!({"other": 1})), "");
    }
}
