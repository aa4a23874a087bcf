"""The service's safety rules, on by default (docs/serve.md, "Security"):

- it binds to 127.0.0.1; any other address needs a token (`SENTICOMPARE_SERVE_TOKEN`, 16
  characters or more), and then every API request must carry `Authorization: Bearer <token>`,
  compared in constant time (`hmac.compare_digest`). The UI's page and its script hold no data
  and are served without it; the page asks for the token and sends it with every call;
- requests are refused above a size (413, counted on the body as it arrives, whatever
  Content-Length says), and a POST must be JSON (415): a form on another site cannot post to it;
- a browser request from another origin is refused (403), and so is a Host header other than
  the address served (a DNS-rebinding page cannot reach 127.0.0.1 under its own name);
- ids and names from requests are checked before use (`check_adapter_id`, `check_name`): letters,
  digits, '.', '_' and '-' per segment, no `..`, no absolute path, no backslash;
- every response says `nosniff`, refuses framing by other sites and sends no referrer; the UI's
  page allows scripts from this server only, and a report is served sandboxed (no script runs).
  Texts from users reach a page only through the DOM's `textContent` (helpers/serve/static/app.js).
"""
from __future__ import annotations

import hmac
import ipaddress
import json
import re
from dataclasses import dataclass

from helpers.config import ConfigError

TOKEN_ENV = "SENTICOMPARE_SERVE_TOKEN"
MIN_TOKEN_LENGTH = 16
DEFAULT_MAX_BODY = 1 << 20  # 1 MiB: a study YAML or 64 texts of 10,000 characters fit easily
SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
MAX_ID_SEGMENTS = 4
PUBLIC_PREFIXES = ("/static/",)  # the UI's own files: no data in them
PUBLIC_PATHS = ("/", "/healthz", "/docs", "/openapi.json")  # the page, and the API's schema: no data
UI_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
             "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
REPORT_POLICY = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; sandbox"
HEADERS = ((b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
           (b"referrer-policy", b"no-referrer"))


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class SecurityPolicy:
    host: str
    port: int
    token: str | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY

    @property
    def allowed_hosts(self) -> set[str] | None:
        """The Host headers accepted; None (any) when bound to a non-loopback address, where the
        token guards every API call and the machine's names are not known here."""
        if not is_loopback(self.host):
            return None
        names = {"127.0.0.1", "localhost", "[::1]", self.host if ":" not in self.host else f"[{self.host}]"}
        return names | {f"{name}:{self.port}" for name in names}


def policy_for(host: str, port: int, token: str | None, max_body_bytes: int = DEFAULT_MAX_BODY) -> SecurityPolicy:
    """The policy to serve with; refuses a non-loopback address without a token, and a short token."""
    token = token or None
    if token is not None and len(token) < MIN_TOKEN_LENGTH:
        raise ConfigError(f"{TOKEN_ENV} holds {len(token)} characters; give at least {MIN_TOKEN_LENGTH}, e.g. "
                          f"`export {TOKEN_ENV}=$(python -c 'import secrets; print(secrets.token_urlsafe(32))')`")
    if token is None and not is_loopback(host):
        raise ConfigError(f"--host {host} serves other machines: set {TOKEN_ENV} to a secret of "
                          f"{MIN_TOKEN_LENGTH}+ characters first (clients send `Authorization: Bearer <token>`), "
                          f"e.g. `export {TOKEN_ENV}=$(python -c 'import secrets; print(secrets.token_urlsafe(32))')`,"
                          f" or serve on 127.0.0.1")
    if max_body_bytes < 1024:
        raise ConfigError(f"--max-body {max_body_bytes}: give at least 1024 bytes")
    return SecurityPolicy(host, port, token, max_body_bytes)


def token_ok(authorization: str | None, token: str) -> bool:
    """`Authorization: Bearer <token>`, compared in constant time."""
    scheme, _, given = (authorization or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


def check_name(value: str, what: str = "name") -> str:
    """One id segment (a study, a merged adapter's name, a model, dataset or preset id)."""
    if not isinstance(value, str) or not SEGMENT.fullmatch(value) or value in (".", ".."):
        raise ValueError(f"{what} {str(value)[:80]!r}: letters, digits, '.', '_' and '-', starting with a letter "
                         f"or digit, at most 64 characters")
    return value


def check_adapter_id(value: str) -> str:
    """An adapter id: the run folder under experiments/ (`study/dataset/model`), never `..`, an
    absolute path or a backslash."""
    parts = value.split("/") if isinstance(value, str) else []
    if not parts or len(parts) > MAX_ID_SEGMENTS or any(p in ("", ".", "..") or not SEGMENT.fullmatch(p)
                                                        for p in parts):
        raise ValueError(f"adapter id {str(value)[:120]!r}: give a registered id such as "
                         f"default/finefoods/smollm2-135m (segments of letters, digits, '.', '_', '-'; no '..', "
                         f"no absolute path)")
    return value


def _json_response(status: int, detail: str) -> tuple[dict, bytes]:
    body = json.dumps({"detail": detail}).encode()
    return ({"type": "http.response.start", "status": status,
             "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                         *HEADERS]}, body)


class GuardMiddleware:
    """An ASGI middleware that applies the policy to every request before the app sees it, and
    adds the security headers to every response."""

    def __init__(self, app, policy: SecurityPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self._refusal(scope)
        if refusal is not None:
            await self._send(send, *refusal)
            return
        limit, received = self.policy.max_body_bytes, 0
        too_large = False

        async def limited_receive():
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    too_large = True
                    raise BodyTooLarge
            return message

        started = False
        refusal = f"the request body exceeds {limit} bytes (--max-body)"

        async def secured_send(message):
            nonlocal started
            if too_large:  # the app answered our signal with an error of its own (FastAPI: 400): ours instead
                if message["type"] == "http.response.start" and not started:
                    started = True
                    await self._send(send, 413, refusal)
                return
            if message["type"] == "http.response.start":
                started = True
                headers = [h for h in message.get("headers", []) if h[0].lower() not in dict(HEADERS)]
                message = {**message, "headers": [*headers, *HEADERS]}
            await send(message)

        try:
            await self.app(scope, limited_receive, secured_send)
        except BodyTooLarge:
            if not started:
                await self._send(send, 413, refusal)

    def _refusal(self, scope) -> tuple[int, str] | None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        allowed = self.policy.allowed_hosts
        host = headers.get("host", "")
        if allowed is not None and host not in allowed:
            return 403, f"Host {host[:80]!r} is not this server's address; open http://127.0.0.1:{self.policy.port}/"
        origin = headers.get("origin")
        if origin is not None and origin.split("://", 1)[-1] != host:
            return 403, "requests from another site's pages are refused"
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.policy.max_body_bytes):
            return 413, f"the request body exceeds {self.policy.max_body_bytes} bytes (--max-body)"
        path, method = scope["path"], scope["method"]
        if method == "POST" and not headers.get("content-type", "").split(";")[0].strip() == "application/json":
            return 415, "send the request as JSON (Content-Type: application/json)"
        public = method in ("GET", "HEAD") and (path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES))
        if self.policy.token is not None and not public and not token_ok(headers.get("authorization"),
                                                                         self.policy.token):
            return 401, "this server needs `Authorization: Bearer <token>` (the SENTICOMPARE_SERVE_TOKEN it runs with)"
        return None

    @staticmethod
    async def _send(send, status: int, detail: str) -> None:
        start, body = _json_response(status, detail)
        await send(start)
        await send({"type": "http.response.body", "body": body})


class BodyTooLarge(Exception):
    """Raised inside a request whose body grew past the limit while it was read."""
