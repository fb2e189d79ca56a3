"""One official Python MCP SDK session (2025-11-25, Streamable HTTP) that outlives a gateway restart.

Usage: python restart_client.py URL

Initializes, calls `echo`, prints {"check": "before", ...}, then waits for a line on
stdin (the test restarts the gateway meanwhile) and, on the same session, lists tools and calls
`echo` and `add`, printing {"check": "after", ...}. Any error ends the script with a traceback.
"""

import asyncio
import sys

from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from client import report


def text(result):
    assert not result.is_error, result
    return result.content[0].text


async def main(url):
    async with streamable_http_client(url) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            before = text(await session.call_tool("echo", {"text": "before"}))
            report("before", echo=before)
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
            tools = await session.list_tools()
            after = text(await session.call_tool("echo", {"text": "after"}))
            added = await session.call_tool("add", {"a": 2, "b": 40})
            report(
                "after",
                tools=len(tools.tools),
                echo=after,
                sum=added.structured_content["sum"],
            )


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
