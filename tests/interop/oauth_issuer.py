"""A test OAuth authorization server on loopback, for the gateway's resource-server tests
(tests/oauth_guard.rs): RFC 8414 and OpenID metadata, a JWK Set, and a minting endpoint. Keys are
made and tokens signed with PyJWT and cryptography (installed with the MCP SDK by `make
interop-deps`).

Usage: python oauth_issuer.py [--issuer-path /tenant]
Prints "PORT <n>" on stdout once listening. Endpoints:
  GET  /.well-known/oauth-authorization-server[path], /.well-known/openid-configuration[path]
  GET  /jwks                  the published keys (Cache-Control: max-age=300)
  GET  /stats                 {"jwks": fetches of /jwks, "metadata": fetches of metadata}
  POST /mint                  {"key": name, "claims": {...}, "kid": str|null, "alg": str, "sign_with": name}
                              -> {"token": ...}; claims override the defaults (null removes one)
  POST /publish               {"keys": [names]}: the keys /jwks lists from now on
  POST /metadata              {"issuer": str, "jwks_uri": str, "oauth": bool}: what the metadata
                              says / whether the RFC 8414 document exists (the OpenID one always does)
Keys: rsa-1, rsa-2 (RSA 2048), ec-1, ec-2 (P-256); rsa-1 and ec-1 are published at start.
"""

import argparse
import base64
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

AUDIENCE = "mcp-gateway-test"


def b64url(n, length=None):
    raw = n.to_bytes(length or (n.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def make_keys():
    keys = {}
    for name in ("rsa-1", "rsa-2"):
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        numbers = private.public_key().public_numbers()
        jwk = {"kty": "RSA", "kid": name, "use": "sig", "alg": "RS256",
               "n": b64url(numbers.n), "e": b64url(numbers.e)}
        keys[name] = (private, "RS256", jwk)
    for name in ("ec-1", "ec-2"):
        private = ec.generate_private_key(ec.SECP256R1())
        numbers = private.public_key().public_numbers()
        jwk = {"kty": "EC", "crv": "P-256", "kid": name, "use": "sig",
               "x": b64url(numbers.x, 32), "y": b64url(numbers.y, 32)}
        keys[name] = (private, "ES256", jwk)
    return keys


class State:
    def __init__(self, issuer_path):
        self.lock = threading.Lock()
        self.keys = make_keys()
        self.published = ["rsa-1", "ec-1"]
        self.issuer_path = issuer_path
        self.issuer = None  # set once the port is known
        self.metadata_issuer = None
        self.metadata_jwks = None
        self.oauth_metadata = True
        self.jwks_fetches = 0
        self.metadata_fetches = 0


STATE = None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        print("issuer: " + fmt % args, file=sys.stderr, flush=True)

    def answer(self, status, doc, headers=()):
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def metadata(self):
        with STATE.lock:
            STATE.metadata_fetches += 1
            issuer = STATE.metadata_issuer or STATE.issuer
            jwks = STATE.metadata_jwks or f"http://127.0.0.1:{self.server.server_port}/jwks"
        base = STATE.issuer
        return {
            "issuer": issuer,
            "authorization_endpoint": base + "/authorize",
            "token_endpoint": base + "/token",
            "jwks_uri": jwks,
            "response_types_supported": ["code"],
            "code_challenge_methods_supported": ["S256"],
        }

    def do_GET(self):
        path = STATE.issuer_path
        if self.path == "/.well-known/oauth-authorization-server" + path:
            if not STATE.oauth_metadata:
                return self.answer(404, {"error": "not_found"})
            return self.answer(200, self.metadata())
        if self.path in ("/.well-known/openid-configuration" + path, path + "/.well-known/openid-configuration"):
            return self.answer(200, self.metadata())
        if self.path == "/jwks":
            with STATE.lock:
                STATE.jwks_fetches += 1
                keys = [STATE.keys[name][2] for name in STATE.published]
            return self.answer(200, {"keys": keys}, [("Cache-Control", "public, max-age=300")])
        if self.path == "/stats":
            with STATE.lock:
                return self.answer(200, {"jwks": STATE.jwks_fetches, "metadata": STATE.metadata_fetches})
        self.answer(404, {"error": "not_found"})

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(length) or b"{}")
        if self.path == "/mint":
            return self.answer(200, {"token": mint(body)})
        if self.path == "/publish":
            with STATE.lock:
                STATE.published = list(body["keys"])
            return self.answer(200, {"published": STATE.published})
        if self.path == "/metadata":
            with STATE.lock:
                if "issuer" in body:
                    STATE.metadata_issuer = body["issuer"]
                if "jwks_uri" in body:
                    STATE.metadata_jwks = body["jwks_uri"]
                if "oauth" in body:
                    STATE.oauth_metadata = bool(body["oauth"])
            return self.answer(200, {})
        self.answer(404, {"error": "not_found"})


def mint(body):
    name = body.get("key", "rsa-1")
    private, alg, jwk = STATE.keys[body.get("sign_with", name)]
    now = int(time.time())
    claims = {"iss": STATE.issuer, "aud": AUDIENCE, "sub": "tester", "iat": now,
              "exp": now + 300, "scope": "mcp"}
    for claim, value in body.get("claims", {}).items():
        if value is None:
            claims.pop(claim, None)
        else:
            claims[claim] = value
    kid = body.get("kid", STATE.keys[name][2]["kid"])
    headers = {"kid": kid} if kid is not None else None
    alg = body.get("alg", alg)
    if alg == "HS256":
        return jwt.encode(claims, "a-shared-secret-of-32-bytes-len!", algorithm="HS256", headers=headers)
    if alg == "none":
        return jwt.encode(claims, None, algorithm="none", headers=headers)
    return jwt.encode(claims, private, algorithm=alg, headers=headers)


def main():
    global STATE
    parser = argparse.ArgumentParser()
    parser.add_argument("--issuer-path", default="")
    args = parser.parse_args()
    STATE = State(args.issuer_path)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port = server.server_port
    STATE.issuer = f"http://127.0.0.1:{port}{args.issuer_path}"
    print(f"PORT {port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
