//! The tool table: each tool once, with its name, its `tools/list` entry (the schema that
//! drives the argument check), whether a call may block, and the function that runs it.
//! The message tools are in [`messages`], the task-queue tools in [`tasks`].

mod messages;
mod presence;
mod tasks;

use super::schema::{check_args, Outcome};
use crate::relay::agents::{Mode, Principal};
use crate::relay::Relay;
use crate::validate::FieldError;
use serde_json::{json, Map, Value};
use std::sync::atomic::AtomicBool;

/// One call in progress: what a tool's function is given.
pub struct Call<'a> {
    /// The operations.
    pub relay: &'a Relay,
    /// The arguments, already checked against the schema.
    pub args: &'a Map<String, Value>,
    /// `_meta.progressToken` of the request, if any.
    pub progress_token: Option<&'a Value>,
    /// Where notifications emitted while the call runs go (sent before its result).
    pub notify: &'a mut dyn FnMut(Value),
    /// Raised when the call is cancelled or its client has gone.
    pub cancel: &'a AtomicBool,
    /// Who calls (the admin on a relay without agents).
    pub who: &'a Principal,
}

/// What a tool needs of the caller's grants, checked after the schema check and before the
/// tool runs (always granted to the admin, so a relay without agents answers as before).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Nothing: listings show only what the caller may read; presence is everyone's.
    Any,
    /// This mode on the channel of the `channel` argument.
    Channel(Mode),
}

/// Whether a tool may block, so that transports run it off the request path.
#[derive(Debug, Clone, Copy)]
pub enum Waits {
    /// Answers at once.
    Never,
    /// May block (up to [`crate::relay::MAX_WAIT`]).
    Always,
    /// Blocks only when this numeric argument is above zero.
    When(&'static str),
}

/// A tool of the table.
pub struct Tool {
    /// The name agents call it by.
    pub name: &'static str,
    /// Its `tools/list` entry (given the name).
    definition: fn(&str) -> Value,
    /// Whether a call may block.
    pub waits: Waits,
    /// What the caller must be allowed.
    pub need: Need,
    /// Runs a call whose arguments passed the schema check.
    run: fn(&mut Call<'_>) -> Outcome,
}

/// Every tool this build serves, in `tools/list` order.
pub static TOOLS: [Tool; 15] = [
    Tool {
        name: "bridge_send",
        definition: messages::send_def,
        waits: Waits::Never,
        need: Need::Channel(Mode::Write),
        run: |c| messages::send(c.relay, c.args, c.who),
    },
    Tool {
        name: "bridge_receive",
        definition: messages::receive_def,
        waits: Waits::Never,
        need: Need::Channel(Mode::Read),
        run: |c| messages::receive(c.relay, c.args, None),
    },
    Tool {
        name: "bridge_wait",
        definition: messages::wait_def,
        waits: Waits::Always,
        need: Need::Channel(Mode::Read),
        run: |c| messages::wait(c.relay, c.args, c.progress_token, c.notify, c.cancel),
    },
    Tool {
        name: "bridge_ack",
        definition: messages::ack_def,
        waits: Waits::Never,
        need: Need::Channel(Mode::Read),
        run: |c| messages::ack(c.relay, c.args),
    },
    Tool {
        name: "bridge_channels",
        definition: messages::channels_def,
        waits: Waits::Never,
        need: Need::Any,
        run: |c| messages::channels(c.relay, c.who),
    },
    Tool {
        name: "bridge_ping",
        definition: messages::ping_def,
        waits: Waits::Never,
        need: Need::Any,
        run: |c| messages::ping(c.relay, c.who),
    },
    Tool {
        name: "bridge_clear",
        definition: messages::clear_def,
        waits: Waits::Never,
        need: Need::Channel(Mode::Admin),
        run: |c| messages::clear(c.relay, c.args),
    },
    Tool {
        name: "bridge_status",
        definition: messages::status_def,
        waits: Waits::Never,
        need: Need::Any,
        run: |c| messages::status(c.relay, c.args, c.who),
    },
    Tool {
        name: "bridge_enqueue",
        definition: tasks::enqueue_def,
        waits: Waits::Never,
        need: Need::Channel(Mode::Write),
        run: |c| tasks::enqueue(c.relay, c.args),
    },
    Tool {
        name: "bridge_claim",
        definition: tasks::claim_def,
        waits: Waits::When("wait_seconds"),
        need: Need::Channel(Mode::Write),
        run: |c| tasks::claim(c.relay, c.args, c.progress_token, c.notify, c.cancel),
    },
    Tool {
        name: "bridge_complete",
        definition: tasks::complete_def,
        waits: Waits::Never,
        need: Need::Channel(Mode::Write),
        run: |c| tasks::complete(c.relay, c.args),
    },
    Tool {
        name: "bridge_fail",
        definition: tasks::fail_def,
        waits: Waits::Never,
        need: Need::Channel(Mode::Write),
        run: |c| tasks::fail(c.relay, c.args),
    },
    Tool {
        name: "bridge_tasks",
        definition: tasks::tasks_def,
        waits: Waits::Never,
        need: Need::Channel(Mode::Read),
        run: |c| tasks::tasks(c.relay, c.args),
    },
    Tool {
        name: "bridge_agents",
        definition: presence::agents_def,
        waits: Waits::Never,
        need: Need::Any,
        run: |c| presence::agents(c.relay, c.who),
    },
    Tool {
        name: "bridge_card",
        definition: presence::card_def,
        waits: Waits::Never,
        need: Need::Any,
        run: |c| presence::card(c.relay, c.args, c.who),
    },
];

/// The tool of this name.
pub fn find(name: &str) -> Option<&'static Tool> {
    TOOLS.iter().find(|t| t.name == name)
}

impl Tool {
    /// Its `tools/list` entry.
    pub fn definition(&self) -> Value {
        (self.definition)(self.name)
    }

    /// Whether a call with these arguments may block.
    pub fn may_wait(&self, args: Option<&Value>) -> bool {
        match self.waits {
            Waits::Never => false,
            Waits::Always => true,
            Waits::When(arg) => args
                .and_then(|a| a.get(arg))
                .and_then(Value::as_f64)
                .is_some_and(|w| w > 0.0),
        }
    }
}

/// The `tools/list` entries.
pub fn list() -> Vec<Value> {
    TOOLS.iter().map(Tool::definition).collect()
}

/// Check the tool's [`Need`] (a denial is audited and is the `forbidden` error on field
/// `channel`); a channel argument that is not a string is left to the tool's own validation.
fn authorize(tool: &Tool, call: &Call<'_>) -> Result<(), super::schema::ToolError> {
    if matches!(call.who, Principal::Admin) {
        return Ok(());
    }
    match tool.need {
        Need::Any => Ok(()),
        Need::Channel(mode) => match call.args.get("channel").and_then(Value::as_str) {
            Some(c) if !c.is_empty() => Ok(call.relay.check(call.who, mode, c)?),
            _ => Ok(()),
        },
    }
}

/// Call a tool by name; always a `CallToolResult`: an unknown tool or bad arguments are a
/// result with `isError: true` and the §4.1 error shape, never a protocol error.
pub fn call(name: &str, call: &mut Call<'_>) -> Value {
    let outcome = match find(name) {
        None => Err(FieldError::new(
            "name",
            "unknown_tool",
            format!("'{name}' is not a tool of this server; tools/list shows the tools"),
        )
        .into()),
        Some(tool) => check_args(&tool.definition()["inputSchema"], call.args)
            .and_then(|()| authorize(tool, call))
            .and_then(|()| (tool.run)(call))
            .and_then(|out| {
                // An agent revoked while the call ran (a wait) gets nothing more.
                if call.who.revoked() {
                    return Err(crate::validate::FieldError::new(
                        "authorization",
                        "forbidden",
                        "this agent's token was revoked",
                    )
                    .into());
                }
                Ok(out)
            }),
    };
    match outcome {
        Ok((structured, text)) => json!({
            "content": [{"type": "text", "text": text}],
            "structuredContent": structured,
            "isError": false,
        }),
        Err(e) => json!({
            "content": [{"type": "text", "text": e.text()}],
            "structuredContent": {"error": e.error, "field": e.field, "code": e.code, "message": e.message},
            "isError": true,
        }),
    }
}
