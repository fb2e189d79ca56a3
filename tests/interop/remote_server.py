"""A remote MCP server built with the official Python SDK, for the gateway's remote-server tests.

Usage: python remote_server.py TRANSPORT [--port N] [--tls-dir DIR] [--no-get-stream] [--resumable]
                                          [--no-listen] [--modern-only]
  TRANSPORT: streamable (SSE-stream answers), json (plain JSON answers), sse (legacy HTTP+SSE)
  --port N: listen on 127.0.0.1:N (default: a free port)
  --tls-dir DIR: serve https with a certificate minted here for 127.0.0.1/localhost, signed by a
                 fresh CA written to DIR/ca.pem (what the gateway's caFile trusts)
  --no-get-stream: answer GET on the MCP endpoint with 405 (no standalone server->client stream)
  --modern-only: serve 2026-07-28 only (initialize and every 2025 request refused with -32022)
  --no-listen: serve no subscriptions/listen (2026-07-28), so the server says no list can change
  --resumable: keep every event in an in-memory event store (event ids, retry 100 ms), so the
               `interrupted` tool can close its answer stream early and the client resume it
Prints "PORT <n>" on stdout once listening. Also prints every request's Authorization header it
sees as "AUTH <value>" on stderr, and every DELETE as "DELETE <path>", so tests can check what the
gateway sends.
"""

import argparse
import asyncio
import datetime
import json
import os
import socket
import sys

import uvicorn
from typing import Annotated

from pydantic import Field

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.streamable_http import EventMessage, EventStore
from shared_tools import add_shared_tools

server = MCPServer("py-remote", version="1.0.0")
add_shared_tools(server)


@server.tool()
def echo(text: str) -> str:
    """Echoes its text."""
    return text


@server.tool()
def regional(region: Annotated[str, Field(json_schema_extra={"x-mcp-header": "Region"})]) -> str:
    """Answers the region it was called for; its parameter is mirrored into Mcp-Param-Region
    (2026-07-28), which the SDK checks against the body."""
    return f"served in {region}"


@server.tool()
def add(a: int, b: int) -> int:
    """Adds two integers."""
    return a + b


@server.tool()
async def slow(steps: int, ctx: Context) -> str:
    """Reports progress `steps` times, 50 ms apart, then answers."""
    for step in range(steps):
        await ctx.report_progress(step + 1, steps, f"step {step + 1}")
        await asyncio.sleep(0.05)
    return f"done after {steps} steps"


@server.tool()
async def sleep(ms: int) -> str:
    """Sleeps `ms` milliseconds."""
    await asyncio.sleep(ms / 1000)
    return f"slept {ms} ms"


@server.tool()
def whoami() -> str:
    """The server's process id (tells a restarted server apart)."""
    return str(os.getpid())


@server.tool()
async def ask(question: str, ctx: Context) -> str:
    """Asks the client's model (sampling) and returns its answer."""
    from mcp.types import SamplingMessage, TextContent

    result = await ctx.session.create_message(
        messages=[SamplingMessage(role="user", content=TextContent(type="text", text=question))],
        max_tokens=50,
        related_request_id=ctx.request_id,
    )
    return f"the model says: {result.content.text}"


@server.tool()
async def ask_aside(question: str, ctx: Context) -> str:
    """Asks the client's model (sampling) without naming the request it is for, so the SDK sends
    it on the standalone GET stream (as TypeScript servers calling server.createMessage() do)."""
    from mcp.types import SamplingMessage, TextContent

    result = await ctx.session.create_message(
        messages=[SamplingMessage(role="user", content=TextContent(type="text", text=question))],
        max_tokens=50,
    )
    return f"aside, the model says: {result.content.text}"


@server.tool()
async def interrupted(ctx: Context) -> str:
    """Reports progress, closes its own answer stream (with --resumable), then answers; the answer
    only reaches a client that resumes the stream with Last-Event-ID."""
    await ctx.report_progress(1, 2, "before the cut")
    await ctx.close_sse_stream()
    await asyncio.sleep(0.3)
    await ctx.report_progress(2, 2, "after the cut")
    return "answered after the cut"


@server.tool()
async def changed(ctx: Context) -> str:
    """Sends notifications/tools/list_changed outside the call (on the standalone GET stream)."""
    await ctx.session.send_tool_list_changed()
    return "told"


@server.tool()
async def cut_get(ctx: Context) -> str:
    """With --resumable: a tools list_changed on the GET stream (it gets an event id), then the GET
    stream closed, then a resources list_changed, which only a client that resumes the GET stream
    with Last-Event-ID receives (replayed from the event store)."""
    await ctx.session.send_tool_list_changed()
    await asyncio.sleep(0.2)
    await ctx.close_standalone_sse_stream()
    await ctx.session.send_resource_list_changed()
    return "cut"


@server.tool()
async def shout(text: str, ctx: Context) -> str:
    """Logs `text` at info level (a notifications/message to the client), then answers."""
    await ctx.info(text)
    return "shouted"


@server.resource("memo://greeting")
def greeting() -> str:
    """A fixed text."""
    return "hello from python"


@server.prompt()
def review(code: str) -> str:
    """Asks for a review of `code`."""
    return f"Please review: {code}"


def mint(directory):
    """A CA and a server certificate for 127.0.0.1 and localhost; returns (cert, key) paths."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    import ipaddress

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mcp-gateway test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    with open(os.path.join(directory, "ca.pem"), "wb") as f:
        f.write(ca.public_bytes(pem))
    cert_path = os.path.join(directory, "server.pem")
    key_path = os.path.join(directory, "server.key")
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(pem))
    with open(key_path, "wb") as f:
        f.write(
            key.private_bytes(
                pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
    return cert_path, key_path


class ShowAuth:
    """ASGI middleware: reports the Authorization header of every request on stderr."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            if scope["method"] == "DELETE":
                print(f"DELETE {scope['path']}", file=sys.stderr, flush=True)
            for name, value in scope.get("headers", []):
                if name == b"authorization":
                    print(f"AUTH {value.decode()}", file=sys.stderr, flush=True)
        await self.app(scope, receive, send)


class MemoryEvents(EventStore):
    """An in-memory EventStore: every event of every stream, in order."""

    def __init__(self):
        self.events = []  # (event_id, stream_id, message)
        self.counter = 0

    async def store_event(self, stream_id, message):
        self.counter += 1
        event_id = f"e{self.counter}"
        self.events.append((event_id, stream_id, message))
        return event_id

    async def replay_events_after(self, last_event_id, send_callback):
        found = [i for i, (event_id, _, _) in enumerate(self.events) if event_id == last_event_id]
        if not found:
            return None
        stream_id = self.events[found[0]][1]
        print(f"RESUMED {stream_id} after {last_event_id}", file=sys.stderr, flush=True)
        for event_id, sid, message in self.events[found[0] + 1 :]:
            if sid == stream_id and message is not None:
                await send_callback(EventMessage(message, event_id))
        return stream_id


class NoGetStream:
    """ASGI middleware: GET on the MCP endpoint answers 405, as servers without a standalone
    stream do."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["method"] == "GET":
            await send({"type": "http.response.start", "status": 405, "headers": [(b"allow", b"POST, DELETE")]})
            await send({"type": "http.response.body", "body": b""})
            return
        await self.app(scope, receive, send)


class ModernOnly:
    """ASGI middleware: a 2026-07-28-only server. Any request without the 2026-07-28
    MCP-Protocol-Version header (initialize above all) is refused the way that revision says
    (400, -32022 with the versions it supports), and GET (no standalone stream in 2026) is 405."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        if scope["method"] == "GET":
            await send({"type": "http.response.start", "status": 405, "headers": [(b"allow", b"POST")]})
            await send({"type": "http.response.body", "body": b""})
            return
        if scope["method"] == "POST" and headers.get(b"mcp-protocol-version") != b"2026-07-28":
            body = b""
            while True:
                message = await receive()
                body += message.get("body", b"")
                if not message.get("more_body"):
                    break
            try:
                request_id = json.loads(body).get("id")
            except ValueError:
                request_id = None
            requested = headers.get(b"mcp-protocol-version", b"").decode() or None
            error = {"jsonrpc": "2.0", "id": request_id, "error": {
                "code": -32022, "message": "Unsupported protocol version",
                "data": {"supported": ["2026-07-28"], "requested": requested}}}
            payload = json.dumps(error).encode()
            await send({"type": "http.response.start", "status": 400,
                        "headers": [(b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": payload})
            return
        await self.app(scope, receive, send)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("transport", choices=["streamable", "json", "sse"])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--tls-dir")
    parser.add_argument("--no-get-stream", action="store_true")
    parser.add_argument("--resumable", action="store_true")
    parser.add_argument("--no-listen", action="store_true")
    parser.add_argument("--modern-only", action="store_true")
    args = parser.parse_args()
    if args.no_listen:
        # The SDK derives the 2026-07-28 listChanged flags from whether this method is served.
        server._lowlevel_server._request_handlers.pop("subscriptions/listen", None)

    if args.transport == "sse":
        app = server.sse_app()
    else:
        resumable = {"event_store": MemoryEvents(), "retry_interval": 100} if args.resumable else {}
        app = server.streamable_http_app(json_response=args.transport == "json", **resumable)
    if args.no_get_stream:
        app = NoGetStream(app)
    if args.modern_only:
        app = ModernOnly(app)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    tls = {}
    if args.tls_dir:
        cert, key = mint(args.tls_dir)
        tls = {"ssl_certfile": cert, "ssl_keyfile": key}
    config = uvicorn.Config(ShowAuth(app), log_level="warning", **tls)
    print(f"PORT {sock.getsockname()[1]}", flush=True)
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
