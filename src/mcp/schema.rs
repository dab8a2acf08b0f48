//! What every tool shares: the failure shape, the schema-driven argument check, and the
//! builders of `tools/list` entries.
//!
//! Arguments are checked in the contract's order (`mcp.md` §3): unknown arguments → required
//! ones → each argument's type and bounds in schema property order → exclusivity → the shared
//! field rules (inside the relay) → the operation. Every failure is a tool result with
//! `isError: true` and the §4.1 error shape as `structuredContent`, never a protocol error.

use crate::error::Error;
use crate::validate::FieldError;
use serde_json::{json, Map, Value};

/// A tool's failure: the §4.1 shape with an optional field.
pub struct ToolError {
    /// The argument at fault, if one is.
    pub field: Option<String>,
    /// The machine-readable reason.
    pub code: &'static str,
    /// What is wrong with the field.
    pub message: String,
    /// The whole sentence.
    pub error: String,
}

impl ToolError {
    /// The text an agent reads: always names the field (when there is one) and the reason.
    pub fn text(&self) -> String {
        let base = match &self.field {
            Some(f) => format!("{f}: {}", self.message),
            None => self.message.clone(),
        };
        if self.error == base {
            base
        } else {
            format!("{base} ({})", self.error)
        }
    }
}

impl From<FieldError> for ToolError {
    fn from(f: FieldError) -> Self {
        ToolError {
            field: Some(f.field),
            code: f.code,
            message: f.message,
            error: f.error,
        }
    }
}

impl From<Error> for ToolError {
    fn from(e: Error) -> Self {
        let bare = |code, message: &str| ToolError {
            field: None,
            code,
            message: message.to_owned(),
            error: message.to_owned(),
        };
        match e {
            Error::Field(f) => f.into(),
            Error::Busy => bare("busy", "bridge database is busy; retry the operation"),
            Error::Storage(msg) => {
                eprintln!("warning: database error: {msg}");
                bare("internal", "the bridge database failed; retry later")
            }
            other => bare("internal", &other.to_string()),
        }
    }
}

/// A tool's structured result and its text for the agent, or its failure.
pub type Outcome = Result<(Value, String), ToolError>;

/// A tool's annotations (`openWorldHint` is always false: a relay reaches nothing else).
pub fn annotations(
    title: &str,
    read_only: bool,
    destructive: bool,
    idempotent: Option<bool>,
) -> Value {
    let mut a = Map::new();
    a.insert("title".into(), json!(title));
    a.insert("readOnlyHint".into(), json!(read_only));
    a.insert("destructiveHint".into(), json!(destructive));
    if let Some(i) = idempotent {
        a.insert("idempotentHint".into(), json!(i));
    }
    a.insert("openWorldHint".into(), json!(false));
    Value::Object(a)
}

/// A `tools/list` entry.
pub fn tool(name: &str, description: &str, input: Value, annotations: Value) -> Value {
    json!({
        "name": name,
        "description": description,
        "inputSchema": input,
        "outputSchema": {"type": "object", "additionalProperties": true},
        "annotations": annotations,
    })
}

/// The schema of a tool that takes no arguments.
pub fn no_args() -> Value {
    json!({"type": "object", "properties": {}, "additionalProperties": false})
}

/// Check arguments against a tool's input schema (the subset our schemas use).
pub fn check_args(schema: &Value, args: &Map<String, Value>) -> Result<(), ToolError> {
    let empty = Map::new();
    let props = schema["properties"].as_object().unwrap_or(&empty);
    if let Some(unknown) = args.keys().find(|k| !props.contains_key(*k)) {
        return Err(
            FieldError::new(unknown, "unknown_field", "is not an accepted argument").into(),
        );
    }
    let present = |k: &str| args.get(k).filter(|v| !v.is_null());
    for req in schema["required"].as_array().into_iter().flatten() {
        let k = req.as_str().unwrap_or_default();
        if present(k).is_none() {
            return Err(FieldError::new(k, "required", "must be provided").into());
        }
    }
    for (k, p) in props {
        let Some(v) = present(k) else { continue };
        match p.get("type").and_then(Value::as_str) {
            Some("string") => {
                let s = v
                    .as_str()
                    .ok_or_else(|| FieldError::new(k, "invalid_type", "must be a string"))?;
                if p.get("minLength").is_some() && s.is_empty() {
                    return Err(FieldError::new(k, "required", "must not be empty").into());
                }
                if let Some(max) = p.get("maxLength").and_then(Value::as_u64) {
                    if s.chars().count() as u64 > max {
                        return Err(FieldError::new(
                            k,
                            "too_long",
                            format!("must be at most {max} characters"),
                        )
                        .into());
                    }
                }
            }
            Some("integer") => {
                let n = integer(v)
                    .ok_or_else(|| FieldError::new(k, "invalid_type", "must be an integer"))?;
                bounds(k, p, n as f64)?;
            }
            Some("number") => {
                let n = v
                    .as_f64()
                    .ok_or_else(|| FieldError::new(k, "invalid_type", "must be a number"))?;
                bounds(k, p, n)?;
            }
            Some("object") if !v.is_object() => {
                return Err(FieldError::new(k, "invalid_type", "must be an object").into());
            }
            Some("boolean") if !v.is_boolean() => {
                return Err(FieldError::new(k, "invalid_type", "must be a boolean").into());
            }
            _ => {}
        }
        if let Some(allowed) = p.get("enum").and_then(Value::as_array) {
            if !allowed.contains(v) {
                let names: Vec<&str> = allowed.iter().filter_map(Value::as_str).collect();
                return Err(FieldError::new(
                    k,
                    "invalid_value",
                    format!("must be one of {}", names.join(", ")),
                )
                .into());
            }
        }
    }
    Ok(())
}

/// The schema's `minimum` / `maximum` for a number argument.
fn bounds(k: &str, p: &Value, n: f64) -> Result<(), FieldError> {
    if let Some(min) = p.get("minimum").and_then(Value::as_f64) {
        if n < min {
            return Err(FieldError::new(
                k,
                "out_of_range",
                format!("must be at least {min}"),
            ));
        }
    }
    if let Some(max) = p.get("maximum").and_then(Value::as_f64) {
        if n > max {
            return Err(FieldError::new(
                k,
                "out_of_range",
                format!("must be at most {max}"),
            ));
        }
    }
    Ok(())
}

/// A JSON integer (not a float such as `5.0` or `1e2`, not a boolean), saturated to i64.
pub fn integer(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) if n.is_i64() => n.as_i64(),
        Value::Number(n) if n.is_u64() => Some(i64::MAX),
        _ => None,
    }
}

pub fn present<'a>(args: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    args.get(key).filter(|v| !v.is_null())
}
