"""A stdio MCP server built with the official Python SDK 2.3, for the gateway's era tests.

Usage: python eras_server.py
The SDK's stdio server is dual-era: the client's first request decides whether it is spoken to
with the initialize handshake or statelessly (2026-07-28).
"""

from typing import Annotated

from pydantic import BaseModel

from mcp.server.mcpserver import Context, Elicit, MCPServer, Resolve

server = MCPServer("py-eras", version="1.0.0")


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


class Name(BaseModel):
    name: str


def ask_name() -> Elicit[Name]:
    return Elicit("What is your name?", Name)


@server.tool()
def greet(who: Annotated[Name, Resolve(ask_name)]) -> str:
    """Greets whoever the client's user says they are (the SDK elicits the name: mid-call in a
    2025 session, as an input_required round trip in 2026-07-28)."""
    return f"Hello, {who.name}!"


@server.tool()
async def murmur(text: str, ctx: Context) -> str:
    """Logs `text` at info level (request-scoped in 2026-07-28: only if the request asks)."""
    await ctx.info(text)
    return "murmured"


@server.tool()
async def announce(uri: str, ctx: Context) -> str:
    """Publishes a tools list_changed and an update of `uri` to every subscriptions/listen."""
    await ctx.notify_tools_changed()
    await ctx.notify_resource_updated(uri)
    return "announced"


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
