"""A stdio MCP server built with the official Python SDK 2.3, for the gateway's era tests.

Usage: python eras_server.py
The SDK's stdio server is dual-era: the client's first request decides whether it is spoken to
with the initialize handshake or statelessly (2026-07-28).
"""

from mcp.server.mcpserver import Context, MCPServer
from shared_tools import add_shared_tools

server = MCPServer("py-eras", version="1.0.0")
add_shared_tools(server)


@server.tool()
def shout(text: str) -> str:
    """Answers its text in capitals."""
    return text.upper()


@server.tool()
async def count(steps: int, ctx: Context) -> str:
    """Reports progress `steps` times, then answers."""
    for step in range(steps):
        await ctx.report_progress(step + 1, steps)
    return f"counted {steps}"


@server.tool()
async def murmur(text: str, ctx: Context) -> str:
    """Logs `text` at info level (request-scoped in 2026-07-28: only if the request asks)."""
    await ctx.info(text)
    return "murmured"


@server.resource("py://note")
def note() -> str:
    """A fixed note."""
    return "a note from the Python SDK"


@server.prompt()
def hello(name: str) -> str:
    """Greets `name`."""
    return f"Hello, {name}!"


if __name__ == "__main__":
    server.run()
