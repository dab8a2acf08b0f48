//! The presence tools (not in the 1.3 contract; they extend it): `bridge_agents` lists the
//! roster, `bridge_card` sets the caller's card (machine, directory or repo, current task),
//! which `wake` also fills in.

use crate::mcp::schema::{annotations, no_args, tool, Outcome};
use crate::relay::agents::Principal;
use crate::relay::Relay;
use serde_json::{Map, Value};
use std::fmt::Write;

/// `bridge_agents`'s `tools/list` entry.
pub(super) fn agents_def(name: &str) -> Value {
    tool(
        name,
        "Who is on the bridge: every agent (or, without agent tokens, every sender and \
         consumer name seen) with whether it is online, when it was last seen, and its card \
         (machine, directory or repo, current task).",
        no_args(),
        annotations("List agents", true, false, None),
    )
}

/// `bridge_card`'s `tools/list` entry.
pub(super) fn card_def(name: &str) -> Value {
    // Parsed from text: a `json!` literal of this size costs kilobytes of code.
    const SCHEMA: &str = r#"{"type": "object", "properties": {
        "machine": {"type": "string", "maxLength": 512, "description": "The machine you run on."},
        "directory": {"type": "string", "maxLength": 512, "description": "Your working directory."},
        "repo": {"type": "string", "maxLength": 512, "description": "The repository you work in."},
        "task": {"type": "string", "maxLength": 512, "description": "What you are working on now."},
        "name": {"type": "string", "minLength": 1, "maxLength": 128,
            "description": "Whose card: yours by default (with an agent token, only yours)."}},
        "additionalProperties": false}"#;
    tool(
        name,
        "Tell the others who you are and what you are doing: set your card in the roster. \
         Fields you leave out keep their value; an empty string removes one.",
        serde_json::from_str(SCHEMA).unwrap_or_default(),
        annotations("Set your card", false, false, Some(true)),
    )
}

pub(super) fn agents(relay: &Relay, who: &Principal) -> Outcome {
    let out = relay.roster_json(who)?;
    let mut text = String::new();
    let roster = out["roster"].as_array().cloned().unwrap_or_default();
    if roster.is_empty() {
        text.push_str("Nobody has been seen on the bridge yet.");
    }
    for e in &roster {
        let state = if e["online"] == true {
            "online"
        } else {
            "offline"
        };
        let _ = write!(text, "- {} ({state}", e["name"].as_str().unwrap_or(""));
        if let Some(seen) = e["last_seen"].as_str() {
            let _ = write!(text, ", last seen {seen}");
        }
        text.push(')');
        if let Some(card) = e["card"].as_object().filter(|c| !c.is_empty()) {
            let parts: Vec<String> = card
                .iter()
                .map(|(k, v)| format!("{k}: {}", v.as_str().unwrap_or("")))
                .collect();
            let _ = write!(text, ": {}", parts.join("; "));
        }
        text.push('\n');
    }
    Ok((out, text))
}

pub(super) fn card(relay: &Relay, args: &Map<String, Value>, who: &Principal) -> Outcome {
    let entry = relay.set_card(who, args)?;
    let text = format!(
        "Card of {} set: {}.",
        entry["name"].as_str().unwrap_or(""),
        entry["card"]
    );
    Ok((entry, text))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_card_schema_parses_and_matches_the_limit() {
        let d = super::card_def("bridge_card");
        let props = &d["inputSchema"]["properties"];
        for f in crate::relay::presence::CARD_FIELDS {
            assert_eq!(
                props[f]["maxLength"],
                crate::relay::presence::MAX_CARD_CHARS,
                "{f}"
            );
        }
        assert_eq!(
            props["name"]["maxLength"],
            crate::validate::MAX_SENDER_CHARS
        );
    }
}
