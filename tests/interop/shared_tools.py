"""Tools both Python SDK servers of the tests offer (tests/interop/eras_server.py, stdio, and
tests/interop/remote_server.py, HTTP): `greet` (the SDK elicits the name) and `announce`
(publishes to subscriptions/listen streams)."""

from typing import Annotated

from pydantic import BaseModel

from mcp.server.mcpserver import Context, Elicit, MCPServer, Resolve


class Name(BaseModel):
    name: str


def ask_name() -> Elicit[Name]:
    return Elicit("What is your name?", Name)


def add_shared_tools(server: MCPServer) -> None:
    @server.tool()
    def greet(who: Annotated[Name, Resolve(ask_name)]) -> str:
        """Greets whoever the client's user says they are (the SDK elicits the name: mid-call in
        a 2025 session, as an input_required round trip in 2026-07-28)."""
        return f"Hello, {who.name}!"

    @server.tool()
    async def announce(uri: str, ctx: Context) -> str:
        """2026-07-28: publishes a tools list_changed and an update of `uri` to every
        subscriptions/listen stream whose filter asks for them."""
        await ctx.notify_tools_changed()
        await ctx.notify_resource_updated(uri)
        return "announced"
