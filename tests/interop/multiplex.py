"""Multiplexing: many official Python MCP SDK client sessions call real servers behind mcp-gateway at once.

Usage: python multiplex.py URL SPEC_JSON
SPEC_JSON: {"sessions": 8, "rounds": 3, "perServer": 2, "fsDir": ..., "fetchBase": ..., "gitRepo": ...}

Every session initializes, then all of them start together: each round, a session has `perServer`
calls in flight on every server at once (tools/call through the gateway's Streamable HTTP endpoint),
and each answer is checked against what that very call asked for. Prints one JSON line per session
and a summary line; exits non-zero (with a traceback) on any wrong or missing answer.
"""

import asyncio
import json
import sys

from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from client import report


def calls(spec, session, round_):
    """(tool, arguments, check) for every call of one round of one session."""
    out = []
    for k in range(spec["perServer"]):
        tag = f"s{session}r{round_}k{k}"
        hour = (session * 7 + round_ * 3 + k) % 24
        out += [
            ("ev_echo", {"message": tag}, lambda t, tag=tag: t == f"Echo: {tag}"),
            (
                "fs_read_text_file",
                {"path": f"{spec['fsDir']}/file-{session}.txt"},
                lambda t, s=session: t == f"content of file {s}",
            ),
            ("mem_open_nodes", {"names": ["multiplex"]}, lambda t: "shared observation" in t),
            (
                "fetch_fetch",
                {"url": f"{spec['fetchBase']}/page/{tag}"},
                lambda t, tag=tag: f"page at /page/{tag}" in t,
            ),
            (
                "git_git_log",
                {"repo_path": spec["gitRepo"], "max_count": 1},
                lambda t: "multiplex test commit" in t,
            ),
            (
                "time_convert_time",
                {"source_timezone": "Etc/UTC", "time": f"{hour:02}:00", "target_timezone": "Asia/Tokyo"},
                lambda t, h=hour: f"T{(h + 9) % 24:02}:00:00+09:00" in t,
            ),
        ]
    return out


async def one_call(session, name, arguments, check):
    result = await session.call_tool(name, arguments)
    text = result.content[0].text if result.content else ""
    assert not result.is_error and check(text), (name, arguments, result)


async def run_session(url, spec, index, ready, go):
    async with streamable_http_client(url) as streams:
        async with ClientSession(streams[0], streams[1]) as session:
            await session.initialize()
            ready.append(index)
            if len(ready) == spec["sessions"]:
                go.set()
            await go.wait()
            done = 0
            for round_ in range(spec["rounds"]):
                batch = calls(spec, index, round_)
                await asyncio.gather(*(one_call(session, *c) for c in batch))
                done += len(batch)
            report("session", index=index, calls=done)
            return done


async def main(url, spec):
    ready, go = [], asyncio.Event()
    done = await asyncio.gather(*(run_session(url, spec, i, ready, go) for i in range(spec["sessions"])))
    report("burst", sessions=len(done), calls=sum(done))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], json.loads(sys.argv[2])))
