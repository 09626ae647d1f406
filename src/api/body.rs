//! Reading JSON bodies and query strings with errors that name the field:
//! unknown, missing, or of the wrong type, always a 4xx.

use serde::de::DeserializeOwned;

use super::ApiError;

/// Parses a JSON body into `T`, naming the offending field on failure.
pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.is_empty() {
        return Err(ApiError::BadRequest {
            message: "request body must be a JSON object".into(),
            field: None,
        });
    }
    serde_json::from_slice(body).map_err(|e| describe(&e, body))
}

fn describe(err: &serde_json::Error, body: &[u8]) -> ApiError {
    let message = err.to_string();
    let text = message
        .split(" at line ")
        .next()
        .unwrap_or(&message)
        .to_string();
    if err.is_syntax() || err.is_eof() {
        return ApiError::BadRequest {
            message: format!("malformed JSON: {text}"),
            field: None,
        };
    }
    let field = backticked(&text).or_else(|| key_before(body, err.line(), err.column()));
    ApiError::Unprocessable {
        message: text,
        field,
    }
}

/// `unknown field `x`` / `missing field `x``.
fn backticked(text: &str) -> Option<String> {
    if !(text.starts_with("unknown field") || text.starts_with("missing field")) {
        return None;
    }
    let start = text.find('`')? + 1;
    let end = start + text[start..].find('`')?;
    Some(text[start..end].to_string())
}

/// For type errors: the last object key before the error position.
fn key_before(body: &[u8], line: usize, column: usize) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let offset: usize = text
        .split_inclusive('\n')
        .take(line.saturating_sub(1))
        .map(str::len)
        .sum::<usize>()
        + column;
    let before = &text[..offset.min(text.len())];
    let colon = before.rfind(':')?;
    let key_end = before[..colon].rfind('"')?;
    let key_start = before[..key_end].rfind('"')? + 1;
    Some(before[key_start..key_end].to_string())
}

/// Paging parameters shared by every list.
#[derive(Debug, Clone, Copy)]
pub struct Page {
    pub limit: u64,
    pub offset: u64,
}

/// The largest page a list returns.
pub const MAX_LIMIT: u64 = 1000;
const DEFAULT_LIMIT: u64 = 100;

impl Page {
    pub fn new(limit: Option<u64>, offset: Option<u64>) -> Result<Self, ApiError> {
        let limit = limit.unwrap_or(DEFAULT_LIMIT);
        if limit == 0 || limit > MAX_LIMIT {
            return Err(ApiError::Unprocessable {
                message: format!("limit must be between 1 and {MAX_LIMIT}"),
                field: Some("limit".into()),
            });
        }
        let offset = offset.unwrap_or(0);
        // The databases count rows in signed 64 bits.
        if offset > i64::MAX as u64 {
            return Err(ApiError::Unprocessable {
                message: format!("offset must be at most {}", i64::MAX),
                field: Some("offset".into()),
            });
        }
        Ok(Self { limit, offset })
    }
}

/// The id of the node, role or deployment a list filter names. An unknown
/// one is a bad query parameter (422 naming it), not a missing resource;
/// any other failure (the database) passes through as it is.
pub fn filter_id(
    field: &str,
    key: &str,
    found: Result<i64, crate::db::RepoError>,
) -> Result<i64, ApiError> {
    found.map_err(|e| match e {
        crate::db::RepoError::NotFound { .. } => ApiError::Unprocessable {
            message: format!("{field} `{key}` not found"),
            field: Some(field.into()),
        },
        other => other.into(),
    })
}

/// Query-string deserialization errors as 400s naming the parameter.
pub fn query_error(err: actix_web::error::QueryPayloadError) -> ApiError {
    let text = err.to_string();
    let field = backticked(
        text.trim_start_matches("Query deserialize error: ")
            .trim_start_matches("Query deserialize error:"),
    );
    ApiError::BadRequest {
        message: text,
        field,
    }
}

/// A path segment that does not parse (a percent-encoding that is not
/// UTF-8) as a 400.
pub fn path_error(err: actix_web::error::PathError) -> ApiError {
    ApiError::BadRequest {
        message: err.to_string(),
        field: None,
    }
}

/// Errors of the `web::Json` extractor in the one error shape: a body too
/// large, of the wrong content type, or not JSON is a 400 (413 for size);
/// a body of the wrong shape goes through [`parse`]'s naming of the field.
pub fn json_error(err: actix_web::error::JsonPayloadError) -> actix_web::Error {
    use actix_web::error::JsonPayloadError;
    match err {
        JsonPayloadError::Deserialize(e) => ApiError::Unprocessable {
            field: None,
            message: e.to_string(),
        }
        .into(),
        other => {
            let status = actix_web::ResponseError::status_code(&other);
            actix_web::error::InternalError::from_response(
                other.to_string(),
                super::error::from_plain(status, Some(other.to_string())),
            )
            .into()
        }
    }
}
