"""A server that only speaks the legacy HTTP+SSE transport: the official Python SDK's MCPServer
served with its `sse` app (GET /sse, POST /messages/; a POST to /sse gets 405). The bridge's
legacy fallback is tested against it (tests/bridge.rs).

Usage: python bridge_sse_server.py
Prints the port it listens on (127.0.0.1, chosen by the system), then serves until killed.
"""

import socket

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


def main():
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    print(sock.getsockname()[1], flush=True)
    config = uvicorn.Config(server.sse_app(), log_level="warning")
    anyio.run(uvicorn.Server(config).serve, [sock])


if __name__ == "__main__":
    main()
