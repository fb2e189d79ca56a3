"""An OAuth 2.1 authorization server and an MCP server protected by it, in one process, on loopback:
the fixture the gateway's OAuth client tests run against (issue #16).

Built from the official Python SDK: the MCP server is the SDK's `MCPServer` with `auth=AuthSettings(...)`
and a `token_verifier` reading this process's token store, so the SDK's own bearer middleware guards
/mcp; metadata documents, registrations and tokens are shaped by the SDK's models (`mcp.shared.auth`).
The authorization endpoints are small Starlette handlers written here, because the SDK's handlers lack
what the tests need: the client_credentials grant, RFC 9207 `iss` on the redirect, Client ID Metadata
Documents, loopback redirect URIs on any port (RFC 8252), one enforced client auth method, `resource`
required, and an event log. Nothing opens a browser: /authorize approves at once with a 302.

Usage: python oauth_server.py [options]

On start it prints ONE JSON line on stdout, then serves until killed:
  {"mcp": "http://127.0.0.1:P/mcp", "issuer": "http://127.0.0.1:Q", "issuer2": "http://127.0.0.1:R",
   "control": "http://127.0.0.1:P/control"}
P, Q and R are free ports picked at start; all three are listening when the line is printed.

Options:
  --token-lifetime SECONDS  access token lifetime, `expires_in` (default 3600)
  --client ID:SECRET        a pre-registered confidential client of the first AS (repeatable); it
                            may use any loopback http redirect URI (http://127.0.0.1|localhost, any
                            port and path) and, with --client-credentials, that grant too
  --client2 ID:SECRET       the same for the second AS (repeatable; it has none by default)
  --auth-method basic|post  the token endpoint auth method of confidential clients (default basic):
                            advertised first in `token_endpoint_auth_methods_supported` (then "none"),
                            given to every confidential client (a DCR request asking for another
                            secret method is registered with this one, RFC 7591 §3.2.1), and the
                            only one accepted from them. Public clients (`none`) are allowed.
  --no-dcr                  the first AS has no `registration_endpoint`; its /register answers 404
                            (the second AS always has DCR)
  --cimd                    both ASes advertise `client_id_metadata_document_supported: true` and
                            accept a `client_id` that is an https URL, or http on 127.0.0.1/localhost:
                            the document is fetched (its `client_id` must equal the URL) and its
                            `redirect_uris` used; such clients are public (`none`). The MCP port also
                            serves a document itself at GET /client.json.
  --cimd-redirect URI       a redirect URI listed by /client.json (repeatable)
  --client-credentials      the token endpoint accepts grant_type=client_credentials from confidential
                            clients (`scope` optional, `resource` required); no refresh token
  --scopes "mcp"            the scopes (space separated) every MCP request needs (default "mcp"):
                            the protected resource metadata's `scopes_supported` and the challenge's
                            `scope`. The ASes know these plus "admin".
  --rotate-refresh          every refresh issues a new refresh token and invalidates the old one
                            (without it, the same refresh token is returned and stays valid)

The authorization servers (both alike, each with its own clients, codes and tokens):
  GET /.well-known/oauth-authorization-server (RFC 8414), also /.well-known/openid-configuration:
      issuer, authorization_endpoint, token_endpoint, registration_endpoint (unless --no-dcr),
      response_types_supported ["code"], code_challenge_methods_supported ["S256"],
      grant_types_supported, token_endpoint_auth_methods_supported, scopes_supported,
      authorization_response_iss_parameter_supported true, client_id_metadata_document_supported.
  POST /register (RFC 7591): JSON client metadata -> 201 with client_id (+ client_secret unless
      `token_endpoint_auth_method` is "none"); errors 400 invalid_client_metadata/invalid_redirect_uri.
  GET|POST /authorize: auto-approves. Checks client_id (unknown -> 400 JSON), redirect_uri (required;
      exact match with a registered one, except loopback http URIs match on any port; bad -> 400 JSON),
      then, redirecting errors per RFC 6749 §4.1.2.1 (with state and iss): response_type=code
      (unsupported_response_type), code_challenge + code_challenge_method=S256 (invalid_request),
      resource (missing -> invalid_request; not the MCP URL -> invalid_target), scope (unknown ->
      invalid_scope; absent -> the --scopes). Success: 302 to redirect_uri?code=…&state=…&iss=<issuer>.
  POST /token (form): client auth by the client's method (basic: `Authorization: Basic`, id and secret
      form-urlencoded; post: client_id + client_secret in the body; none: client_id only); failures
      -> 401 invalid_client (with `WWW-Authenticate: Basic` when Basic was tried). Grants:
      authorization_code (code single-use, 60 s; code_verifier S256-checked; redirect_uri must equal
      the authorize one; resource required and equal), refresh_token (scope may narrow; resource, if
      sent, must be the MCP URL), client_credentials (if enabled). Errors as RFC 6749 §5.2 JSON:
      invalid_request, invalid_client (401), invalid_grant, unauthorized_client,
      unsupported_grant_type, invalid_scope, invalid_target. Success: access_token, token_type
      "Bearer", expires_in, scope, refresh_token (not for client_credentials). Tokens are opaque random
      strings bound to (client_id, scopes, resource, expiry).

The MCP server (port P):
  /mcp: the SDK's Streamable HTTP MCPServer. Tools: `whoami` -> text JSON {"client_id", "scopes",
      "token_suffix" (last 6 chars of the token)}; `admin` -> "admin ok" (needs scope admin);
      `add(a, b)` -> a + b. No Bearer token -> 401 with
      `WWW-Authenticate: Bearer resource_metadata="http://127.0.0.1:P/.well-known/oauth-protected-resource/mcp", scope="mcp"`;
      an unknown, expired, moved or other-resource token -> the same 401 with error="invalid_token"
      first; a token without all the --scopes -> 403 insufficient_scope (scope = the --scopes);
      only the current AS's tokens count (tokens of the second AS before a move do not); the
      SDK's DNS-rebinding guard wants `Host: 127.0.0.1:P` or `localhost:P`. A tools/call of `admin` with a
      token without "admin" -> 403 with
      `WWW-Authenticate: Bearer error="insufficient_scope", scope="mcp admin", resource_metadata="…"`.
      A session (Mcp-Session-Id) belongs to the credential that opened it, (client_id, issuer):
      a refreshed token of the same client keeps using it; another client's or AS's token gets
      the SDK's 404 "Session not found", as if it did not exist.
  GET /.well-known/oauth-protected-resource/mcp and /.well-known/oauth-protected-resource (RFC 9728):
      {"resource": "http://127.0.0.1:P/mcp", "authorization_servers": [current issuer],
       "scopes_supported": [--scopes], "bearer_methods_supported": ["header"]}
  GET /client.json: {"client_id": "http://127.0.0.1:P/client.json", "client_name", "redirect_uris":
      [--cimd-redirect…], "grant_types": ["authorization_code", "refresh_token"],
      "response_types": ["code"], "token_endpoint_auth_method": "none"}
  Control, no auth:
  POST /control/move: the resource now names issuer2 in its metadata, and every token (access and
      refresh) and code of the first AS is invalid from then on (one way: there is no move back;
      the first AS keeps serving, its clients stay registered) -> {"issuer": issuer2}.
  POST /control/expire: every access token issued so far (either AS) is expired (refresh tokens stay
      valid), for refresh tests that must not wait on a clock -> {"expired": n}.
  GET /control/events: a JSON array, oldest first, of everything seen, each
      {"kind": "register"|"authorize"|"token"|"mcp", "as": 1|2|null, "grant_type": str|null,
       "client_id": str|null, "auth_method": "basic"|"post"|"none"|null,
       "authorization": the Authorization header the MCP server received (mcp only) or null,
       "status": the HTTP status answered, "error": the OAuth error code or null,
       "resource": the resource parameter (authorize/token) or null,
       "scope": scopes asked (authorize/token) or the token's scopes (mcp), space separated, or null,
       "method": the JSON-RPC method (mcp) or null, "tool": the tools/call name (mcp) or null}
      One "mcp" event per HTTP request to /mcp (POST, GET, DELETE), with the status finally
      answered (a refused one has error "invalid_request" when no token came, else "invalid_token"
      or "insufficient_scope"). For register, auth_method is the registered one; for token, the one
      the request used (even when refused); for mcp, "as" and client_id are the token's issuer and
      client while either AS holds it (a move forgets the first AS's tokens).
"""

import argparse
import asyncio
import base64
import hashlib
import json
import secrets
import socket
import sys
import time
from dataclasses import dataclass, field
from urllib.parse import unquote_plus, urlencode, urlparse, urlunparse

import httpx2
import uvicorn
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken, TokenVerifier, construct_redirect_uri
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer
from mcp.shared.auth import OAuthClientMetadata, OAuthMetadata, OAuthToken, ProtectedResourceMetadata

METHOD_NAMES = {"basic": "client_secret_basic", "post": "client_secret_post", "none": "none"}
CODE_LIFETIME = 60
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]", "::1")


def listen() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    return sock


def pkce_s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")


def is_loopback_http(uri: str) -> bool:
    parsed = urlparse(uri)
    return parsed.scheme == "http" and parsed.hostname in LOOPBACK_HOSTS


def without_port(uri: str) -> str:
    parsed = urlparse(uri)
    host = parsed.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    return urlunparse(parsed._replace(netloc=host))


def redirect_matches(asked: str, registered: list[str] | None) -> bool:
    """Exact match, except that a loopback http redirect URI matches on any port (RFC 8252 §7.3).
    `None` (a pre-registered client) takes any loopback http redirect URI."""
    if registered is None:
        return is_loopback_http(asked)
    if asked in registered:
        return True
    if not is_loopback_http(asked):
        return False
    return any(is_loopback_http(r) and without_port(r) == without_port(asked) for r in registered)


class Events:
    def __init__(self):
        self.items: list[dict] = []

    def add(self, kind: str, **fields):
        event = {
            "kind": kind,
            "as": None,
            "grant_type": None,
            "client_id": None,
            "auth_method": None,
            "authorization": None,
            "status": None,
            "error": None,
            "resource": None,
            "scope": None,
            "method": None,
            "tool": None,
        }
        event.update(fields)
        self.items.append(event)


@dataclass
class Client:
    client_id: str
    secret: str | None  # None: a public client (token_endpoint_auth_method "none")
    auth_method: str  # "basic" | "post" | "none"
    redirect_uris: list[str] | None  # None: any loopback http URI (pre-registered clients)
    grant_types: list[str]
    metadata: dict = field(default_factory=dict)


@dataclass
class Grant:
    """What a token or code is bound to."""

    client_id: str
    scopes: list[str]
    resource: str
    expires_at: float | None = None
    # authorization codes only
    redirect_uri: str | None = None
    challenge: str | None = None


class OAuthError(Exception):
    def __init__(self, error: str, description: str, status: int = 400, basic_tried: bool = False):
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status
        self.basic_tried = basic_tried

    def response(self) -> JSONResponse:
        headers = {"Cache-Control": "no-store", "Pragma": "no-cache"}
        if self.status == 401 and self.basic_tried:
            headers["WWW-Authenticate"] = 'Basic realm="token"'
        return JSONResponse(
            {"error": self.error, "error_description": self.description}, status_code=self.status, headers=headers
        )


class AuthorizationServer:
    """One authorization server: its clients, codes and tokens, and its Starlette app."""

    def __init__(self, number: int, sock: socket.socket, opts, resource: str, events: Events, clients: list[str]):
        self.number = number
        self.issuer = f"http://127.0.0.1:{sock.getsockname()[1]}"
        self.opts = opts
        self.resource = resource
        self.events = events
        self.dcr = number == 2 or not opts.no_dcr
        self.method = opts.auth_method
        self.scopes = list(dict.fromkeys(opts.scopes.split() + ["admin"]))
        self.clients: dict[str, Client] = {}
        self.codes: dict[str, Grant] = {}
        self.access: dict[str, Grant] = {}
        self.refresh: dict[str, Grant] = {}
        for spec in clients:
            client_id, _, secret = spec.partition(":")
            if not client_id or not secret:
                sys.exit(f"--client wants ID:SECRET, got {spec!r}")
            grants = ["authorization_code", "refresh_token"]
            if opts.client_credentials:
                grants.append("client_credentials")
            self.clients[client_id] = Client(client_id, secret, self.method, None, grants)
        routes = [
            Route("/.well-known/oauth-authorization-server", self.metadata_endpoint, methods=["GET"]),
            Route("/.well-known/openid-configuration", self.metadata_endpoint, methods=["GET"]),
            Route("/authorize", self.authorize, methods=["GET", "POST"]),
            Route("/token", self.token, methods=["POST"]),
        ]
        if self.dcr:
            routes.append(Route("/register", self.register, methods=["POST"]))
        self.app = Starlette(routes=routes)

    # -- metadata --------------------------------------------------------------------------------

    def grant_types(self) -> list[str]:
        grants = ["authorization_code", "refresh_token"]
        if self.opts.client_credentials:
            grants.append("client_credentials")
        return grants

    def metadata(self) -> dict:
        document = OAuthMetadata(
            issuer=self.issuer,
            authorization_endpoint=f"{self.issuer}/authorize",
            token_endpoint=f"{self.issuer}/token",
            registration_endpoint=f"{self.issuer}/register" if self.dcr else None,
            scopes_supported=self.scopes,
            response_types_supported=["code"],
            grant_types_supported=self.grant_types(),
            token_endpoint_auth_methods_supported=[METHOD_NAMES[self.method], "none"],
            code_challenge_methods_supported=["S256"],
            client_id_metadata_document_supported=True if self.opts.cimd else None,
            authorization_response_iss_parameter_supported=True,
        )
        return document.model_dump(mode="json", exclude_none=True)

    async def metadata_endpoint(self, request: Request) -> Response:
        return JSONResponse(self.metadata())

    # -- clients ---------------------------------------------------------------------------------

    async def register(self, request: Request) -> Response:
        try:
            body = await request.json()
            asked = OAuthClientMetadata.model_validate(body)
        except (ValueError, ValidationError) as e:
            self.events.add("register", **{"as": self.number}, status=400, error="invalid_client_metadata")
            return JSONResponse({"error": "invalid_client_metadata", "error_description": str(e)}, status_code=400)
        redirect_uris = [str(u) for u in asked.redirect_uris or []]
        grant_types = list(asked.grant_types or ["authorization_code", "refresh_token"])
        if "authorization_code" in grant_types and not redirect_uris:
            self.events.add("register", **{"as": self.number}, status=400, error="invalid_redirect_uri")
            return JSONResponse(
                {"error": "invalid_redirect_uri", "error_description": "redirect_uris is required"}, status_code=400
            )
        public = asked.token_endpoint_auth_method == "none"
        method = "none" if public else self.method
        client_id = "client-" + secrets.token_hex(8)
        secret = None if public else secrets.token_urlsafe(24)
        self.clients[client_id] = Client(client_id, secret, method, redirect_uris, grant_types, body)
        answer = asked.model_dump(mode="json", exclude_none=True)
        answer.update(
            client_id=client_id,
            client_id_issued_at=int(time.time()),
            token_endpoint_auth_method=METHOD_NAMES[method],
            grant_types=grant_types,
            redirect_uris=redirect_uris,
        )
        if secret:
            answer.update(client_secret=secret, client_secret_expires_at=0)
        self.events.add("register", **{"as": self.number}, client_id=client_id, auth_method=method, status=201)
        return JSONResponse(answer, status_code=201, headers={"Cache-Control": "no-store"})

    def cimd_allowed(self, client_id: str) -> bool:
        if not self.opts.cimd:
            return False
        parsed = urlparse(client_id)
        if parsed.scheme == "https":
            return bool(parsed.hostname) and parsed.path not in ("", "/")
        return parsed.scheme == "http" and parsed.hostname in ("127.0.0.1", "localhost")

    async def client(self, client_id: str) -> Client | None:
        """The registered client, or one described by its Client ID Metadata Document (fetched on
        every first use and kept)."""
        known = self.clients.get(client_id)
        if known is not None or not self.cimd_allowed(client_id):
            return known
        try:
            async with httpx2.AsyncClient(timeout=5) as http:
                answer = await http.get(client_id, headers={"Accept": "application/json"})
            document = answer.json() if answer.status_code == 200 else None
        except Exception:
            document = None
        if not isinstance(document, dict) or document.get("client_id") != client_id:
            return None
        redirect_uris = document.get("redirect_uris")
        if not isinstance(redirect_uris, list) or not all(isinstance(u, str) for u in redirect_uris):
            return None
        grants = document.get("grant_types") or ["authorization_code", "refresh_token"]
        client = Client(client_id, None, "none", redirect_uris, list(grants), document)
        self.clients[client_id] = client
        return client

    # -- authorization endpoint ------------------------------------------------------------------

    async def authorize(self, request: Request) -> Response:
        params = dict(request.query_params if request.method == "GET" else await request.form())
        client_id = params.get("client_id")
        event = {"as": self.number, "client_id": client_id, "resource": params.get("resource"),
                 "scope": params.get("scope")}

        def page(error: str, description: str) -> Response:
            self.events.add("authorize", **event, status=400, error=error)
            return JSONResponse({"error": error, "error_description": description}, status_code=400,
                                headers={"Cache-Control": "no-store"})

        if not client_id:
            return page("invalid_request", "client_id is required")
        client = await self.client(client_id)
        if client is None:
            return page("invalid_request", f"unknown client_id {client_id!r}")
        redirect_uri = params.get("redirect_uri")
        if not redirect_uri:
            return page("invalid_request", "redirect_uri is required")
        if not redirect_matches(redirect_uri, client.redirect_uris):
            return page("invalid_request", f"redirect_uri {redirect_uri!r} is not registered for this client")
        state = params.get("state")

        def back(error: str, description: str) -> Response:
            self.events.add("authorize", **event, status=302, error=error)
            location = construct_redirect_uri(
                redirect_uri, error=error, error_description=description, state=state, iss=self.issuer
            )
            return RedirectResponse(location, status_code=302, headers={"Cache-Control": "no-store"})

        if params.get("response_type") != "code":
            return back("unsupported_response_type", "response_type must be code")
        if "authorization_code" not in client.grant_types:
            return back("unauthorized_client", "this client may not use the authorization code grant")
        if not params.get("code_challenge"):
            return back("invalid_request", "code_challenge is required (PKCE)")
        if params.get("code_challenge_method") != "S256":
            return back("invalid_request", "code_challenge_method must be S256")
        resource = params.get("resource")
        if not resource:
            return back("invalid_request", "resource is required (RFC 8707)")
        if resource != self.resource:
            return back("invalid_target", f"unknown resource {resource!r}")
        scopes = (params.get("scope") or "").split() or self.opts.scopes.split()
        unknown = [s for s in scopes if s not in self.scopes]
        if unknown:
            return back("invalid_scope", f"unknown scope {' '.join(unknown)!r}")
        code = secrets.token_urlsafe(24)
        self.codes[code] = Grant(client_id, scopes, resource, time.time() + CODE_LIFETIME, redirect_uri,
                                 params["code_challenge"])
        self.events.add("authorize", **event, status=302)
        location = construct_redirect_uri(redirect_uri, code=code, state=state, iss=self.issuer)
        return RedirectResponse(location, status_code=302, headers={"Cache-Control": "no-store"})

    # -- token endpoint --------------------------------------------------------------------------

    @staticmethod
    def presented_method(request: Request, form: dict) -> str:
        """The client auth method a token request used: "basic", "post" or "none"."""
        if request.headers.get("authorization", "")[:6].lower() == "basic ":
            return "basic"
        return "post" if "client_secret" in form else "none"

    @staticmethod
    def basic_credentials(request: Request) -> tuple[str, str] | None:
        """(client_id, secret) of an `Authorization: Basic` header (RFC 6749 §2.3.1: each
        form-urlencoded), None when it is malformed."""
        header = request.headers.get("authorization", "")
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
        except (ValueError, UnicodeDecodeError):
            return None
        raw_id, sep, raw_secret = decoded.partition(":")
        return (unquote_plus(raw_id), unquote_plus(raw_secret)) if sep else None

    async def authenticate(self, request: Request, form: dict, event: dict) -> Client:
        """The client a token request comes from (its id noted in `event` as soon as known)."""
        basic = self.presented_method(request, form) == "basic"
        body_id = form.get("client_id")
        if basic:
            credentials = self.basic_credentials(request)
            if credentials is None:
                raise OAuthError("invalid_client", "malformed Basic credentials", 401, basic_tried=True)
            client_id, secret = credentials
            event["client_id"] = client_id
            if body_id is not None and body_id != client_id:
                raise OAuthError("invalid_request", "client_id in the body differs from the Basic credentials")
            if "client_secret" in form:
                raise OAuthError("invalid_request", "client credentials sent both in Basic and in the body")
        elif "client_secret" in form:
            client_id, secret = body_id, form["client_secret"]
        else:
            client_id, secret = body_id, None
        used = self.presented_method(request, form)
        if not client_id:
            raise OAuthError("invalid_client", "no client authentication and no client_id", 401)
        client = await self.client(client_id)
        if client is None:
            raise OAuthError("invalid_client", f"unknown client {client_id!r}", 401, basic_tried=basic)
        if used != client.auth_method:
            raise OAuthError(
                "invalid_client",
                f"this client must authenticate with {METHOD_NAMES[client.auth_method]}, not {METHOD_NAMES[used]}",
                401,
                basic_tried=basic,
            )
        if client.secret is not None and not secrets.compare_digest(client.secret.encode(), secret.encode()):
            raise OAuthError("invalid_client", "wrong client secret", 401, basic_tried=basic)
        return client

    def mint(self, client_id: str, scopes: list[str], resource: str, with_refresh: bool) -> tuple[dict, str | None]:
        access = secrets.token_urlsafe(32)
        # Whole seconds, compared as the SDK's bearer middleware does, so both gates agree.
        self.access[access] = Grant(client_id, scopes, resource, int(time.time()) + self.opts.token_lifetime)
        refresh = None
        if with_refresh:
            refresh = secrets.token_urlsafe(32)
            self.refresh[refresh] = Grant(client_id, scopes, resource)
        token = OAuthToken(
            access_token=access,
            token_type="Bearer",
            expires_in=self.opts.token_lifetime,
            scope=" ".join(scopes),
            refresh_token=refresh,
        )
        return token.model_dump(mode="json", exclude_none=True), refresh

    async def token(self, request: Request) -> Response:
        form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
        grant_type = form.get("grant_type")
        event = {"as": self.number, "grant_type": grant_type, "client_id": form.get("client_id"),
                 "resource": form.get("resource"), "scope": form.get("scope")}
        event["auth_method"] = self.presented_method(request, form)
        try:
            client = await self.authenticate(request, form, event)
            answer = self.grant(client, grant_type, form)
        except OAuthError as e:
            self.events.add("token", **event, status=e.status, error=e.error)
            return e.response()
        self.events.add("token", **event, status=200)
        return JSONResponse(answer, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})

    def grant(self, client: Client, grant_type: str | None, form: dict) -> dict:
        if not grant_type:
            raise OAuthError("invalid_request", "grant_type is required")
        if grant_type not in self.grant_types():
            raise OAuthError("unsupported_grant_type", f"grant_type {grant_type!r} is not supported")
        if grant_type not in client.grant_types:
            raise OAuthError("unauthorized_client", f"this client may not use {grant_type}")
        resource = form.get("resource")
        if grant_type == "authorization_code":
            code = self.codes.pop(form.get("code") or "", None)
            if code is None or code.client_id != client.client_id:
                raise OAuthError("invalid_grant", "unknown or used authorization code")
            if code.expires_at < time.time():
                raise OAuthError("invalid_grant", "the authorization code expired")
            if form.get("redirect_uri") != code.redirect_uri:
                raise OAuthError("invalid_grant", "redirect_uri differs from the authorization request's")
            verifier = form.get("code_verifier")
            if not verifier:
                raise OAuthError("invalid_request", "code_verifier is required (PKCE)")
            if not secrets.compare_digest(pkce_s256(verifier), code.challenge):
                raise OAuthError("invalid_grant", "code_verifier does not match the code_challenge")
            if not resource:
                raise OAuthError("invalid_request", "resource is required (RFC 8707)")
            if resource != code.resource:
                raise OAuthError("invalid_target", "resource differs from the authorization request's")
            answer, _ = self.mint(client.client_id, code.scopes, code.resource, with_refresh=True)
            return answer
        if grant_type == "refresh_token":
            old_token = form.get("refresh_token") or ""
            old = self.refresh.get(old_token)
            if old is None or old.client_id != client.client_id:
                raise OAuthError("invalid_grant", "unknown, used or revoked refresh token")
            if resource and resource != old.resource:
                raise OAuthError("invalid_target", "resource differs from the grant's")
            scopes = (form.get("scope") or "").split() or old.scopes
            if any(s not in old.scopes for s in scopes):
                raise OAuthError("invalid_scope", "a refresh cannot widen the scopes")
            if self.opts.rotate_refresh:
                del self.refresh[old_token]
                answer, _ = self.mint(client.client_id, scopes, old.resource, with_refresh=True)
            else:
                answer, _ = self.mint(client.client_id, scopes, old.resource, with_refresh=False)
                answer["refresh_token"] = old_token
            return answer
        # client_credentials
        if client.secret is None:
            raise OAuthError("unauthorized_client", "client_credentials needs a confidential client")
        if not resource:
            raise OAuthError("invalid_request", "resource is required (RFC 8707)")
        if resource != self.resource:
            raise OAuthError("invalid_target", f"unknown resource {resource!r}")
        scopes = (form.get("scope") or "").split() or self.opts.scopes.split()
        if any(s not in self.scopes for s in scopes):
            raise OAuthError("invalid_scope", "unknown scope")
        answer, _ = self.mint(client.client_id, scopes, resource, with_refresh=False)
        return answer

    def revoke_all(self):
        self.access.clear()
        self.refresh.clear()
        self.codes.clear()


class Fixture:
    """The resource side: which AS is current, token lookups, the MCP app and its HTTP gate."""

    def __init__(self, opts, mcp_sock, as1: AuthorizationServer, as2: AuthorizationServer, events: Events):
        self.opts = opts
        self.base = f"http://127.0.0.1:{mcp_sock.getsockname()[1]}"
        self.resource = f"{self.base}/mcp"
        self.metadata_url = f"{self.base}/.well-known/oauth-protected-resource/mcp"
        self.servers = {1: as1, 2: as2}
        self.current = 1
        self.events = events
        self.required = opts.scopes.split()
        self.server = self.build_server()
        self.mcp_app = self.server.streamable_http_app()

    def lookup(self, token: str) -> tuple[int, Grant] | None:
        """The live grant of an access token of the current AS (a moved-away AS's tokens are dead)."""
        grant = self.servers[self.current].access.get(token)
        if grant is None or grant.expires_at < int(time.time()) or grant.resource != self.resource:
            return None
        return self.current, grant

    def issuer_of(self, token: str) -> tuple[int, Grant] | None:
        for number, server in self.servers.items():
            if token in server.access:
                return number, server.access[token]
        return None

    def build_server(self) -> MCPServer:
        fixture = self

        class StoreVerifier(TokenVerifier):
            async def verify_token(self, token: str) -> AccessToken | None:
                found = fixture.lookup(token)
                if found is None:
                    return None
                number, grant = found
                # The issuer makes the SDK's session owner (client_id, iss): a session opened
                # with one AS's token is not another AS's, even for the same CIMD client id.
                return AccessToken(token=token, client_id=grant.client_id, scopes=grant.scopes,
                                   expires_at=grant.expires_at, resource=grant.resource,
                                   claims={"iss": fixture.servers[number].issuer})

        server = MCPServer(
            "oauth-fixture",
            version="1.0.0",
            auth=AuthSettings(
                issuer_url=self.servers[1].issuer,
                resource_server_url=self.resource,
                required_scopes=self.required,
                validate_token_resource=True,
            ),
            token_verifier=StoreVerifier(),
        )

        @server.tool()
        def whoami() -> str:
            """The client, scopes and token tail of the bearer token this call came with."""
            token = get_access_token()
            return json.dumps({"client_id": token.client_id, "scopes": token.scopes,
                               "token_suffix": token.token[-6:]})

        @server.tool()
        def admin() -> str:
            """Needs scope admin (a token without it is refused at the HTTP layer with 403)."""
            token = get_access_token()
            if "admin" not in token.scopes:
                raise ValueError("scope admin required")
            return "admin ok"

        @server.tool()
        def add(a: int, b: int) -> int:
            """Adds two integers."""
            return a + b

        return server

    def challenge(self, error: str | None, scopes: list[str], description: str | None = None) -> str:
        parts = []
        if error:
            parts.append(f'error="{error}"')
        if description:
            parts.append(f'error_description="{description}"')
        if error == "insufficient_scope":
            parts += [f'scope="{" ".join(scopes)}"', f'resource_metadata="{self.metadata_url}"']
        else:
            parts += [f'resource_metadata="{self.metadata_url}"', f'scope="{" ".join(scopes)}"']
        return "Bearer " + ", ".join(parts)

    def protected_resource_metadata(self) -> dict:
        document = ProtectedResourceMetadata(
            resource=self.resource,
            authorization_servers=[self.servers[self.current].issuer],
            scopes_supported=self.required,
            bearer_methods_supported=["header"],
        )
        return document.model_dump(mode="json", exclude_none=True)

    def client_document(self) -> dict:
        return {
            "client_id": f"{self.base}/client.json",
            "client_name": "oauth fixture test client",
            "redirect_uris": self.opts.cimd_redirect,
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
        }

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.mcp_app(scope, receive, send)
        path, method = scope["path"], scope["method"]
        if path in ("/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp"):
            return await JSONResponse(self.protected_resource_metadata())(scope, receive, send)
        if path == "/client.json" and method == "GET":
            return await JSONResponse(self.client_document())(scope, receive, send)
        if path == "/control/move" and method == "POST":
            self.servers[1].revoke_all()
            self.current = 2
            return await JSONResponse({"issuer": self.servers[2].issuer})(scope, receive, send)
        if path == "/control/expire" and method == "POST":
            count = 0
            for server in self.servers.values():
                for grant in server.access.values():
                    grant.expires_at = -1
                    count += 1
            return await JSONResponse({"expired": count})(scope, receive, send)
        if path == "/control/events" and method == "GET":
            return await JSONResponse(self.events.items)(scope, receive, send)
        if path.startswith("/control"):
            return await JSONResponse({"error": "unknown control endpoint"}, status_code=404)(scope, receive, send)
        if path.rstrip("/") != "/mcp":
            return await self.mcp_app(scope, receive, send)
        return await self.guard(scope, receive, send)

    async def guard(self, scope, receive, send):
        """Shapes the challenges (401 without a token or with a bad one, 403 for a missing scope or
        an `admin` call without "admin") before the SDK's own bearer middleware sees the request, and
        logs every request with the Authorization header it carried."""
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        authorization = headers.get("authorization")
        body = b""
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            body += message.get("body", b"")
            more = message.get("more_body", False)
        rpc_method, tool = None, None
        try:
            parsed = json.loads(body) if body else None
            if isinstance(parsed, dict):
                rpc_method = parsed.get("method")
                if rpc_method == "tools/call" and isinstance(parsed.get("params"), dict):
                    tool = parsed["params"].get("name")
        except ValueError:
            pass
        event = {"authorization": authorization, "method": rpc_method, "tool": tool}
        token = authorization[7:].strip() if authorization and authorization[:7].lower() == "bearer " else None
        if token:
            known = self.issuer_of(token)
            if known:
                event.update({"as": known[0], "client_id": known[1].client_id, "scope": " ".join(known[1].scopes)})
        found = self.lookup(token) if token else None
        deny = None
        if not token:
            deny = (401, "invalid_request", self.challenge(None, self.required), "a Bearer token is required")
        elif found is None:
            deny = (401, "invalid_token", self.challenge("invalid_token", self.required, "unknown, expired or revoked token"),
                    "unknown, expired or revoked token")
        else:
            granted = found[1].scopes
            if any(s not in granted for s in self.required):
                deny = (403, "insufficient_scope", self.challenge("insufficient_scope", self.required),
                        "the token lacks a required scope")
            elif tool == "admin" and "admin" not in granted:
                wanted = list(dict.fromkeys(self.required + ["admin"]))
                deny = (403, "insufficient_scope", self.challenge("insufficient_scope", wanted),
                        "the admin tool needs scope admin")
        if deny:
            status, error, header, description = deny
            self.events.add("mcp", **event, status=status, error=error)
            response = JSONResponse({"error": error, "error_description": description}, status_code=status,
                                    headers={"WWW-Authenticate": header})
            return await response(scope, receive, send)

        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        status_seen = {}

        async def watch(message):
            if message["type"] == "http.response.start":
                status_seen["status"] = message["status"]
                self.events.add("mcp", **event, status=message["status"])
            await send(message)

        await self.mcp_app(scope, replay, watch)


def main():
    parser = argparse.ArgumentParser(description="OAuth 2.1 AS + protected MCP server for tests")
    parser.add_argument("--token-lifetime", type=int, default=3600)
    parser.add_argument("--client", action="append", default=[])
    parser.add_argument("--client2", action="append", default=[])
    parser.add_argument("--auth-method", choices=["basic", "post"], default="basic")
    parser.add_argument("--no-dcr", action="store_true")
    parser.add_argument("--cimd", action="store_true")
    parser.add_argument("--cimd-redirect", action="append", default=[])
    parser.add_argument("--client-credentials", action="store_true")
    parser.add_argument("--scopes", default="mcp")
    parser.add_argument("--rotate-refresh", action="store_true")
    opts = parser.parse_args()
    if not opts.scopes.split():
        sys.exit("--scopes needs at least one scope")

    mcp_sock, sock1, sock2 = listen(), listen(), listen()
    events = Events()
    resource = f"http://127.0.0.1:{mcp_sock.getsockname()[1]}/mcp"
    as1 = AuthorizationServer(1, sock1, opts, resource, events, opts.client)
    as2 = AuthorizationServer(2, sock2, opts, resource, events, opts.client2)
    fixture = Fixture(opts, mcp_sock, as1, as2, events)
    by_port = {
        sock1.getsockname()[1]: as1.app,
        sock2.getsockname()[1]: as2.app,
    }

    async def app(scope, receive, send):
        # One uvicorn server listens on all three sockets; the local port says which app it is.
        if scope["type"] == "lifespan":
            return await fixture(scope, receive, send)
        target = by_port.get(scope["server"][1], fixture)
        return await target(scope, receive, send)

    config = uvicorn.Config(app, log_level="warning")
    server = uvicorn.Server(config)

    async def run():
        serving = asyncio.ensure_future(server.serve(sockets=[mcp_sock, sock1, sock2]))
        while not server.started:
            if serving.done():
                serving.result()
                return
            await asyncio.sleep(0.01)
        print(json.dumps({"mcp": resource, "issuer": as1.issuer, "issuer2": as2.issuer,
                          "control": f"{fixture.base}/control"}), flush=True)
        await serving

    asyncio.run(run())


if __name__ == "__main__":
    main()
