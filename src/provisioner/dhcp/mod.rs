//! kiln's own DHCPv4 server: known MACs get their fixed address and a boot
//! file that follows their bootenv; unknown machines get a pool address and
//! are registered as new nodes. Answers come from an in-memory table that
//! the DHCP database role refreshes, never from a query per packet; an ACK
//! of a pool lease leaves only after its lease committed (`acks`), many
//! leases per transaction.

mod acks;
mod answer;
mod server;
mod table;

pub use answer::{answer, starts_network_boot, Answer, BootContext};
pub use server::{open_socket, start, DhcpHandle, DhcpStats, Observers};
pub use table::{DhcpTable, Host, Network};
