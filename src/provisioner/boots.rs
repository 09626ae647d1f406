//! Each machine's current network boot, as far as its node token goes: a
//! node token is issued at most once per boot. A boot starts when kiln's
//! DHCP server acknowledges the machine's firmware or iPXE, or when kiln
//! power-cycles it; the first boot route rendered after that issues a
//! fresh token, and later ones in the same boot render that same token
//! (the installer fetches its answer file after its script), never a new
//! one that would lock out the machine holding the first.
//!
//! Only memory holds the plain token, and only until the machine's next
//! boot or until it boots from disk; the database keeps its hash. A node
//! kiln has never issued a token to from a boot route (`token_due`) gets
//! one even when this process saw no boot start, e.g. after a restart.

use dashmap::mapref::entry::Entry;
use dashmap::DashMap;

use crate::db::nodes::new_token;

/// What a boot route renders as `{{node_token}}`.
#[derive(PartialEq, Eq)]
pub enum BootToken {
    /// Issued now: its hash must be stored before the script goes out.
    Fresh(String),
    /// Issued earlier in this same boot.
    Same(String),
    /// This boot's token was issued by a kiln that no longer runs, or the
    /// node needs none: the script carries no token.
    Withheld,
}

impl BootToken {
    /// The plain token to render, if any.
    pub fn plain(&self) -> Option<&str> {
        match self {
            BootToken::Fresh(t) | BootToken::Same(t) => Some(t),
            BootToken::Withheld => None,
        }
    }
}

impl std::fmt::Debug for BootToken {
    // The token itself is a secret: never in a log line or a panic.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BootToken::Fresh(_) => "Fresh(..)",
            BootToken::Same(_) => "Same(..)",
            BootToken::Withheld => "Withheld",
        })
    }
}

enum Boot {
    /// A boot started; no token issued in it yet.
    Started,
    /// This boot's token.
    Issued(String),
}

/// Per-MAC boots, written by the DHCP server, the power driver and the
/// boot routes.
#[derive(Default)]
pub struct Boots {
    by_mac: DashMap<String, Boot>,
}

impl Boots {
    /// `mac` starts a network boot: the next boot route issues a fresh token.
    pub fn started(&self, mac: &str) {
        self.by_mac.insert(mac.to_string(), Boot::Started);
    }

    /// The token a boot route of `mac` renders, decided atomically so two
    /// fetches at once never both issue one. `due`: the node is owed a
    /// token whatever this process saw (`node.token_due`).
    pub fn claim(&self, mac: &str, due: bool) -> BootToken {
        match self.by_mac.entry(mac.to_string()) {
            Entry::Occupied(mut boot) => match boot.get() {
                Boot::Issued(token) => BootToken::Same(token.clone()),
                Boot::Started => {
                    let token = new_token();
                    boot.insert(Boot::Issued(token.clone()));
                    BootToken::Fresh(token)
                }
            },
            Entry::Vacant(slot) if due => {
                let token = new_token();
                slot.insert(Boot::Issued(token.clone()));
                BootToken::Fresh(token)
            }
            Entry::Vacant(_) => BootToken::Withheld,
        }
    }

    /// A fresh token could not be stored: the boot owes one still.
    pub fn unclaim(&self, mac: &str) {
        self.started(mac);
    }

    /// `mac` boots from disk: its boot needs no token, forget it.
    pub fn booted_from_disk(&self, mac: &str) {
        self.by_mac.remove(mac);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_token_per_boot() {
        let boots = Boots::default();
        assert_eq!(boots.claim("aa", false), BootToken::Withheld);
        let BootToken::Fresh(first) = boots.claim("aa", true) else {
            panic!("a node owed a token gets one");
        };
        assert_eq!(boots.claim("aa", true), BootToken::Same(first.clone()));
        boots.started("aa");
        let BootToken::Fresh(second) = boots.claim("aa", false) else {
            panic!("a new boot issues a new token");
        };
        assert_ne!(first, second);
        assert_eq!(boots.claim("aa", false), BootToken::Same(second));
        boots.booted_from_disk("aa");
        assert_eq!(boots.claim("aa", false), BootToken::Withheld);
    }

    #[test]
    fn the_token_stays_out_of_debug_output() {
        let boots = Boots::default();
        let token = boots.claim("aa", true);
        let plain = token.plain().unwrap().to_string();
        assert!(!format!("{token:?}").contains(&plain));
    }
}
