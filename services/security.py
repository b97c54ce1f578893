"""Security every request passes: CSRF tokens, a same-origin rule for changes, safe headers."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

from flask import Flask, Request, Response, jsonify, request
from flask_wtf.csrf import CSRFError, CSRFProtect

from services import auth

PHOENIX_UI_PREFIX = "/phoenix"
PROXY_PREFIXES = ("/api/phoenix/", "/phoenix/")
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
DASH_PREFIX = "/_dash-"
# What an HTML form on another site can send without a CORS preflight (WHATWG Fetch).
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data", "text/plain")
csrf = CSRFProtect()


def is_cross_site(req: Request) -> bool:
    """Tell whether a browser says this request came from another site."""
    # Fetch Metadata first: browsers set it and pages cannot forge it.
    if req.headers.get("Sec-Fetch-Site") in ("cross-site", "same-site"):
        return True
    origin = req.headers.get("Origin")
    if origin is None:
        return False  # not a browser, or an old one: the token and SameSite cookie remain
    return origin == "null" or urlsplit(origin).netloc != req.host


def needs_csrf_token(req: Request) -> bool:
    """Tell whether a change must carry this site's CSRF token, as every form post must."""
    if req.method not in UNSAFE_METHODS:
        return False
    if req.path.startswith(PROXY_PREFIXES):
        return False  # Phoenix's own UI cannot send our token; the same-origin rule covers it
    if auth.authenticated_by_token():
        # Browsers never attach a bearer token on their own; but only a token that actually
        # signed the request in counts, not any header that merely says "Bearer".
        return False
    return req.mimetype in FORM_TYPES or not req.mimetype


def callback_too_large(req: Request, limit: int) -> bool:
    """Cap what a Dash callback may send; a larger body is refused before it is read."""
    if not req.path.startswith(DASH_PREFIX):
        return False
    # Also caps a chunked body, which declares no length: reading past the limit raises 413.
    req.max_content_length = limit
    return req.content_length is not None and req.content_length > limit


def _refusal(status: int, error: str, message: str) -> Response:
    response = jsonify(error=error, message=message)
    response.status_code = status
    return response


def init_csrf(server: Flask, callback_max_body_bytes: int) -> None:
    """Refuse changes from other sites, form posts without this site's token, and huge bodies."""
    # Checked by needs_csrf_token below: Dash's JSON callbacks need no form token.
    server.config.setdefault("WTF_CSRF_CHECK_DEFAULT", False)
    # The token lives as long as the session that holds it; a login page left open overnight
    # must still sign in.
    server.config.setdefault("WTF_CSRF_TIME_LIMIT", None)
    csrf.init_app(server)

    @server.before_request
    def refuse_cross_site() -> Response | None:
        if callback_too_large(request, callback_max_body_bytes):
            return _refusal(
                413,
                "request too large",
                f"A callback may send at most {callback_max_body_bytes} bytes.",
            )
        if request.method in UNSAFE_METHODS and is_cross_site(request):
            return _refusal(
                403,
                "cross-site request refused",
                "This dashboard accepts changes only from its own pages.",
            )
        if needs_csrf_token(request):
            csrf.protect()
        return None

    @server.errorhandler(CSRFError)
    def csrf_failed(exc: CSRFError) -> Response | tuple[str, int]:
        reason = str(exc.description).rstrip(".").lower()
        return auth.csrf_refused(reason) or _refusal(
            400, "csrf token missing or invalid", f"{exc.description} Reload the page and retry."
        )


def content_security_policy(req: Request, script_hashes: Sequence[str]) -> str:
    """Build the dashboard's CSP: its own scripts and styles, and frames only from /phoenix/."""
    # Frames may come only from this dashboard's own Phoenix proxy; a CSP source may name a
    # path, but only with a host, so it is built from the request's own origin.
    phoenix = f"{req.host_url.rstrip('/')}{PHOENIX_UI_PREFIX}/"
    scripts = " ".join(script_hashes)  # Dash quotes them: 'sha256-...'

    return "; ".join(
        [
            "default-src 'self'",
            # AG Grid turns its string functions (getRowId) into code, hence 'unsafe-eval'.
            f"script-src 'self' 'unsafe-eval' {scripts}".strip(),
            # Plotly and React set inline styles.
            "style-src 'self' 'unsafe-inline'",
            "img-src 'self' data: blob:",
            "font-src 'self' data:",
            "connect-src 'self'",
            f"frame-src {phoenix}",
            "frame-ancestors 'self'",
            "base-uri 'self'",
            "form-action 'self'",
            "object-src 'none'",
        ]
    )


def with_frame_ancestors(policy: str | None) -> str:
    """Keep Phoenix's own CSP, with its framing limited to this dashboard's pages."""
    directives = [
        d.strip()
        for d in (policy or "").split(";")
        if d.strip() and d.split()[0].lower() != "frame-ancestors"
    ]
    return "; ".join([*directives, "frame-ancestors 'self'"])


def init_app(
    server: Flask, script_hashes: Callable[[], Sequence[str]], *, callback_max_body_bytes: int
) -> None:
    """Add CSRF checks and headers; Phoenix's UI keeps its CSP but may not be framed away."""
    init_csrf(server, callback_max_body_bytes)

    @server.after_request
    def secure(response: Response) -> Response:
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if request.path == PHOENIX_UI_PREFIX or request.path.startswith(PHOENIX_UI_PREFIX + "/"):
            # Phoenix's pages run their own inline scripts and its sandbox worker carries its own
            # CSP: keep that, and only forbid framing them elsewhere.
            response.headers["Content-Security-Policy"] = with_frame_ancestors(
                response.headers.get("Content-Security-Policy")
            )
        else:
            response.headers["Content-Security-Policy"] = content_security_policy(
                request, script_hashes()
            )
        return response
