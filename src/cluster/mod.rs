//! Cluster definition files (TOML): networks, roles, bootenvs, nodes and
//! deployments with bindings. `apply` makes the database match a file in
//! one transaction and reports what it created, changed and left alone;
//! applying the same file twice changes nothing.

mod apply;
mod file;

pub use apply::{apply, ApplyReport};
pub use file::{load, parse, ClusterFile};

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
    #[error("{file}: {field}: {reason}")]
    Invalid {
        file: String,
        field: String,
        reason: String,
    },
    #[error("{file}: database: {reason}")]
    Database { file: String, reason: String },
}
