"""Interop: the official Python MCP SDK client drives mcp-gateway over one of its transports.

Usage: python client.py sse http://127.0.0.1:PORT/sse
       python client.py streamable http://127.0.0.1:PORT/mcp
Prints one JSON line per check to stdout; exits non-zero (with a traceback) on any mismatch.
"""

import asyncio
import json
import sys

from contextlib import asynccontextmanager

from mcp import ClientSession
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client


def report(check, **fields):
    print(json.dumps({"check": check, **fields}), flush=True)


async def check_progress(session):
    """demo_progress with a progress callback: three steps in order, then the answer."""
    steps = []

    async def on_progress(value, total, message):
        steps.append(value)

    done = await session.call_tool(
        "demo_progress", {"steps": 3, "intervalMs": 5}, progress_callback=on_progress
    )
    assert done.content[0].text == "done 3 steps", done
    assert steps == [1, 2, 3], steps
    report("progress", steps=steps)


@asynccontextmanager
async def connect(transport, url):
    if transport == "sse":
        async with sse_client(url) as (read, write):
            yield read, write
    elif transport == "streamable":
        async with streamable_http_client(url) as streams:
            yield streams[0], streams[1]
    else:
        raise SystemExit(f"unknown transport {transport}")


async def main(transport, url):
    async with connect(transport, url) as (read, write):
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            assert init.server_info.name == "mcp-gateway", init
            report("initialize", protocolVersion=init.protocol_version)

            await session.send_ping()
            report("ping")

            tools = await session.list_tools()
            names = sorted(t.name for t in tools.tools)
            assert "demo_echo" in names and "demo_add" in names, names
            add = next(t for t in tools.tools if t.name == "demo_add")
            assert add.output_schema is not None, add
            report("tools/list", names=names)

            echo = await session.call_tool("demo_echo", {"text": "hello from python"})
            assert not echo.is_error, echo
            assert echo.content[0].text == "hello from python", echo
            report("tools/call echo")

            added = await session.call_tool("demo_add", {"a": 20, "b": 22})
            assert added.structured_content == {"sum": 42}, added
            report("tools/call add", structured=added.structured_content)

            failed = await session.call_tool("demo_fail", {"message": "expected failure"})
            assert failed.is_error, failed
            report("tools/call isError")

            await check_progress(session)

            # Several calls in flight at once on one session: answers are matched by id.
            results = await asyncio.gather(
                *(session.call_tool("demo_echo", {"text": f"n{i}"}) for i in range(8))
            )
            assert [r.content[0].text for r in results] == [f"n{i}" for i in range(8)]
            report("concurrent calls", count=len(results))

            prompts = await session.list_prompts()
            assert "demo_greet" in [p.name for p in prompts.prompts], prompts
            greeting = await session.get_prompt("demo_greet", {"name": "Ada"})
            assert "Ada" in greeting.messages[0].content.text, greeting
            report("prompts", names=sorted(p.name for p in prompts.prompts))

            resources = await session.list_resources()
            uris = sorted(str(r.uri) for r in resources.resources)
            assert "demo://readme" in uris, uris
            readme = await session.read_resource("demo://readme")
            assert readme.contents[0].text, readme
            templates = await session.list_resource_templates()
            assert [t.uri_template for t in templates.resource_templates] == ["demo://echo/{text}"]
            echoed = await session.read_resource("demo://echo/hello")
            assert echoed.contents[0].text == "hello", echoed
            report("resources", uris=uris)

            try:
                await session.read_resource("nowhere://at/all")
            except Exception as error:
                report("unknown resource", error=str(error))
            else:
                raise AssertionError("reading an unknown resource must fail")

            try:
                await session.call_tool("no_such_tool", {})
            except Exception as error:  # the SDK raises on a JSON-RPC error
                report("unknown tool", error=str(error))
            else:
                raise AssertionError("calling an unknown tool must fail")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
