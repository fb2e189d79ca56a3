"""One official Python MCP SDK session (2025-11-25, Streamable HTTP) through a load balancer.

Usage: python scale_client.py URL CALLS

Initializes once, then makes CALLS calls of `add` one after another, each on whichever replica the
balancer picks. Prints {"check": "call", "n": N, "ok": bool} after each (the test kills a replica
partway), then {"check": "done", "ok": .., "errors": [..]}. A failed call is counted, not fatal.
"""

import asyncio
import sys

from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from client import report


async def main(url, calls):
    errors = []
    ok = 0
    async with streamable_http_client(url) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            for n in range(calls):
                try:
                    result = await session.call_tool("add", {"a": n, "b": 1})
                    good = not result.is_error and result.structured_content["sum"] == n + 1
                except Exception as e:  # noqa: BLE001 - counted, the test judges
                    errors.append(f"call {n}: {type(e).__name__}: {e}")
                    good = False
                ok += good
                report("call", n=n, ok=good)
                await asyncio.sleep(0.05)
    report("done", ok=ok, errors=errors)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
