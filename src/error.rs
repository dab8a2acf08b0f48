//! The one error type of the relay's operations, and the one place that maps it to HTTP.
//!
//! Every operation in [`crate::relay`] returns [`Error`]; the JSON API turns it into a status
//! and a JSON body with [`Error::to_http`], and the MCP tools turn it into a tool error with the
//! same shape (`mcp/schema.rs`, `ToolError`). Nothing else decides status codes for operation
//! failures.

use crate::validate::FieldError;
use serde_json::{json, Value};
use std::fmt;

/// Why an operation did not succeed.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A request field broke a validation rule (`http-api.md` §4.1 shape). Its code decides
    /// the status: `too_large` content → 413, `conflict`/`in_progress` → 409,
    /// `not_found` → 404, `forbidden` (an agent's grants or name) → 403, anything else → 400.
    Field(FieldError),
    /// The request body was not strict JSON.
    InvalidJson,
    /// The request body nested deeper than the body limit.
    TooDeep,
    /// The request body was JSON but not an object.
    NotObject,
    /// The database stayed locked by another process past the retry budget.
    Busy,
    /// The database failed in a way the client cannot fix (disk full, I/O error, corruption).
    Storage(String),
}

impl Error {
    /// The HTTP status and JSON body for this error (`http-api.md` §3.5, §4.1, `storage.md` §4).
    pub fn to_http(&self) -> (u16, Value) {
        match self {
            Error::Field(f) => {
                let status = match f.code {
                    "conflict" | "in_progress" => 409,
                    "not_found" => 404,
                    "forbidden" => 403,
                    _ => f.http_status(),
                };
                (status, f.to_json())
            }
            Error::InvalidJson => (400, json!({"error": "invalid JSON body"})),
            Error::TooDeep => (
                400,
                json!({"error": "JSON body must be nested no more than 256 levels"}),
            ),
            Error::NotObject => (400, json!({"error": "JSON body must be an object"})),
            Error::Busy => (
                503,
                json!({"error": "bridge database is busy; retry the operation"}),
            ),
            Error::Storage(_) => (
                503,
                json!({"error": "bridge database is unavailable; retry the operation later"}),
            ),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Field(e) => f.write_str(&e.error),
            Error::InvalidJson => f.write_str("invalid JSON body"),
            Error::TooDeep => f.write_str("JSON body nested too deeply"),
            Error::NotObject => f.write_str("JSON body must be an object"),
            Error::Busy => f.write_str("database is busy"),
            Error::Storage(s) => write!(f, "database error: {s}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<FieldError> for Error {
    fn from(e: FieldError) -> Self {
        Error::Field(e)
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode::{DatabaseBusy, DatabaseLocked};
        match e.sqlite_error_code() {
            Some(DatabaseBusy) | Some(DatabaseLocked) => {
                crate::metrics::DB_BUSY.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Error::Busy
            }
            _ => Error::Storage(e.to_string()),
        }
    }
}
