"""Proves tests/interop/oauth_server.py with the official Python SDK's own OAuth client
(`mcp.client.auth.OAuthClientProvider`), headless: the redirect handler GETs the authorization URL
without following redirects and hands the Location's code, state and iss to the callback handler.

Usage: python oauth_selftest.py MCP_URL dcr
       python oauth_selftest.py MCP_URL preregistered CLIENT_ID:SECRET basic|post
       python oauth_selftest.py MCP_URL client_credentials CLIENT_ID:SECRET basic|post ISSUER
  dcr: discovery from the 401, Dynamic Client Registration, authorization code + PKCE, then
       `whoami` (its client_id is the registered one), `add`, and `admin`, which the server answers
       with 403 insufficient_scope: the SDK steps up to "mcp admin" and the call succeeds.
  preregistered: the same with a client the fixture was started with (`--client ID:SECRET`), stored
       in the token storage beforehand with that token endpoint auth method, so no registration.
  client_credentials: the SDK's ClientCredentialsOAuthProvider for that client (the fixture started
       with --client-credentials), bound to ISSUER; the step-up for `admin` is a new token request.
Prints one JSON line per check ({"check": name, ...}); exits non-zero at the first failure.
"""

import asyncio
import json
import os
import sys
from urllib.parse import parse_qs, urlparse

import httpx2

from mcp import ClientSession
from mcp.client.auth import OAuthClientProvider, TokenStorage
from mcp.client.auth.extensions.client_credentials import ClientCredentialsOAuthProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientInformationFull, OAuthClientMetadata, OAuthToken
from client import report

REDIRECT_URI = "http://127.0.0.1:9/callback"  # never contacted: the redirect is read, not followed


def fail(message):
    report("failed", message=message)
    os._exit(1)  # from inside the SDK's task groups too, without a traceback per task


class MemoryStorage(TokenStorage):
    def __init__(self, client_info: OAuthClientInformationFull | None = None):
        self.tokens: OAuthToken | None = None
        self.client_info = client_info

    async def get_tokens(self):
        return self.tokens

    async def set_tokens(self, tokens):
        self.tokens = tokens

    async def get_client_info(self):
        return self.client_info

    async def set_client_info(self, client_info):
        self.client_info = client_info


class Headless:
    """The user's browser: follows the authorization URL once and catches the redirect."""

    def __init__(self):
        self.result: AuthorizationCodeResult | None = None
        self.authorizations = 0

    async def redirect(self, url: str):
        self.authorizations += 1
        async with httpx2.AsyncClient(follow_redirects=False, timeout=10) as http:
            answer = await http.get(url)
        if answer.status_code != 302:
            fail(f"authorization endpoint answered {answer.status_code}: {answer.text}")
        query = parse_qs(urlparse(answer.headers["location"]).query)
        if "error" in query:
            fail(f"authorization refused: {query}")
        first = {k: v[0] for k, v in query.items()}
        self.result = AuthorizationCodeResult(code=first["code"], state=first.get("state"), iss=first.get("iss"))

    async def callback(self) -> AuthorizationCodeResult:
        return self.result


def text_of(result) -> str:
    if result.is_error:
        fail(f"tool error: {result.content}")
    return result.content[0].text


async def run(mcp_url: str, mode: str, args: list[str]):
    metadata = OAuthClientMetadata(
        client_name="oauth selftest",
        redirect_uris=[REDIRECT_URI],
        grant_types=["authorization_code", "refresh_token"],
        response_types=["code"],
    )
    expected_client = None
    if mode == "dcr":
        storage = MemoryStorage()
    elif mode == "preregistered":
        client_id, _, secret = args[0].partition(":")
        method = {"basic": "client_secret_basic", "post": "client_secret_post"}[args[1]]
        expected_client = client_id
        storage = MemoryStorage(
            OAuthClientInformationFull(
                client_id=client_id,
                client_secret=secret,
                token_endpoint_auth_method=method,
                redirect_uris=[REDIRECT_URI],
                grant_types=["authorization_code", "refresh_token"],
            )
        )
    elif mode == "client_credentials":
        client_id, _, secret = args[0].partition(":")
        method = {"basic": "client_secret_basic", "post": "client_secret_post"}[args[1]]
        expected_client = client_id
        storage = MemoryStorage()
    else:
        fail(f"unknown mode {mode!r}")
    browser = Headless()
    if mode == "client_credentials":
        auth = ClientCredentialsOAuthProvider(
            server_url=mcp_url,
            storage=storage,
            client_id=client_id,
            client_secret=secret,
            token_endpoint_auth_method=method,
            issuer=args[2],
        )
        # No browser in this grant: the step-up below is a new token request, not an authorization.
        browser.authorizations = None
    else:
        auth = OAuthClientProvider(
            server_url=mcp_url,
            client_metadata=metadata,
            storage=storage,
            redirect_handler=browser.redirect,
            callback_handler=browser.callback,
        )
    async with httpx2.AsyncClient(auth=auth, timeout=30) as http:
        async with streamable_http_client(mcp_url, http_client=http) as streams:
            async with ClientSession(streams[0], streams[1]) as session:
                await session.initialize()
                who = json.loads(text_of(await session.call_tool("whoami", {})))
                registered = storage.client_info.client_id if storage.client_info else None
                if expected_client is None:
                    expected_client = registered
                if who["client_id"] != expected_client:
                    fail(f"whoami says {who['client_id']!r}, the client is {expected_client!r}")
                if storage.tokens is None or not storage.tokens.access_token.endswith(who["token_suffix"]):
                    fail("whoami's token_suffix is not the stored access token's")
                report("whoami", client_id=who["client_id"], scopes=who["scopes"],
                       registered=mode == "dcr", authorizations=browser.authorizations)
                total = text_of(await session.call_tool("add", {"a": 2, "b": 3}))
                if total != "5":
                    fail(f"add(2, 3) answered {total!r}")
                report("add", result=total)
                before = browser.authorizations
                answer = text_of(await session.call_tool("admin", {}))
                if answer != "admin ok":
                    fail(f"admin answered {answer!r}")
                if before is not None and browser.authorizations != before + 1:
                    fail("admin succeeded without a step-up authorization")
                report("admin", result=answer, scope=storage.tokens.scope)


def main():
    if len(sys.argv) < 3:
        fail(__doc__)
    asyncio.run(run(sys.argv[1], sys.argv[2], sys.argv[3:]))


if __name__ == "__main__":
    main()
