"""Interop: the official Python MCP SDK client on one profile of mcp-gateway (tests/profiles.rs).

Usage: python profiles.py view TRANSPORT URL TOOL ARGS_JSON OUTSIDE_TOOL [GATEWAY_BINARY]
       python profiles.py search TRANSPORT URL
       python profiles.py list TRANSPORT URL CLIENT_NAME
TRANSPORT is streamable, sse, or bridge (the SDK's stdio client starts `GATEWAY_BINARY bridge URL`).
Prints one JSON line per check; exits non-zero (with a traceback) on any mismatch.
"""

import asyncio
import json
import sys
from contextlib import asynccontextmanager

import mcp_types as types
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.shared.exceptions import MCPError

from client import connect, report


@asynccontextmanager
async def open_session(transport, url, binary=None, client_name=None):
    info = types.Implementation(name=client_name, version="1.0") if client_name else None
    if transport == "bridge":
        params = StdioServerParameters(command=binary, args=["bridge", url])
        streams = stdio_client(params)
    else:
        streams = connect(transport, url)
    async with streams as (read, write):
        async with ClientSession(read, write, client_info=info) as session:
            session.initialized_with = await session.initialize()
            yield session


def outcome(result):
    """What a client sees of a tool's answer, for comparing two calls."""
    return {
        "content": [c.model_dump(exclude_none=True) for c in result.content],
        "structured": result.structured_content,
        "isError": bool(result.is_error),
    }


async def refused(call):
    try:
        await call
    except MCPError as error:
        return {"code": error.code, "message": error.message}
    raise AssertionError("the call must be refused")


async def view(transport, url, tool, arguments, outside, binary=None):
    async with open_session(transport, url, binary) as session:
        tools = await session.list_tools()
        report("tools", names=[t.name for t in tools.tools])
        prompts = await session.list_prompts()
        report("prompts", names=[p.name for p in prompts.prompts])
        resources = await session.list_resources()
        report("resources", uris=sorted(str(r.uri) for r in resources.resources))
        result = await session.call_tool(tool, json.loads(arguments))
        report("call", **outcome(result))
        report("outside", **await refused(session.call_tool(outside, {})))


async def search(transport, url):
    async with open_session(transport, url) as session:
        report("initialize", instructions=session.initialized_with.instructions)
        listed = [t.name for t in (await session.list_tools()).tools]
        assert listed == ["search_tools", "describe_tools", "call_tool"], listed
        report("tools", names=listed)

        found = await session.call_tool("search_tools", {"query": "steps notifications progress"})
        assert not found.is_error, found
        matches = found.structured_content["tools"]
        assert all(set(m) == {"name", "description"} for m in matches), matches
        report("search", names=[m["name"] for m in matches])
        limited = await session.call_tool("search_tools", {"query": "echo", "limit": 1})
        report("search limit", count=len(limited.structured_content["tools"]))

        described = await session.call_tool("describe_tools", {"names": [matches[0]["name"]]})
        definition = described.structured_content["tools"][0]
        report("describe", name=definition["name"], inputSchema=definition["inputSchema"])

        for name, arguments in [("demo_echo", {"text": "same either way"}), ("demo_fail", {"message": "boom"})]:
            direct = await session.call_tool(name, arguments)
            wrapped = await session.call_tool("call_tool", {"name": name, "arguments": arguments})
            assert outcome(direct) == outcome(wrapped), (outcome(direct), outcome(wrapped))
            report("call_tool", name=name, **outcome(wrapped))

        steps = {"direct": [], "wrapped": []}

        def recorder(key):
            async def on_progress(value, total, message):
                steps[key].append(value)
            return on_progress

        arguments = {"steps": 3, "intervalMs": 5}
        direct = await session.call_tool("demo_progress", arguments, progress_callback=recorder("direct"))
        wrapped = await session.call_tool(
            "call_tool", {"name": "demo_progress", "arguments": arguments}, progress_callback=recorder("wrapped")
        )
        assert outcome(direct) == outcome(wrapped), (direct, wrapped)
        report("call_tool progress", text=wrapped.content[0].text, **steps)

        report("call_tool unknown", **await refused(session.call_tool("call_tool", {"name": "no_such_tool"})))


async def listing(transport, url, client_name):
    async with open_session(transport, url, client_name=client_name) as session:
        tools = await session.list_tools()
        report("tools", client=client_name, names=[t.name for t in tools.tools])


if __name__ == "__main__":
    mode, args = sys.argv[1], sys.argv[2:]
    asyncio.run({"view": view, "search": search, "list": listing}[mode](*args))
