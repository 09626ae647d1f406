//! What kiln last saw of each machine on the wire: its last DHCP answer and
//! the last boot script it fetched. When a machine never comes back from a
//! reboot, this is what tells the operator how far it got.

use chrono::{DateTime, SecondsFormat, Utc};
use dashmap::DashMap;

/// The last of each kind of contact with one MAC.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sighting {
    pub dhcp: Option<(DateTime<Utc>, String)>,
    pub boot_script: Option<(DateTime<Utc>, String)>,
}

/// Per-MAC sightings, written by the DHCP server and the boot routes.
#[derive(Debug, Default)]
pub struct Sightings {
    by_mac: DashMap<String, Sighting>,
}

impl Sightings {
    /// The DHCP server answered `mac` (e.g. `ACK 10.0.0.5 boot http://...`).
    pub fn dhcp_answer(&self, mac: &str, answer: String) {
        self.by_mac.entry(mac.to_string()).or_default().dhcp = Some((Utc::now(), answer));
    }

    /// `mac` fetched the boot script of `bootenv`.
    pub fn boot_script(&self, mac: &str, bootenv: &str) {
        self.by_mac.entry(mac.to_string()).or_default().boot_script =
            Some((Utc::now(), format!("boot script for bootenv {bootenv}")));
    }

    /// What was last seen of any of `macs`, one line per kind, for a runlog.
    pub fn describe(&self, macs: &[String]) -> String {
        let mut dhcp = None;
        let mut script = None;
        for mac in macs {
            if let Some(seen) = self.by_mac.get(mac) {
                dhcp = latest(dhcp, seen.dhcp.clone());
                script = latest(script, seen.boot_script.clone());
            }
        }
        format!(
            "last DHCP answer: {}\nlast boot script served: {}\n",
            line(dhcp),
            line(script)
        )
    }
}

fn latest(
    a: Option<(DateTime<Utc>, String)>,
    b: Option<(DateTime<Utc>, String)>,
) -> Option<(DateTime<Utc>, String)> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if b.0 > a.0 { b } else { a }),
        (a, b) => a.or(b),
    }
}

fn line(seen: Option<(DateTime<Utc>, String)>) -> String {
    match seen {
        Some((at, what)) => format!(
            "{} at {}",
            what,
            at.to_rfc3339_opts(SecondsFormat::Secs, true)
        ),
        None => "none".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_the_latest_contact_of_any_interface() {
        let seen = Sightings::default();
        assert_eq!(
            seen.describe(&["aa".into()]),
            "last DHCP answer: none\nlast boot script served: none\n"
        );
        seen.dhcp_answer("aa", "ACK 10.0.0.5".into());
        seen.boot_script("bb", "debian-12-install");
        let text = seen.describe(&["aa".into(), "bb".into()]);
        assert!(
            text.contains("last DHCP answer: ACK 10.0.0.5 at "),
            "{text}"
        );
        assert!(
            text.contains("last boot script served: boot script for bootenv debian-12-install at "),
            "{text}"
        );
    }
}
