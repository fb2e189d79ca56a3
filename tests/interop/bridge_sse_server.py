"""A server that only speaks the legacy HTTP+SSE transport: the official Python SDK's MCPServer
served with its `sse` app (GET /sse, POST /messages/; a POST to /sse gets 405). The bridge's
legacy fallback is tested against it (tests/bridge.rs).

Usage: python bridge_sse_server.py [PORT]
Prints the port it listens on (127.0.0.1; PORT, else one the system chooses), then serves until
killed. Prints "sleeping" when a `sleep` call starts, so a test knows the call is in flight.
"""

import socket
import sys

import anyio
import uvicorn
from mcp.server.mcpserver import Context, MCPServer

server = MCPServer("legacy-sse-only")


@server.tool()
def echo(text: str) -> str:
    """Returns its argument."""
    return text


@server.tool()
async def progress(steps: int, ctx: Context) -> str:
    """Reports `steps` progress notifications, then answers."""
    for step in range(1, steps + 1):
        await ctx.report_progress(step, steps)
    return f"done {steps} steps"


@server.tool()
async def sleep(ms: int) -> str:
    """Answers after `ms` milliseconds."""
    print("sleeping", flush=True)
    await anyio.sleep(ms / 1000)
    return f"slept {ms} ms"


def main():
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", int(sys.argv[1]) if len(sys.argv) > 1 else 0))
    sock.listen(64)
    print(sock.getsockname()[1], flush=True)
    config = uvicorn.Config(server.sse_app(), log_level="warning")
    anyio.run(uvicorn.Server(config).serve, [sock])


if __name__ == "__main__":
    main()
