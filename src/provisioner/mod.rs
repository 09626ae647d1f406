//! The provisioner: what nodes network-boot, as files other DHCP and DNS
//! servers can use. The builtin jigs of provisioner-dhcp-database and
//! provisioner-dns-database live here.

pub mod boot;
pub mod boots;
pub mod dhcp;
pub mod discovery;
pub mod export;
pub mod power;
pub mod reboots;
pub mod sightings;
pub mod template;
pub mod tftp;
