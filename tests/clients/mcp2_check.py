"""Drive claude-bridge with the official MCP Python SDK 2.x (venv-mcp2) and print what it saw.

Usage:
  mcp2_check.py auto URL [TOKEN]      Client(URL): mode="auto" probes server/discover first
  mcp2_check.py legacy URL            Client(URL, mode="legacy"): the initialize handshake
  mcp2_check.py stdio BINARY DB       Client(StdioServerParameters(...)) in mode="auto"
  mcp2_check.py sse URL               sse_client + ClientSession (HTTP+SSE, handshake era)

Each run lists the tools and calls every one of them once with valid arguments (a message and
a task make the round trip), then a few refusals. The output is JSON: the negotiated version,
whether the session holds a discover result (the 2026-07-28 era) or an initialize result, and
each call's outcome. The Rust test (tests/eras.rs) checks it.
"""

import asyncio
import json
import sys

import httpx2
from mcp import Client, ClientSession, StdioServerParameters
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client


def outcome(name, r):
    return {
        "name": name,
        "is_error": r.is_error,
        "structured": r.structured_content,
        "texts": [c.text for c in r.content if c.type == "text"],
    }


async def exercise(call, list_tools):
    """Every tool once, in a sensible order, then refusals."""
    out = {}
    tools = await list_tools()
    out["tools"] = sorted(t.name for t in tools.tools)
    calls = []

    async def run(name, args):
        r = await call(name, args)
        calls.append(outcome(name, r))
        return r.structured_content

    chan = "sdk2:main"
    await run("bridge_ping", {})
    sent = await run("bridge_send", {"channel": chan, "sender": "py2", "content": "hello from sdk 2"})
    await run("bridge_receive", {"channel": chan})
    await run("bridge_wait", {"channel": chan, "since_id": sent["id"], "timeout_seconds": 0.2})
    await run("bridge_ack", {"channel": chan, "consumer_id": "w", "message_id": sent["id"]})
    await run("bridge_channels", {})
    await run("bridge_status", {})
    await run("bridge_enqueue", {"channel": "sdk2:jobs", "payload": {"n": 1}})
    await run("bridge_enqueue", {"channel": "sdk2:jobs", "content": "second"})
    claimed = await run("bridge_claim", {"channel": "sdk2:jobs", "consumer": "w1"})
    task = claimed["task"]
    await run("bridge_complete", {"channel": "sdk2:jobs", "task_id": task["task_id"],
                                  "lease_token": task["lease_token"], "result": {"ok": True}})
    # A waiting claim: streams on the POST's event stream (or its own thread on stdio).
    claimed = await run("bridge_claim", {"channel": "sdk2:jobs", "consumer": "w1", "wait_seconds": 5})
    task = claimed["task"]
    await run("bridge_fail", {"channel": "sdk2:jobs", "task_id": task["task_id"],
                              "lease_token": task["lease_token"], "requeue": False})
    await run("bridge_tasks", {"channel": "sdk2:jobs"})
    # The presence tools (issue 18): a card by name (no agent token here), then the roster.
    await run("bridge_card", {"name": "py2", "machine": "sdk2-box", "task": "checking eras"})
    await run("bridge_agents", {})
    await run("bridge_clear", {"channel": chan})
    # Refusals are tool results, never protocol errors.
    await run("bridge_send", {"channel": " bad", "sender": "py2", "content": "x"})
    await run("bridge_no_such_tool", {})
    out["calls"] = calls
    return out


def describe(session):
    d = session.discover_result
    return {
        "protocol_version": session.protocol_version,
        "discovered": d is not None,
        "supported_versions": list(d.supported_versions) if d is not None else None,
        "ttl_ms": d.ttl_ms if d is not None else None,
        "cache_scope": d.cache_scope if d is not None else None,
        "initialized": session.initialize_result is not None,
        "server_name": session.server_info.name if session.server_info else None,
    }


async def with_client(client):
    async with client as c:
        out = describe(c.session)
        out.update(await exercise(c.call_tool, c.list_tools))
    return out


async def main():
    kind, target = sys.argv[1], sys.argv[2]
    if kind == "auto":
        if len(sys.argv) > 3:
            http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {sys.argv[3]}"})
            out = await with_client(Client(streamable_http_client(target, http_client=http)))
        else:
            out = await with_client(Client(target))
    elif kind == "legacy":
        out = await with_client(Client(target, mode="legacy"))
    elif kind == "stdio":
        params = StdioServerParameters(command=target, args=["--stdio", "--db", sys.argv[3]])
        out = await with_client(Client(params))
    else:
        async with sse_client(target) as (read, write):
            async with ClientSession(read, write) as s:
                await s.initialize()
                out = describe(s)
                out.update(await exercise(s.call_tool, s.list_tools))
    print(json.dumps(out))


asyncio.run(main())
