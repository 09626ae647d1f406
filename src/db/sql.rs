//! Plumbing for the repository's hand-written SQL: placeholders in each
//! backend's spelling, bound id lists, and aliased column lists for joins.

use sea_orm::{DbBackend, EntityTrait, IdenStatic, Iterable, Value};

/// `?`/`$n` placeholders for `count` values starting at `first`.
pub(crate) fn placeholders(backend: DbBackend, first: usize, count: usize) -> String {
    (first..first + count)
        .map(|i| match backend {
            DbBackend::Postgres => format!("${i}"),
            _ => "?".to_string(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The values to bind for a list of ids.
pub(crate) fn id_values(ids: &[i64]) -> Vec<Value> {
    ids.iter().map(|id| Value::from(*id)).collect()
}

/// `alias."col" AS "alias_col"` for every column of `E`, so the row can be
/// read back with `Model::from_query_result(row, "alias_")`.
pub(crate) fn aliased_columns<E: EntityTrait>(alias: &str) -> String {
    E::Column::iter()
        .map(|c| {
            let name = c.as_str();
            format!("{alias}.\"{name}\" AS \"{alias}_{name}\"")
        })
        .collect::<Vec<_>>()
        .join(", ")
}
