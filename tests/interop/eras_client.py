"""Interop: the official Python MCP SDK 2.3 `Client` drives mcp-gateway in either protocol era.

Usage: python eras_client.py MODE TARGET URL [GATEWAY_BINARY]
  MODE   auto (the SDK's default: probes server/discover, so 2026-07-28 against the gateway)
         or legacy (the initialize handshake, 2025-11-25)
  TARGET demo (the demo server, prefix demo_), everything (server-everything, prefix ev_) or
         python (tests/interop/eras_server.py, the SDK's own dual-era stdio server, prefix py_) or
         input_required (the demo server with --protocol modern: its elicit tool's round trip)
  GATEWAY_BINARY: talk to URL through `GATEWAY_BINARY bridge URL` over stdio instead (as a client
         that only launches stdio servers does)
Prints one JSON line per check to stdout; exits non-zero (with a traceback) on any mismatch.
"""

import asyncio
import sys

import mcp_types as types
from mcp.client.client import Client
from mcp.shared.exceptions import MCPError
from client import report


async def expect_error(coro):
    try:
        await coro
    except MCPError as e:
        return e.error.code
    raise AssertionError("expected an MCPError")


async def demo(client, mode):
    tools = {t.name for t in (await client.list_tools()).tools}
    assert {"demo_echo", "demo_progress", "demo_notify_changed"} <= tools, sorted(tools)
    report("tools/list", count=len(tools))

    echo = await client.call_tool("demo_echo", {"text": "through the gateway"})
    assert echo.content[0].text == "through the gateway", echo
    report("tools/call")

    steps = []

    async def on_progress(value, total, message):
        steps.append(value)

    done = await client.call_tool(
        "demo_progress", {"steps": 3, "intervalMs": 5}, progress_callback=on_progress
    )
    assert done.content[0].text == "done 3 steps", done
    assert steps == [1, 2, 3], steps
    report("progress", steps=steps)

    readme = await client.read_resource("demo://readme")
    assert "mcp-demo-server" in readme.contents[0].text, readme
    code = await expect_error(client.read_resource("demo://nothing-here"))
    report("resources/read", unknownCode=code)

    prompts = {p.name for p in (await client.list_prompts()).prompts}
    assert "demo_greet" in prompts, prompts
    got = await client.get_prompt("demo_greet", {"name": "alice"})
    assert "alice" in got.messages[0].content.text, got
    report("prompts")

    code = await expect_error(client.call_tool("no_such_tool", {}))
    report("unknown tool", code=code)

    if mode == "auto":
        async with client.listen(tools_list_changed=True) as sub:
            assert sub.honored.tools_list_changed, sub.honored
            await client.call_tool("demo_notify_changed", {})
            event = await asyncio.wait_for(sub.__anext__(), 10)
            report("listen", event=type(event).__name__)


async def everything(client, mode):
    tools = {t.name for t in (await client.list_tools()).tools}
    assert {"ev_echo", "ev_trigger-long-running-operation"} <= tools, sorted(tools)
    report("tools/list", count=len(tools))

    echo = await client.call_tool("ev_echo", {"message": "through the gateway"})
    assert echo.content[0].text == "Echo: through the gateway", echo
    report("tools/call")

    steps = []

    async def on_progress(value, total, message):
        steps.append(value)

    done = await client.call_tool(
        "ev_trigger-long-running-operation",
        {"duration": 0.3, "steps": 3},
        progress_callback=on_progress,
    )
    assert not done.is_error, done
    assert len(steps) == 3, steps
    report("progress", steps=steps)

    resources = (await client.list_resources()).resources
    assert resources, resources
    read = await client.read_resource(resources[0].uri)
    assert read.contents, read
    report("resources/read")

    got = await client.get_prompt("ev_args-prompt", {"city": "Lisbon"})
    assert "Lisbon" in got.messages[0].content.text, got
    report("prompts")


async def python_sdk(client, mode):
    tools = {t.name for t in (await client.list_tools()).tools}
    assert {"py_shout", "py_count"} <= tools, sorted(tools)
    report("tools/list", count=len(tools))

    shout = await client.call_tool("py_shout", {"text": "quiet"})
    assert shout.content[0].text == "QUIET", shout
    report("tools/call")

    steps = []

    async def on_progress(value, total, message):
        steps.append(value)

    done = await client.call_tool("py_count", {"steps": 3}, progress_callback=on_progress)
    assert done.content[0].text == "counted 3", done
    assert steps == [1, 2, 3], steps
    report("progress", steps=steps)

    note = await client.read_resource("py://note")
    assert note.contents[0].text == "a note from the Python SDK", note
    report("resources/read")

    got = await client.get_prompt("py_hello", {"name": "Ada"})
    assert "Hello, Ada!" in got.messages[0].content.text, got
    report("prompts")


async def input_required(client, mode):
    """A 2026-07-28 server's input_required result, relayed by the gateway, answered by the SDK's
    own retry loop (its elicitation callback), and the retry reaching the server."""
    done = await client.call_tool("demo_elicit", {"message": "Who are you?"})
    assert not done.is_error, done
    assert "Ada" in done.content[0].text, done
    report("input_required", text=done.content[0].text)


async def python_input_required(client, mode, tool="py_greet"):
    """The SDK's own server asks for a name (elicitation) during a call."""
    done = await client.call_tool(tool, {})
    assert not done.is_error, done
    assert done.content[0].text == "Hello, Ada!", done
    report("input_required", text=done.content[0].text)


async def remote_input_required(client, mode):
    await python_input_required(client, mode, "m_greet")
    # A tool with an x-mcp-header parameter: the SDK (2026-07-28) sends Mcp-Param-Region itself,
    # the gateway checks it and mirrors it again to the server.
    regional = await client.call_tool("m_regional", {"region": "ap-south-2"})
    assert regional.content[0].text == "served in ap-south-2", regional


async def pinned_input_required(client, mode):
    """The same server pinned to 2025-11-25: it elicits mid-call on its session, which the gateway
    turns into an input_required round trip for a 2026-07-28 client."""
    await python_input_required(client, mode, "p_greet")


TARGETS = {
    "python_input_required": python_input_required,
    "pinned_input_required": pinned_input_required,
    "remote_input_required": remote_input_required,
    "demo": demo,
    "everything": everything,
    "python": python_sdk,
    "input_required": input_required,
}


async def elicit(context, params):
    return types.ElicitResult(action="accept", content={"name": "Ada"})


async def main(mode, target, url, bridge=None):
    server = url
    if bridge:
        from mcp import StdioServerParameters

        server = StdioServerParameters(command=bridge, args=["bridge", url])
    async with Client(server, mode=mode, elicitation_callback=elicit) as client:
        # A 2025 session has the gateway's initialize answer; a stateless client may keep none.
        if mode == "legacy" or client.server_info is not None:
            assert client.server_info.name == "mcp-gateway", client.server_info
        report("connect", protocolVersion=client.protocol_version)
        await TARGETS[target](client, mode)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
