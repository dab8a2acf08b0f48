//! Any JSON as the arguments of any tool (the first byte picks the tool): every call gets a
//! result, a tool error naming its reason, or a JSON-RPC error; never a panic or "internal".
#![no_main]

use claude_bridge::mcp::Session;
use libfuzzer_sys::fuzz_target;
use serde_json::json;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let Ok(arguments) = claude_bridge::json::parse_body(rest) else {
        return;
    };
    // One past the real tools: a name that does not exist.
    let names = &claude_bridge::mcp::TOOLS;
    let name = names
        .get(pick as usize % (names.len() + 1))
        .map_or("bridge_no_such_tool", |t| t.name);
    let mut msg = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                         "params": {"name": name, "arguments": arguments}});
    claude_bridge_fuzz::keep_quick(&mut msg);
    claude_bridge_fuzz::handle(&mut Session::default(), &msg);
});
