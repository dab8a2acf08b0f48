//! The official MCP conformance suite against `/mcp`, with the test-only fixture tools on
//! (`CLAUDE_BRIDGE_CONFORMANCE_FIXTURES=1`). Scenarios that do not apply to a tools-only relay
//! are listed, each with its reason, in `tests/conformance/expected-failures.yml`; the suite
//! fails on any other failure and on a listed scenario that starts passing.

use crate::support::{node_tools, run_ok, Relay, TempDir};
use std::path::Path;
use std::process::{Command, Stdio};

#[test]
fn official_conformance_suite_passes_every_applicable_scenario() {
    let (node, modules) = node_tools();
    let entry = modules.join("@modelcontextprotocol/conformance/dist/index.js");
    let r = Relay::start(&[], &[("CLAUDE_BRIDGE_CONFORMANCE_FIXTURES", "1")]);
    let work = TempDir::new();
    let baseline =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance/expected-failures.yml");
    let bin_dir = node.parent().unwrap().display().to_string();
    let out = Command::new(&node)
        .arg(&entry)
        .args([
            "server",
            "--url",
            &format!("http://{}/mcp", r.addr),
            "--expected-failures",
        ])
        .arg(&baseline)
        .env("PATH", format!("{bin_dir}:/usr/local/bin:/usr/bin:/bin"))
        .current_dir(work.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let summary = text.split("=== SUMMARY ===").nth(1).unwrap_or(&text);
    assert!(
        out.status.success(),
        "conformance failed:\n{summary}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for must_pass in [
        "server-initialize",
        "ping",
        "tools-list",
        "tools-call-simple-text",
        "tools-call-with-progress",
        "tools-call-with-logging",
        "tools-call-error",
        "server-sse-multiple-streams",
        "dns-rebinding-protection",
        "logging-set-level",
    ] {
        assert!(
            summary
                .lines()
                .any(|l| l.contains(&format!("✓ {must_pass}:"))),
            "{must_pass} did not pass:\n{summary}"
        );
    }
}

#[test]
fn mcp_inspector_cli_calls_bridge_send_over_streamable_http() {
    let (node, modules) = node_tools();
    let r = Relay::start(&[], &[]);
    let bin_dir = node.parent().unwrap().display().to_string();
    let out = run_ok(
        "mcp-inspector --cli",
        Command::new(&node)
            .arg(modules.join(".bin/mcp-inspector"))
            .args([
                "--cli",
                &format!("http://{}/mcp", r.addr),
                "--method",
                "tools/call",
            ])
            .args([
                "--tool-name",
                "bridge_send",
                "--tool-arg",
                "channel=insp:main",
            ])
            .args([
                "--tool-arg",
                "sender=inspector",
                "--tool-arg",
                "content=hello from the inspector",
            ])
            .env("PATH", format!("{bin_dir}:/usr/local/bin:/usr/bin:/bin")),
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["isError"], false, "{v}");
    assert_eq!(v["structuredContent"]["channel"], "insp:main");
    let listed = r.get("/api/messages?channel=insp:main&full=1").json();
    assert_eq!(listed["messages"][0]["content"], "hello from the inspector");
    assert_eq!(listed["messages"][0]["id"], v["structuredContent"]["id"]);
}
