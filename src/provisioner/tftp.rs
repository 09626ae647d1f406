//! A small read-only TFTP server for the iPXE binaries.
//!
//! PXE firmware can only fetch its first stage over TFTP (RFC 1350), so kiln
//! serves exactly that: read requests for files under one directory, with
//! the block-size and transfer-size options (RFC 2347/2348/2349) that
//! firmware uses to go faster. Everything else (writes, names leaving the
//! root, missing files) gets a TFTP error packet. Each transfer runs on its
//! own socket and task, as the protocol intends.

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio::net::UdpSocket;

const RRQ: u16 = 1;
const WRQ: u16 = 2;
const DATA: u16 = 3;
const ACK: u16 = 4;
const ERROR: u16 = 5;
const OACK: u16 = 6;
const DEFAULT_BLKSIZE: usize = 512;
const MAX_BLKSIZE: usize = 65464;

/// TFTP error codes (RFC 1350 section 5, RFC 2347).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum TftpErrorCode {
    /// File not found.
    NotFound = 1,
    /// Access violation.
    AccessViolation = 2,
    /// Illegal TFTP operation.
    IllegalOperation = 4,
}

/// Settings (`[tftp]` in the configuration).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct TftpSettings {
    /// Listen address (port 69; tests use 0).
    pub bind: SocketAddr,
    /// Directory served; Debian's `ipxe` package installs the binaries here.
    pub root: PathBuf,
    /// Retransmit after this long without an acknowledgement.
    pub retransmit_ms: u64,
    /// Give a transfer up after this many retransmissions of one packet.
    pub retries: u32,
}

impl Default for TftpSettings {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([0, 0, 0, 0], 69)),
            root: PathBuf::from("/usr/lib/ipxe"),
            retransmit_ms: 1000,
            retries: 5,
        }
    }
}

/// The TFTP server could not start.
#[derive(Debug, thiserror::Error)]
pub enum TftpError {
    /// The listen socket could not be bound.
    #[error("cannot bind the TFTP socket to {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    /// The root directory does not exist or cannot be resolved.
    #[error("TFTP root {root} is not usable")]
    Root {
        root: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Other socket I/O.
    #[error("TFTP socket I/O")]
    Io(#[from] io::Error),
}

/// A refused request: the error packet the client gets.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Refusal(TftpErrorCode, String);

/// A parsed read request.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ReadRequest {
    filename: String,
    blksize: Option<usize>,
    tsize: bool,
    timeout_secs: Option<u64>,
}

/// Transfers, for `/metrics`.
#[derive(Debug, Default)]
pub struct TftpStats {
    /// Files sent to the end, every block acknowledged.
    pub completed: AtomicU64,
    /// Requests refused (missing file, write, bad request) or transfers
    /// abandoned (no acknowledgement, the client sent ERROR).
    pub failed: AtomicU64,
}

/// A bound TFTP server, ready to [`run`](TftpServer::run).
#[derive(Debug)]
pub struct TftpServer {
    socket: UdpSocket,
    root: PathBuf,
    settings: TftpSettings,
    stats: Arc<TftpStats>,
}

impl TftpServer {
    /// Binds the listen socket and resolves the root directory.
    pub async fn bind(settings: TftpSettings) -> Result<Self, TftpError> {
        let root = tokio::fs::canonicalize(&settings.root)
            .await
            .map_err(|source| TftpError::Root {
                root: settings.root.clone(),
                source,
            })?;
        let socket = UdpSocket::bind(settings.bind)
            .await
            .map_err(|source| TftpError::Bind {
                addr: settings.bind,
                source,
            })?;
        Ok(Self {
            socket,
            root,
            settings,
            stats: Arc::default(),
        })
    }

    /// The server's transfer counters.
    pub fn stats(&self) -> Arc<TftpStats> {
        self.stats.clone()
    }

    /// The bound address (tests bind port 0).
    pub fn local_addr(&self) -> Result<SocketAddr, TftpError> {
        Ok(self.socket.local_addr()?)
    }

    /// Serves requests until `shutdown` completes. Transfers in flight
    /// finish or time out on their own.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), TftpError> {
        let mut buf = vec![0u8; 1024];
        tokio::pin!(shutdown);
        tracing::info!(addr = ?self.socket.local_addr().ok(), root = %self.root.display(), "TFTP server running");
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                received = self.socket.recv_from(&mut buf) => match received {
                    Ok((len, peer)) => self.spawn_transfer(buf[..len].to_vec(), peer),
                    Err(e) => tracing::warn!(error = %e, "TFTP receive failed"),
                },
            }
        }
        tracing::info!("TFTP server stopped");
        Ok(())
    }

    fn spawn_transfer(&self, request: Vec<u8>, peer: SocketAddr) {
        let transfer = Transfer {
            root: self.root.clone(),
            retransmit: Duration::from_millis(self.settings.retransmit_ms.max(1)),
            retries: self.settings.retries,
        };
        let local_ip = self.socket.local_addr().map(|a| a.ip()).ok();
        let stats = self.stats.clone();
        tokio::spawn(async move {
            let sent = transfer.serve(&request, peer, local_ip).await;
            let counter = match &sent {
                Ok(true) => &stats.completed,
                Ok(false) => &stats.failed,
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "TFTP transfer ended");
                    &stats.failed
                }
            };
            counter.fetch_add(1, Ordering::Relaxed);
        });
    }
}

struct Transfer {
    root: PathBuf,
    retransmit: Duration,
    retries: u32,
}

impl Transfer {
    /// Answers one request; `Ok(true)` once a whole file was acknowledged,
    /// `Ok(false)` once a refusal was sent.
    async fn serve(
        &self,
        request: &[u8],
        peer: SocketAddr,
        local: Option<IpAddr>,
    ) -> io::Result<bool> {
        let bind_ip = local.unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let socket = UdpSocket::bind(SocketAddr::new(bind_ip, 0)).await?;
        socket.connect(peer).await?;
        let outcome = match parse_request(request) {
            Ok(req) => self.open(&req).await.map(|data| (req, data)),
            Err(refusal) => Err(refusal),
        };
        match outcome {
            Ok((req, data)) => {
                tracing::debug!(%peer, file = %req.filename, bytes = data.len(), "TFTP read");
                self.send_file(&socket, &req, &data).await.map(|_| true)
            }
            Err(Refusal(code, message)) => {
                tracing::debug!(%peer, ?code, %message, "TFTP request refused");
                socket
                    .send(&error_packet(code, &message))
                    .await
                    .map(|_| false)
            }
        }
    }

    async fn open(&self, req: &ReadRequest) -> Result<Vec<u8>, Refusal> {
        let path = resolve(&self.root, &req.filename).await?;
        tokio::fs::read(&path)
            .await
            .map_err(|_| Refusal(TftpErrorCode::AccessViolation, "cannot read file".into()))
    }

    async fn send_file(
        &self,
        socket: &UdpSocket,
        req: &ReadRequest,
        data: &[u8],
    ) -> io::Result<()> {
        let blksize = req.blksize.unwrap_or(DEFAULT_BLKSIZE);
        let retransmit = req
            .timeout_secs
            .map_or(self.retransmit, Duration::from_secs);
        if let Some(oack) = oack(req, data.len()) {
            self.exchange(socket, &oack, 0, retransmit).await?;
        }
        let mut block: u16 = 1;
        let mut offset = 0;
        loop {
            let end = (offset + blksize).min(data.len());
            let mut packet = Vec::with_capacity(4 + end - offset);
            packet.extend_from_slice(&DATA.to_be_bytes());
            packet.extend_from_slice(&block.to_be_bytes());
            packet.extend_from_slice(&data[offset..end]);
            self.exchange(socket, &packet, block, retransmit).await?;
            if end - offset < blksize {
                return Ok(());
            }
            offset = end;
            block = block.wrapping_add(1);
        }
    }

    /// Sends `packet` until the client acknowledges `block`. Stale and
    /// duplicate ACKs are ignored (no resend, avoiding the Sorcerer's
    /// Apprentice syndrome); an ERROR from the client ends the transfer.
    async fn exchange(
        &self,
        socket: &UdpSocket,
        packet: &[u8],
        block: u16,
        wait: Duration,
    ) -> io::Result<()> {
        let mut buf = [0u8; 516];
        for _ in 0..=self.retries {
            socket.send(packet).await?;
            let deadline = tokio::time::Instant::now() + wait;
            while let Ok(received) = tokio::time::timeout_at(deadline, socket.recv(&mut buf)).await
            {
                let len = received?;
                match parse_ack(&buf[..len]) {
                    Some(Ok(acked)) if acked == block => return Ok(()),
                    Some(Ok(_)) | None => continue,
                    Some(Err(())) => {
                        return Err(io::Error::new(
                            io::ErrorKind::ConnectionAborted,
                            "client sent ERROR",
                        ))
                    }
                }
            }
        }
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "no acknowledgement",
        ))
    }
}

/// `Some(Ok(block))` for an ACK, `Some(Err)` for an ERROR, `None` otherwise.
fn parse_ack(packet: &[u8]) -> Option<Result<u16, ()>> {
    let opcode = u16::from_be_bytes([*packet.first()?, *packet.get(1)?]);
    match opcode {
        ACK if packet.len() >= 4 => Some(Ok(u16::from_be_bytes([packet[2], packet[3]]))),
        ERROR => Some(Err(())),
        _ => None,
    }
}

fn parse_request(packet: &[u8]) -> Result<ReadRequest, Refusal> {
    let illegal = |m: &str| Refusal(TftpErrorCode::IllegalOperation, m.to_string());
    if packet.len() < 2 {
        return Err(illegal("short packet"));
    }
    match u16::from_be_bytes([packet[0], packet[1]]) {
        RRQ => {}
        WRQ => {
            return Err(Refusal(
                TftpErrorCode::AccessViolation,
                "read-only server".into(),
            ))
        }
        _ => return Err(illegal("expected a read request")),
    }
    let body = packet[2..]
        .strip_suffix(&[0])
        .ok_or_else(|| illegal("unterminated request"))?;
    let fields: Vec<String> = body
        .split(|b| *b == 0)
        .map(|f| String::from_utf8_lossy(f).into_owned())
        .collect();
    let [filename, mode, options @ ..] = fields.as_slice() else {
        return Err(illegal("request without mode"));
    };
    if !matches!(mode.to_ascii_lowercase().as_str(), "octet" | "netascii") {
        return Err(illegal("unsupported transfer mode"));
    }
    let mut req = ReadRequest {
        filename: filename.clone(),
        blksize: None,
        tsize: false,
        timeout_secs: None,
    };
    for pair in options.chunks(2) {
        if let [name, value] = pair {
            apply_option(&mut req, name, value);
        }
    }
    Ok(req)
}

/// Accepts the options kiln understands; unknown ones are left out of the
/// OACK, which RFC 2347 says means "not accepted".
fn apply_option(req: &mut ReadRequest, name: &str, value: &str) {
    match name.to_ascii_lowercase().as_str() {
        "blksize" => {
            req.blksize = value
                .parse::<usize>()
                .ok()
                .filter(|v| *v >= 8)
                .map(|v| v.min(MAX_BLKSIZE));
        }
        "tsize" => req.tsize = true,
        "timeout" => req.timeout_secs = value.parse().ok().filter(|v| (1..=255).contains(v)),
        _ => {}
    }
}

fn oack(req: &ReadRequest, size: usize) -> Option<Vec<u8>> {
    let mut opts: Vec<(&str, String)> = Vec::new();
    if let Some(b) = req.blksize {
        opts.push(("blksize", b.to_string()));
    }
    if req.tsize {
        opts.push(("tsize", size.to_string()));
    }
    if let Some(t) = req.timeout_secs {
        opts.push(("timeout", t.to_string()));
    }
    if opts.is_empty() {
        return None;
    }
    let mut packet = OACK.to_be_bytes().to_vec();
    for (name, value) in opts {
        packet.extend_from_slice(name.as_bytes());
        packet.push(0);
        packet.extend_from_slice(value.as_bytes());
        packet.push(0);
    }
    Some(packet)
}

fn error_packet(code: TftpErrorCode, message: &str) -> Vec<u8> {
    let mut packet = ERROR.to_be_bytes().to_vec();
    packet.extend_from_slice(&(code as u16).to_be_bytes());
    packet.extend_from_slice(message.as_bytes());
    packet.push(0);
    packet
}

/// Maps a requested name to a file under `root`: only plain components, and
/// the resolved path (symlinks followed) must still be inside the root,
/// unless only the root's owner could have made the links on the way
/// ([`owner_placed`]): Debian's `ipxe` package, the default root's, installs
/// `/usr/lib/ipxe/ipxe.efi` as a link to `/boot/ipxe.efi`, which UEFI PXE
/// firmware must be able to fetch.
async fn resolve(root: &Path, filename: &str) -> Result<PathBuf, Refusal> {
    let denied = || Refusal(TftpErrorCode::AccessViolation, "access denied".into());
    let relative = Path::new(filename.trim_start_matches('/'));
    let plain = relative
        .components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if filename.is_empty() || !plain || filename.contains('\\') {
        return Err(denied());
    }
    let path = tokio::fs::canonicalize(root.join(relative))
        .await
        .map_err(|_| Refusal(TftpErrorCode::NotFound, "file not found".into()))?;
    if !path.starts_with(root) && !owner_placed(root, relative).await {
        return Err(denied());
    }
    match tokio::fs::metadata(&path).await {
        Ok(meta) if meta.is_file() => Ok(path),
        _ => Err(Refusal(TftpErrorCode::NotFound, "file not found".into())),
    }
}

/// Whether every directory from `root` down to the one holding `relative`
/// is owned by the root's owner (or by uid 0) and writable by nobody else:
/// then a link there was placed by whoever controls the root (an operator,
/// a package), and following it out of the root is their choice. A link in
/// a directory others may write to is not followed out.
async fn owner_placed(root: &Path, relative: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(root_meta) = tokio::fs::metadata(root).await else {
        return false;
    };
    let owner = root_meta.uid();
    let mut dir = root.to_path_buf();
    let mut dirs = vec![dir.clone()];
    if let Some(parent) = relative.parent() {
        for component in parent.components() {
            dir.push(component);
            dirs.push(dir.clone());
        }
    }
    for dir in dirs {
        match tokio::fs::symlink_metadata(&dir).await {
            Ok(meta)
                if meta.is_dir()
                    && (meta.uid() == owner || meta.uid() == 0)
                    && meta.mode() & 0o022 == 0 => {}
            _ => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rrq(name: &str, opts: &[(&str, &str)]) -> Vec<u8> {
        let mut p = RRQ.to_be_bytes().to_vec();
        for field in [name, "octet"]
            .into_iter()
            .chain(opts.iter().flat_map(|(a, b)| [*a, *b]))
        {
            p.extend_from_slice(field.as_bytes());
            p.push(0);
        }
        p
    }

    #[test]
    fn parses_read_requests_with_options() {
        let req = parse_request(&rrq(
            "undionly.kpxe",
            &[("blksize", "1428"), ("tsize", "0"), ("x", "y")],
        ))
        .unwrap();
        assert_eq!(req.filename, "undionly.kpxe");
        assert_eq!(req.blksize, Some(1428));
        assert!(req.tsize);
        assert_eq!(
            oack(&req, 70000).unwrap(),
            b"\x00\x06blksize\x001428\x00tsize\x0070000\x00".to_vec()
        );
        let huge = parse_request(&rrq("f", &[("blksize", "99999")])).unwrap();
        assert_eq!(huge.blksize, Some(MAX_BLKSIZE));
    }

    #[test]
    fn refuses_writes_and_garbage() {
        let mut wrq = rrq("f", &[]);
        wrq[1] = 2;
        assert_eq!(
            parse_request(&wrq).unwrap_err().0,
            TftpErrorCode::AccessViolation
        );
        for bad in [
            &b""[..],
            b"\x00",
            b"\x00\x01abc",
            b"\x00\x03\x00\x01",
            b"\x00\x01f\x00mail\x00",
        ] {
            assert_eq!(
                parse_request(bad).unwrap_err().0,
                TftpErrorCode::IllegalOperation,
                "{bad:?}"
            );
        }
    }

    #[tokio::test]
    async fn resolves_only_inside_the_root() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let root = tokio::fs::canonicalize(dir.path()).await.unwrap();
        std::fs::create_dir(root.join("sub")).unwrap();
        std::fs::write(root.join("sub/a.efi"), b"x").unwrap();
        std::os::unix::fs::symlink("/etc/hostname", root.join("escape")).unwrap();
        // A root others may write to: nobody vouches for its links.
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(resolve(&root, "sub/a.efi").await.is_ok());
        assert!(resolve(&root, "/sub/a.efi").await.is_ok());
        for bad in ["../etc/passwd", "sub/../../etc/passwd", "escape", ""] {
            assert!(resolve(&root, bad).await.is_err(), "{bad}");
        }
        assert_eq!(
            resolve(&root, "missing").await.unwrap_err().0,
            TftpErrorCode::NotFound
        );
        assert_eq!(
            resolve(&root, "sub").await.unwrap_err().0,
            TftpErrorCode::NotFound
        );
    }

    /// Debian's layout: `/usr/lib/ipxe/ipxe.efi -> /boot/ipxe.efi`, in
    /// directories only their owner writes. The link is followed out of
    /// the root; the same link under a directory others may write is not.
    #[tokio::test]
    async fn follows_links_only_the_roots_owner_could_place() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let base = tokio::fs::canonicalize(dir.path()).await.unwrap();
        let boot = base.join("boot");
        let root = base.join("ipxe");
        std::fs::create_dir(&boot).unwrap();
        std::fs::create_dir_all(root.join("open")).unwrap();
        std::fs::write(boot.join("ipxe.efi"), b"MZ").unwrap();
        for dir in [&base, &boot, &root] {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        std::fs::set_permissions(root.join("open"), std::fs::Permissions::from_mode(0o1777))
            .unwrap();
        std::os::unix::fs::symlink(boot.join("ipxe.efi"), root.join("ipxe.efi")).unwrap();
        std::os::unix::fs::symlink(boot.join("ipxe.efi"), root.join("open/ipxe.efi")).unwrap();

        assert_eq!(
            resolve(&root, "ipxe.efi").await.unwrap(),
            boot.join("ipxe.efi")
        );
        assert_eq!(
            resolve(&root, "open/ipxe.efi").await.unwrap_err().0,
            TftpErrorCode::AccessViolation
        );
        assert!(resolve(&root, "../boot/ipxe.efi").await.is_err());
    }
}
