"""Drive claude-bridge as one agent with the official MCP Python SDK and print what it saw.

Usage:
  agent_check.py sse URL TOKEN ME OTHER
  agent_check.py http URL TOKEN ME OTHER
  agent_check.py stdio BINARY DB TOKEN ME OTHER

The agent ME holds read and write on ME:*; OTHER is another agent with OTHER:*. One session:
calls inside and outside its grants, as itself and as OTHER, then its card and the roster.
The Rust test (tests/agents.rs) checks the output.
"""

import asyncio
import json
import sys

from mcp import ClientSession, StdioServerParameters
from mcp.client.sse import sse_client
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamablehttp_client


async def session_run(read, write, me, other, kind):
    out = {}
    async with ClientSession(read, write) as s:
        await s.initialize()

        async def call(label, name, args):
            r = await s.call_tool(name, args)
            out[label] = {"is_error": r.isError, "structured": r.structuredContent}

        own, theirs = f"{me}:{kind}", f"{other}:{kind}"
        await call("send_own", "bridge_send", {"channel": own, "content": f"hello from {me}"})
        await call("send_own_named", "bridge_send", {"channel": own, "sender": me, "content": "again"})
        await call("send_as_other", "bridge_send", {"channel": own, "sender": other, "content": "spoof"})
        await call("send_theirs", "bridge_send", {"channel": theirs, "content": "intrude"})
        await call("receive_own", "bridge_receive", {"channel": own})
        await call("receive_theirs", "bridge_receive", {"channel": theirs})
        await call("wait_theirs", "bridge_wait", {"channel": theirs, "consumer_id": me, "timeout_seconds": 1})
        await call("ack_theirs", "bridge_ack", {"channel": theirs, "consumer_id": me, "message_id": "x"})
        await call("enqueue_theirs", "bridge_enqueue", {"channel": theirs, "content": "job"})
        await call("clear_own", "bridge_clear", {"channel": own})
        await call("channels", "bridge_channels", {})
        await call("status", "bridge_status", {})
        await call("card", "bridge_card", {"machine": f"{me}-box", "task": f"testing {kind}"})
        await call("card_of_other", "bridge_card", {"name": other, "task": "spoofed"})
        await call("agents", "bridge_agents", {})
    return out


async def main():
    kind = sys.argv[1]
    if kind == "stdio":
        binary, db, token, me, other = sys.argv[2:7]
        params = StdioServerParameters(command=binary, args=["--stdio", "--db", db],
                                       env={"CLAUDE_BRIDGE_AUTH_TOKEN": token})
        async with stdio_client(params) as (read, write):
            out = await session_run(read, write, me, other, kind)
    else:
        url, token, me, other = sys.argv[2:6]
        headers = {"Authorization": f"Bearer {token}"}
        if kind == "sse":
            async with sse_client(url, headers=headers) as (read, write):
                out = await session_run(read, write, me, other, kind)
        else:
            async with streamablehttp_client(url, headers=headers) as (read, write, _):
                out = await session_run(read, write, me, other, kind)
    print(json.dumps(out))


asyncio.run(main())
