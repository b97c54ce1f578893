"""Response headers that every page and API answer carries: no sniffing, no foreign framing."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from flask import Flask, Request, Response, request

PHOENIX_UI_PREFIX = "/phoenix"


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
    """Add the security headers; Phoenix's own UI keeps its scripts but may not be framed away."""

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
