//! Test-only tools for the official MCP conformance suite's `tools-call-*` scenarios, served
//! only when `CLAUDE_BRIDGE_CONFORMANCE_FIXTURES` is true (off by default; the README's test
//! section names it). They touch no data; their contracts come from the suite's scenarios.

use serde_json::{json, Value};

/// A 1×1 PNG.
const PNG: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==";
/// A 44-byte WAV header with no samples.
const WAV: &str = "UklGRiQAAABXQVZFZm10IBAAAAABAAEAQB8AAIA+AAACABAAZGF0YQAAAAA=";

/// Names of the fixture tools.
pub const NAMES: [&str; 9] = [
    "test_simple_text",
    "test_image_content",
    "test_audio_content",
    "test_embedded_resource",
    "test_multiple_content_types",
    "test_tool_with_logging",
    "test_logging_tool",
    "test_tool_with_progress",
    "test_error_handling",
];

/// Whether a fixture emits notifications while it runs.
pub fn streams(name: &str) -> bool {
    matches!(
        name,
        "test_tool_with_logging" | "test_logging_tool" | "test_tool_with_progress"
    )
}

/// Their `tools/list` entries.
pub fn list() -> Vec<Value> {
    NAMES
        .iter()
        .map(|n| {
            json!({"name": n, "description": "Conformance-suite fixture (test builds only).",
                   "inputSchema": {"type": "object", "properties": {}}})
        })
        .collect()
}

fn resource() -> Value {
    json!({"type": "resource", "resource": {"uri": "test://embedded-resource",
            "mimeType": "text/plain", "text": "This is an embedded resource content."}})
}

/// Call a fixture; `notify` receives notifications to send before the result.
pub fn call(
    name: &str,
    progress_token: Option<&Value>,
    notify: &mut dyn FnMut(Value),
) -> Option<Value> {
    let text = |t: &str| json!({"type": "text", "text": t});
    let content = match name {
        "test_simple_text" => vec![text("This is a simple text response for testing.")],
        "test_image_content" => {
            vec![json!({"type": "image", "data": PNG, "mimeType": "image/png"})]
        }
        "test_audio_content" => {
            vec![json!({"type": "audio", "data": WAV, "mimeType": "audio/wav"})]
        }
        "test_embedded_resource" => vec![resource()],
        "test_multiple_content_types" => vec![
            text("Multiple content types test:"),
            json!({"type": "image", "data": PNG, "mimeType": "image/png"}),
            resource(),
        ],
        // The 2026-07-28 suite's name; there a log message needs the request's opt-in.
        "test_tool_with_logging" | "test_logging_tool" => {
            for (i, msg) in [
                "Tool execution started",
                "Tool processing data",
                "Tool execution completed",
            ]
            .iter()
            .enumerate()
            {
                notify(json!({"jsonrpc": "2.0", "method": "notifications/message",
                              "params": {"level": "info", "logger": "fixtures", "data": msg}}));
                if i < 2 {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
            }
            vec![text("Tool with logging completed.")]
        }
        "test_tool_with_progress" => {
            if let Some(token) = progress_token {
                for p in [0, 50, 100] {
                    notify(json!({"jsonrpc": "2.0", "method": "notifications/progress",
                                  "params": {"progressToken": token, "progress": p, "total": 100}}));
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
            }
            vec![text("Tool with progress completed.")]
        }
        "test_error_handling" => {
            return Some(
                json!({"content": [text("This tool intentionally returns an error for testing")], "isError": true}),
            )
        }
        // Not listed: the panic-boundary tests call it to show that a call that panics is
        // answered with an error on every transport and the relay goes on.
        "test_panic_boundary" => panic!("test_panic_boundary was called"),
        _ => return None,
    };
    Some(json!({"content": content, "isError": false}))
}
