//! The rules of a node's BMC: which drivers need which fields, and the
//! password sealed before it reaches the database. The API and cluster
//! files both come through here, so a BMC is checked the same way however
//! it is set.

use crate::bmc::{DriverKind, Secret, SecretKey};
use crate::db::bmcs::{BmcWrite, PasswordWrite};

use super::{DomainError, DomainResult};

/// The longest address, user name or system id kiln stores.
const MAX_FIELD: usize = 512;

/// A BMC as an operator writes it, password in the clear.
#[derive(Debug, Clone)]
pub struct BmcSpec {
    pub driver: DriverKind,
    pub address: String,
    pub username: String,
    /// `None` keeps the stored password; an empty one removes it.
    pub password: Option<Secret>,
    pub system: Option<String>,
    pub verify_tls: bool,
}

/// Checks `spec` (errors name `{prefix}.field`) and seals its password
/// with `key`; a password with no key to seal it is refused rather than
/// stored in the clear.
pub fn prepare(spec: &BmcSpec, key: Option<&SecretKey>, prefix: &str) -> DomainResult<BmcWrite> {
    let field = |name: &str| format!("{prefix}.{name}");
    for (name, value) in [("address", &spec.address), ("username", &spec.username)] {
        if value.len() > MAX_FIELD {
            return Err(DomainError::invalid(
                &field(name),
                format!("longer than {MAX_FIELD} bytes"),
            ));
        }
    }
    if spec
        .system
        .as_ref()
        .is_some_and(|s| s.len() > MAX_FIELD || s.is_empty())
    {
        return Err(DomainError::invalid(
            &field("system"),
            "must be a Redfish system id (1 to 512 bytes)",
        ));
    }
    check_address(spec.driver, spec.address.trim())
        .map_err(|reason| DomainError::invalid(&field("address"), reason))?;
    let password = match &spec.password {
        None => PasswordWrite::Keep,
        Some(p) if p.is_empty() => PasswordWrite::Clear,
        Some(p) => match key {
            Some(key) => PasswordWrite::Sealed(key.seal(p)),
            None => return Err(DomainError::invalid(
                &field("password"),
                "kiln has no bmc.secret_key (or bmc.secret_key_file) to keep BMC passwords with",
            )),
        },
    };
    Ok(BmcWrite {
        driver: spec.driver.as_str().to_string(),
        address: spec.address.trim().to_string(),
        username: spec.username.clone(),
        password,
        system: spec.system.clone(),
        verify_tls: spec.verify_tls,
    })
}

/// What each driver accepts as an address.
fn check_address(driver: DriverKind, address: &str) -> Result<(), String> {
    match driver {
        DriverKind::Ipmi => check_host_port(address),
        DriverKind::Redfish => check_base_url(address),
        // A power command may use the address or not; `none` needs nothing.
        DriverKind::Command | DriverKind::None => Ok(()),
    }
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`; or empty, for a BMC whose
/// address kiln learns from the machine's own report (its discovery image
/// reads it in-band).
fn check_host_port(address: &str) -> Result<(), String> {
    if address.is_empty() {
        return Ok(());
    }
    let (host, port) = match address.strip_prefix('[') {
        Some(rest) => {
            let (host, after) = rest
                .split_once(']')
                .ok_or_else(|| format!("`{address}`: an IPv6 address needs its closing `]`"))?;
            (host, after.strip_prefix(':'))
        }
        None => match address.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (address, None),
        },
    };
    let host_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '_'));
    if !host_ok {
        return Err(format!("`{address}` is not host[:port]"));
    }
    match port.map(|p| p.parse::<u16>()) {
        None | Some(Ok(1..)) => Ok(()),
        Some(_) => Err(format!("`{address}`: the port must be 1 to 65535")),
    }
}

/// An `http` or `https` URL with a host.
fn check_base_url(address: &str) -> Result<(), String> {
    let url = url::Url::parse(address).map_err(|e| {
        format!(
            "the redfish driver needs the BMC's base URL (https://host[:port]): `{address}`: {e}"
        )
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!("`{address}` is not an http(s) URL with a host"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(driver: DriverKind, address: &str, password: Option<&str>) -> BmcSpec {
        BmcSpec {
            driver,
            address: address.into(),
            username: "admin".into(),
            password: password.map(Secret::new),
            system: None,
            verify_tls: true,
        }
    }

    fn key() -> SecretKey {
        SecretKey::from_passphrase("a key of at least sixteen").unwrap()
    }

    fn field_of(e: DomainError) -> String {
        match e {
            DomainError::Invalid { field, .. } => field,
            other => panic!("not invalid: {other}"),
        }
    }

    #[test]
    fn addresses_are_checked_per_driver() {
        // Empty: learnt from the machine's report.
        for ok in [
            "10.0.0.5",
            "10.0.0.5:623",
            "bmc-1.rack",
            "[fe80::1]:623",
            "",
        ] {
            assert!(
                prepare(&spec(DriverKind::Ipmi, ok, None), None, "bmc").is_ok(),
                "{ok}"
            );
        }
        for bad in ["10.0.0.5:0", "10.0.0.5:99999", "a b", "[fe80::1"] {
            let e = prepare(&spec(DriverKind::Ipmi, bad, None), None, "bmc").unwrap_err();
            assert_eq!(field_of(e), "bmc.address", "{bad}");
        }
        assert!(prepare(
            &spec(DriverKind::Redfish, "https://10.0.0.5", None),
            None,
            "bmc"
        )
        .is_ok());
        let e = prepare(
            &spec(DriverKind::Redfish, "10.0.0.5", None),
            None,
            "nodes[2].bmc",
        )
        .unwrap_err();
        assert_eq!(field_of(e), "nodes[2].bmc.address");
        assert!(prepare(&spec(DriverKind::None, "", None), None, "bmc").is_ok());
    }

    #[test]
    fn a_password_is_sealed_or_refused_without_a_key() {
        let e = prepare(&spec(DriverKind::Ipmi, "h", Some("calvin")), None, "bmc").unwrap_err();
        assert_eq!(field_of(e), "bmc.password");
        let k = key();
        let write = prepare(
            &spec(DriverKind::Ipmi, "h", Some("calvin")),
            Some(&k),
            "bmc",
        )
        .unwrap();
        let PasswordWrite::Sealed(sealed) = write.password else {
            panic!("not sealed")
        };
        assert_eq!(k.open(&sealed).unwrap().expose(), "calvin");
        let keep = prepare(&spec(DriverKind::Ipmi, "h", None), None, "bmc").unwrap();
        assert_eq!(keep.password, PasswordWrite::Keep);
        let clear = prepare(&spec(DriverKind::Ipmi, "h", Some("")), None, "bmc").unwrap();
        assert_eq!(clear.password, PasswordWrite::Clear);
    }
}
