"""The official Python MCP SDK client, through mcp-gateway, against the Python SDK remote server
(`remote_server.py`) configured as a remote of the gateway.

Usage: python remote_client.py CHECK http://127.0.0.1:PORT/mcp
  aside:  calls `ask_aside`, whose sampling request the remote sends on its standalone GET stream;
          this client answers it (sampling callback) and the tool's answer quotes the reply
  resume: calls `interrupted`, whose answer stream the remote closes early; the answer and both
          progress notifications still arrive (the gateway resumes the stream)
Prints one JSON line per check to stdout; exits non-zero (with a traceback) on any mismatch.
"""

import asyncio
import sys

import mcp_types as types
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from client import report


async def sampling(context, params):
    text = params.messages[0].content.text
    return types.CreateMessageResult(
        role="assistant",
        content=types.TextContent(type="text", text=f"sampled {text}"),
        model="remote-test",
    )


async def aside(session):
    result = await session.call_tool("ask_aside", {"question": "where?"})
    assert not result.is_error, result
    assert result.content[0].text == "aside, the model says: sampled where?", result
    report("aside", text=result.content[0].text)


async def resume(session):
    steps = []

    async def on_progress(value, total, message):
        steps.append(message)

    result = await session.call_tool("interrupted", {}, progress_callback=on_progress)
    assert not result.is_error, result
    assert result.content[0].text == "answered after the cut", result
    assert steps == ["before the cut", "after the cut"], steps
    report("resume", steps=steps)


async def main(check, url):
    async with streamable_http_client(url) as streams:
        async with ClientSession(streams[0], streams[1], sampling_callback=sampling) as session:
            await session.initialize()
            await {"aside": aside, "resume": resume}[check](session)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
