"""Interop: the official Python MCP SDK's stdio client starts `mcp-gateway bridge` (as Claude
Desktop would start any stdio server) and drives a running gateway through it.

Usage: python bridge_client.py GATEWAY_BINARY URL
Prints one JSON line per check to stdout. Halfway it prints {"check": "restart"} and waits for a
line on stdin: meanwhile the test kills the gateway (a call is in flight) and starts a new one on
the same port. Exits non-zero (with a traceback) on any mismatch.
"""

import sys

import anyio
import anyio.to_thread
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from client import check_progress, report


async def main(binary, url):
    params = StdioServerParameters(command=binary, args=["bridge", url])
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            # The gateway's own answer came through, not one made up by the bridge.
            assert init.server_info.name == "mcp-gateway", init
            report("initialize", protocolVersion=init.protocol_version)

            tools = await session.list_tools()
            add = next(t for t in tools.tools if t.name == "demo_add")
            assert add.output_schema is not None and add.input_schema["properties"], add
            report("tools/list", names=sorted(t.name for t in tools.tools))

            echo = await session.call_tool("demo_echo", {"text": "h\u00e9llo \u2603 \U0001f600"})
            assert echo.content[0].text == "h\u00e9llo \u2603 \U0001f600", echo
            added = await session.call_tool("demo_add", {"a": 20, "b": 22})
            assert added.structured_content == {"sum": 42}, added
            failed = await session.call_tool("demo_fail", {"message": "expected"})
            assert failed.is_error, failed
            report("tools/call")

            await check_progress(session)

            # Abandoning a call makes the SDK send notifications/cancelled. The gateway has one
            # demo process: the next call only gets it if the sleep was really cancelled there.
            with anyio.move_on_after(1.0):
                await session.call_tool("demo_sleep", {"ms": 600000})
                raise AssertionError("the sleep cannot have finished")
            after = await session.call_tool("demo_echo", {"text": "after cancel"})
            assert after.content[0].text == "after cancel", after
            report("cancellation")

            resources = await session.list_resources()
            uris = sorted(str(r.uri) for r in resources.resources)
            assert "demo://readme" in uris, uris
            readme = await session.read_resource("demo://readme")
            assert readme.contents[0].text, readme
            templates = await session.list_resource_templates()
            assert [t.uri_template for t in templates.resource_templates] == ["demo://echo/{text}"]
            report("resources", uris=uris)

            prompts = await session.list_prompts()
            assert "demo_greet" in [p.name for p in prompts.prompts], prompts
            greeting = await session.get_prompt("demo_greet", {"name": "Ada"})
            assert "Ada" in greeting.messages[0].content.text, greeting
            report("prompts")

            # A gateway restart in the middle of the session, with a call in flight.
            outcome = {}

            async def long_call():
                try:
                    await session.call_tool("demo_sleep", {"ms": 60000})
                    outcome["sleep"] = "answered"
                except Exception as error:  # the SDK raises on a JSON-RPC error
                    outcome["sleep"] = str(error)

            async with anyio.create_task_group() as group:
                group.start_soon(long_call)
                report("restart")
                line = await anyio.to_thread.run_sync(sys.stdin.readline)
                assert line.strip() == "restarted", line
            assert outcome["sleep"] != "answered", outcome
            again = await session.call_tool("demo_echo", {"text": "after restart"})
            assert again.content[0].text == "after restart", again
            tools = await session.list_tools()
            assert "demo_add" in [t.name for t in tools.tools], tools
            report("after restart", in_flight_error=outcome["sleep"])
    # Leaving stdio_client closed the bridge's stdin: it ends its session and exits.
    report("closed")


if __name__ == "__main__":
    anyio.run(main, sys.argv[1], sys.argv[2])
