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
    if (req.headers.get("Authorization") or "").lower().startswith("bearer "):
        return False  # browsers never attach a bearer token on their own
    return req.mimetype in FORM_TYPES or not req.mimetype


def _refusal(status: int, error: str, message: str) -> Response:
    response = jsonify(error=error, message=message)
    response.status_code = status
    return response


def init_csrf(server: Flask) -> None:
    """Refuse changes from other sites, and form posts without this site's token."""
    # Checked by needs_csrf_token below: Dash's JSON callbacks need no form token.
    server.config.setdefault("WTF_CSRF_CHECK_DEFAULT", False)
    # The token lives as long as the session that holds it; a login page left open overnight
    # must still sign in.
    server.config.setdefault("WTF_CSRF_TIME_LIMIT", None)
    csrf.init_app(server)

    @server.before_request
    def refuse_cross_site() -> Response | None:
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


def init_app(server: Flask, script_hashes: Callable[[], Sequence[str]]) -> None:
    """Add CSRF checks and headers; Phoenix's UI keeps its scripts but may not be framed away."""
    init_csrf(server)

    @server.after_request
    def secure(response: Response) -> Response:
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if request.path == PHOENIX_UI_PREFIX or request.path.startswith(PHOENIX_UI_PREFIX + "/"):
            # Phoenix's pages run their own inline scripts: only forbid framing them elsewhere.
            response.headers["Content-Security-Policy"] = "frame-ancestors 'self'"
        else:
            response.headers["Content-Security-Policy"] = content_security_policy(
                request, script_hashes()
            )
        return response
