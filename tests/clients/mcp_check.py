"""Drive claude-bridge with the official MCP Python SDK and print what it saw, as JSON.

Usage:
  mcp_check.py sse URL [TOKEN]
  mcp_check.py http URL [TOKEN]
  mcp_check.py stdio BINARY DB

Runs one session: initialize, list tools, then a fixed list of tool calls (successes and
errors). The Rust test (tests/mcp.rs) checks the output field by field.
"""

import asyncio
import json
import sys
import time

from mcp import ClientSession, StdioServerParameters
from mcp.client.sse import sse_client
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamablehttp_client

CALLS = [
    ("bridge_ping", {}),
    ("bridge_channels", {}),
    ("bridge_status", {}),
    ("bridge_send", {"channel": "sdk:main", "sender": "py", "content": "hello from python"}),
    ("bridge_send", {"channel": "sdk:main", "sender": "py", "content": '{"type":"task.request","n":1}',
                     "idempotency_key": "k-1"}),
    ("bridge_send", {"channel": "sdk:main", "sender": "py", "content": '{"type":"task.request","n":1}',
                     "idempotency_key": "k-1"}),
    ("bridge_send", {"channel": "sdk:main", "sender": "py",
                     "message": {"schema_version": 1, "type": "note", "content": {"k": [1, 2]}}}),
    ("bridge_receive", {"channel": "sdk:main"}),
    ("bridge_receive", {"channel": "sdk:main", "since_id": "not-a-real-id"}),
    ("bridge_receive", {"channel": "sdk:main", "limit": 1}),
    ("bridge_channels", {}),
    ("bridge_ping", {}),
    ("bridge_status", {"per_channel": 2}),
    ("bridge_send", {"channel": " bad", "sender": "py", "content": "x"}),
    ("bridge_send", {"channel": "sdk:main", "sender": "py"}),
    ("bridge_send", {"channel": "sdk:main", "sender": "py", "content": "x", "extra": 1}),
    ("bridge_send", {"channel": "sdk:main", "sender": "py", "content": "x" * 131073}),
    ("bridge_send", {"channel": "sdk:main", "sender": "py", "content": "other", "idempotency_key": "k-1"}),
    ("bridge_receive", {"channel": "sdk:main", "limit": 0}),
    ("bridge_receive", {"channel": "sdk:main", "limit": 5.5}),
    ("bridge_receive", {}),
    ("bridge_no_such_tool", {}),
    ("bridge_clear", {"channel": "sdk:main"}),
    ("bridge_clear", {"channel": "sdk:never"}),
    ("bridge_channels", {}),
    ("bridge_ping", {"verbose": True}),
    ("bridge_channels", {"channel": "x"}),
    ("bridge_clear", {}),
    ("bridge_clear", {"channel": "bad\u0007name"}),
    ("bridge_status", {"per_channel": "many"}),
    ("bridge_status", {"per_channel": -3}),
]


async def session_run(read, write):
    out = {}
    async with ClientSession(read, write) as s:
        init = await s.initialize()
        out["protocol_version"] = init.protocolVersion
        out["server_info"] = init.serverInfo.model_dump()
        out["instructions"] = init.instructions
        out["capabilities"] = init.capabilities.model_dump(exclude_none=True)
        tools = await s.list_tools()
        out["tools"] = [t.model_dump(exclude_none=True) for t in tools.tools]
        await s.send_ping()
        results = []
        for name, args in CALLS:
            r = await s.call_tool(name, args)
            results.append({
                "name": name,
                "args": {k: v for k, v in args.items() if k != "content" or len(v) < 1000},
                "is_error": r.isError,
                "structured": r.structuredContent,
                "texts": [c.text for c in r.content if c.type == "text"],
            })
        out["calls"] = results
        # Durable cursors: send three, ack the second, resume after it.
        ids = []
        for n in range(3):
            r = await s.call_tool("bridge_send", {"channel": "sdk:acks", "sender": "py", "content": f"a{n}"})
            ids.append(r.structuredContent["id"])
        ack = {"ids": ids}
        base = {"channel": "sdk:acks", "consumer_id": "worker-1"}
        ack["first"] = (await s.call_tool("bridge_ack", {**base, "message_id": ids[1]})).structuredContent
        ack["resume"] = (await s.call_tool("bridge_receive", base)).structuredContent
        ack["backward"] = (await s.call_tool("bridge_ack", {**base, "message_id": ids[0]})).structuredContent
        ack["unknown"] = (await s.call_tool("bridge_ack", {**base, "message_id": "nope"})).structuredContent
        out["ack"] = ack
        wait = {}
        chan = {"channel": "sdk:acks"}
        wait["ready"] = (await s.call_tool("bridge_wait", {**chan, "since_id": ids[0]})).structuredContent
        t = time.monotonic()
        wait["empty"] = (await s.call_tool("bridge_wait", {**chan, "since_id": ids[2], "timeout_seconds": 0.3})).structuredContent
        wait["empty_ms"] = (time.monotonic() - t) * 1000
        wait["no_cursor"] = (await s.call_tool("bridge_wait", chan)).structuredContent
        wait["too_long"] = (await s.call_tool("bridge_wait", {**chan, "since_id": ids[0], "timeout_seconds": 56})).structuredContent
        out["wait"] = wait
    return out


async def main():
    kind = sys.argv[1]
    if kind == "sse":
        headers = {"Authorization": f"Bearer {sys.argv[3]}"} if len(sys.argv) > 3 else None
        async with sse_client(sys.argv[2], headers=headers) as (read, write):
            out = await session_run(read, write)
    elif kind == "http":
        headers = {"Authorization": f"Bearer {sys.argv[3]}"} if len(sys.argv) > 3 else None
        async with streamablehttp_client(sys.argv[2], headers=headers) as (read, write, _):
            out = await session_run(read, write)
    else:
        params = StdioServerParameters(command=sys.argv[2], args=["--stdio", "--db", sys.argv[3]])
        async with stdio_client(params) as (read, write):
            out = await session_run(read, write)
    print(json.dumps(out))


asyncio.run(main())
