//! One MCP session's messages, a line each, through the MCP core: parse errors are the
//! transports' -32700; everything that parses must get a well-formed answer, quickly.
#![no_main]

use claude_bridge::mcp::Session;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut session = Session::default();
    for line in data.split(|&b| b == b'\n') {
        if let Ok(mut msg) = claude_bridge::json::parse_body(line) {
            claude_bridge_fuzz::keep_quick(&mut msg);
            claude_bridge_fuzz::handle(&mut session, &msg);
        }
    }
});
