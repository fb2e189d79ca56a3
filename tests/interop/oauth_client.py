"""Interop: the official Python MCP SDK client against a gateway guarded by gateway.oauth.

Usage: python oauth_client.py URL TOKEN   connects with Authorization: Bearer TOKEN, lists, calls
       python oauth_client.py URL -       connects without a token: must fail with HTTP 401
Prints one JSON line per check to stdout; exits non-zero (with a traceback) on any mismatch.
"""

import asyncio
import sys

from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from client import report


async def with_token(url, token):
    client = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
    async with client:
        async with streamable_http_client(url, http_client=client) as streams:
            async with ClientSession(streams[0], streams[1]) as session:
                init = await session.initialize()
                assert init.server_info.name == "mcp-gateway", init
                report("initialize", protocolVersion=init.protocol_version)
                tools = await session.list_tools()
                names = [t.name for t in tools.tools]
                assert "demo_echo" in names, names
                report("list_tools", count=len(names))
                done = await session.call_tool("demo_echo", {"text": "through the guard"})
                assert done.content[0].text == "through the guard", done
                report("call_tool", text=done.content[0].text)


async def without_token(url):
    # A plain client: the SDK's OAuth provider is not configured, so a 401 ends the attempt.
    seen = []

    async def record(response):
        seen.append((response.status_code, response.headers.get("www-authenticate")))

    client = create_mcp_http_client()
    client.event_hooks = {"response": [record]}
    try:
        async with client:
            async with streamable_http_client(url, http_client=client) as streams:
                async with ClientSession(streams[0], streams[1]) as session:
                    await asyncio.wait_for(session.initialize(), 20)
    except BaseException as error:  # noqa: BLE001 - what the SDK raises is the point
        report("refused", responses=seen, error=repr(error)[:500])
        return
    raise SystemExit("initialize without a token succeeded")


if __name__ == "__main__":
    target, token = sys.argv[1], sys.argv[2]
    if token == "-":
        asyncio.run(without_token(target))
    else:
        asyncio.run(with_token(target, token))
