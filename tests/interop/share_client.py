"""Who sees whose data: two official Python MCP SDK sessions use server-memory behind mcp-gateway.

Usage: python share_client.py URL TRANSPORT   (TRANSPORT: streamable or sse)

Session A creates the entity "alice_secret_project", session B "bob_project" (both sessions open at
once); then each reads the whole graph. Prints one JSON line per session with the entity names it
saw, and one with what a third session, opened after A and B ended, sees.
"""

import asyncio
import json
import sys

from mcp import ClientSession
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client

from client import report


turns = [asyncio.Event(), asyncio.Event()]


def connect(transport, url):
    return sse_client(url) if transport == "sse" else streamable_http_client(url)


async def names(session):
    graph = await session.call_tool("read_graph", {})
    assert not graph.is_error, graph
    data = json.loads(graph.content[0].text)
    return sorted(e["name"] for e in data.get("entities", []))


async def one(url, transport, label, entity, created, go, turn):
    async with connect(transport, url) as streams:
        async with ClientSession(streams[0], streams[1]) as session:
            await session.initialize()
            # One write at a time: server-memory itself loses one of two concurrent writes to one
            # graph (it reads, changes and rewrites its file), which is not what is tested here.
            await turn.wait()
            made = await session.call_tool(
                "create_entities",
                {"entities": [{"name": entity, "entityType": "project", "observations": ["x"]}]},
            )
            assert not made.is_error, made
            created.append(label)
            if len(created) == 1:
                turns[1].set()
            if len(created) == 2:
                go.set()
            await go.wait()  # both sessions hold their data before either reads
            seen = await names(session)
            report("session", label=label, seen=seen)


async def main(url, transport):
    created, go = [], asyncio.Event()
    turns[0].set()
    await asyncio.gather(
        one(url, transport, "A", "alice_secret_project", created, go, turns[0]),
        one(url, transport, "B", "bob_project", created, go, turns[1]),
    )
    async with connect(transport, url) as streams:
        async with ClientSession(streams[0], streams[1]) as session:
            await session.initialize()
            report("session", label="later", seen=await names(session))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
