//! Cluster definition files (TOML): networks, roles, bootenvs, nodes and
//! deployments with bindings. `apply` makes the database match a file in
//! one transaction and reports what it created, changed and left alone;
//! applying the same file twice changes nothing.

mod apply;
mod file;
mod positions;
mod validate;

pub use apply::{apply, apply_sealing, ApplyReport};
pub use file::{load, parse, At, ClusterFile};
pub use validate::{check, Known, KnownInterface};

/// kiln's built-in roles, shipped as `config/roles.toml` in the binary.
pub const BUILTIN_ROLES: &str = include_str!("../../config/roles.toml");

/// The built-in roles file, parsed.
pub fn parse_builtin_roles() -> Result<ClusterFile, ClusterError> {
    parse(BUILTIN_ROLES, std::path::Path::new("config/roles.toml"))
}

/// `file` with kiln's built-in roles ahead of its own (a role the file
/// defines itself wins), so both apply in one transaction.
pub fn with_builtin_roles(mut file: ClusterFile) -> Result<ClusterFile, ClusterError> {
    let builtin = parse_builtin_roles()?;
    let mut roles: Vec<_> = builtin
        .roles
        .into_iter()
        .filter(|b| !file.roles.iter().any(|r| r.name == b.name))
        .collect();
    roles.append(&mut file.roles);
    file.roles = roles;
    Ok(file)
}

/// Why a cluster file was refused; always names the file, and the line and
/// field where the parser gives them. The database is left untouched.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("{file}: cannot read: {reason}")]
    Read { file: String, reason: String },
    #[error("{file}: {message}")]
    Parse { file: String, message: String },
    #[error("{file}: {}{field}: {reason}", line_prefix(*line))]
    Invalid {
        file: String,
        /// Where the parser puts the offending value, when it says.
        line: Option<usize>,
        /// The object and its field, e.g. `node n1 interfaces[0].ip`.
        field: String,
        reason: String,
    },
    #[error("{file}: database: {reason}")]
    Database { file: String, reason: String },
}

fn line_prefix(line: Option<usize>) -> String {
    line.map(|l| format!("line {l}: ")).unwrap_or_default()
}
