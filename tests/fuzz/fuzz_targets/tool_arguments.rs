//! Any JSON as the arguments of any tool (the first byte picks the tool): every call gets a
//! result, a tool error naming its reason, or a JSON-RPC error; never a panic or "internal".
#![no_main]

use claude_bridge::mcp::Session;
use libfuzzer_sys::fuzz_target;
use serde_json::json;

const TOOLS: [&str; 14] = [
    "bridge_send",
    "bridge_receive",
    "bridge_wait",
    "bridge_ack",
    "bridge_channels",
    "bridge_ping",
    "bridge_clear",
    "bridge_status",
    "bridge_enqueue",
    "bridge_claim",
    "bridge_complete",
    "bridge_fail",
    "bridge_tasks",
    "bridge_no_such_tool",
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let Ok(arguments) = claude_bridge::json::parse_body(rest) else {
        return;
    };
    let name = TOOLS[pick as usize % TOOLS.len()];
    let mut msg = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                         "params": {"name": name, "arguments": arguments}});
    claude_bridge_fuzz::keep_quick(&mut msg);
    claude_bridge_fuzz::handle(&mut Session::default(), &msg);
});
