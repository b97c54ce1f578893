"""Login, logout, the deny-by-default guard and the login rate limit."""

from __future__ import annotations

import math
import secrets
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    Request,
    Response,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import LoginManager, UserMixin, current_user, login_user, logout_user
from flask_wtf.csrf import generate_csrf
from werkzeug.wrappers import Response as BaseResponse

from services import tokens, users
from services.cache import shared
from services.container import get_services

bp = Blueprint("auth", __name__)
login_manager = LoginManager()

# Reachable without a login: the login form, the health probe and static files.
PUBLIC_ENDPOINTS = frozenset({"auth.login", "healthz", "vendor"})
PUBLIC_PREFIXES = ("/assets/", "/_dash-component-suites/", "/vendor/")
PUBLIC_PATHS = frozenset({"/_favicon.ico"})
# Anything under these answers JSON; a browser page never lives there.
API_PREFIXES = ("/_dash-", "/_reload-hash", "/api/")
REVOCATION_MARGIN_S = 60


@dataclass(frozen=True)
class SessionUser(UserMixin):
    """The logged-in user as the request sees it, detached from the database."""

    id: int
    email: str
    display_name: str
    role: str

    def get_id(self) -> str:
        """Return the id flask-login stores in the session."""
        return str(self.id)


def _revoked_key(sid: str) -> str:
    return f"session-revoked:{sid}"


@login_manager.user_loader
def load_session_user(user_id: str) -> SessionUser | None:
    """Load the session's user, unless that session was signed out."""
    # A signed cookie stays valid until it expires: a copy of it, or an in-flight response that
    # re-sends it after the logout, must not sign the user back in.
    sid = session.get("sid")
    if not isinstance(sid, str) or shared().get(_revoked_key(sid)):
        # Empty it, so no response refreshes the dead session's cookie past its revocation.
        session.clear()
        return None
    return load_user(user_id)


def load_user(user_id: str) -> SessionUser | None:
    """Reload the user on every request, so deactivation and role changes apply at once."""
    if not user_id.isdigit():
        return None
    with get_services().sessions() as db:
        user = users.get_by_id(db, int(user_id))
        if user is None or not user.active:
            return None
        return SessionUser(user.id, user.email, user.display_name, user.role)


@login_manager.request_loader
def load_user_from_token(req: Request) -> SessionUser | None:
    """Accept `Authorization: Bearer <dashboard token>` on API routes, instead of a cookie."""
    scheme, _, token = req.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not req.path.startswith("/api/"):
        return None
    try:
        claims = tokens.decode(token.strip(), get_services().settings.secret_key)
    except tokens.TokenError as exc:
        g.auth_error = str(exc)
        return None
    user = load_user(str(claims["sub"]))
    if user is None:
        g.auth_error = "The token's user does not exist or is deactivated."
    g.token_auth = user is not None
    return user


@bp.route("/api/token", methods=["GET"])
def api_token() -> Response:
    """Mint (or reuse) a bearer token for the signed-in user."""
    if g.get("token_auth"):
        # A token that could mint its successor would never expire.
        response = jsonify(
            error="forbidden", message="Mint tokens from a signed-in browser session."
        )
        response.status_code = 403
        return response
    settings = get_services().settings
    issued = tokens.token_for(
        user_id=current_user.id,
        email=current_user.email,
        name=current_user.display_name,
        role=current_user.role,
        secret=settings.secret_key,
        ttl_s=settings.token_ttl_s,
    )
    response = jsonify(issued.as_json())
    response.headers["Cache-Control"] = "no-store"
    return response


def safe_next(target: str | None) -> str:
    """Return `target` if it is a relative path on this site, else the home page."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return "/"
    if any(ord(ch) < 32 or ch == "\\" for ch in target):
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return "/"
    return target


class LoginRateLimiter:
    """Count failed logins per account and per address, in the shared cache.

    Each count runs for one window from its first failure, so a burst of guesses cannot
    straddle a window boundary and earn twice the allowance.
    """

    def __init__(self, max_failures: int, window_s: int) -> None:
        self.max_failures = max_failures
        self.window_s = window_s

    def _keys(self, email: str, address: str) -> list[str]:
        return [f"login-fail:acct:{users.normalize_email(email)}", f"login-fail:addr:{address}"]

    def retry_after_s(self, email: str, address: str) -> int:
        """Return seconds until another try is allowed, or 0 when allowed now."""
        backend = shared()
        for key in self._keys(email, address):
            if backend.counted(key) >= self.max_failures:
                since = backend.get(f"{key}:since")
                left = float(since) + self.window_s - time.time() if since else self.window_s
                return max(1, math.ceil(left))
        return 0

    def record_failure(self, email: str, address: str) -> None:
        """Count one failed attempt for the account and the address."""
        backend = shared()
        for key in self._keys(email, address):
            backend.add(f"{key}:since", time.time(), timeout=self.window_s)
            backend.count(key, self.window_s)

    def reset_account(self, email: str, address: str) -> None:
        """Forget the account's failures after a successful login."""
        key = self._keys(email, address)[0]
        backend = shared()
        backend.forget_count(key)
        backend.delete(f"{key}:since")


def _limiter() -> LoginRateLimiter:
    settings = get_services().settings
    return LoginRateLimiter(settings.login_max_failures, settings.login_window_s)


def _login_form(next_url: str, email: str, error: str | None) -> str:
    """Render the login form; a refused sign-in re-renders it with 200, as browsers expect."""
    return render_template("login.html", next_url=next_url, email=email, error=error)


def csrf_refused(reason: str) -> tuple[str, int] | None:
    """Re-render the login or logout form when its CSRF token failed; None for other pages."""
    message = f"This form expired or did not come from this site ({reason}). Try again."
    if request.path == url_for("auth.login"):
        next_url = safe_next(request.values.get("next"))
        email = request.form.get("email", "").strip()[:320]
        return _login_form(next_url, email, message), 400
    if request.path == url_for("auth.logout"):
        return render_template("logout.html", error=message), 400
    return None


@bp.route("/login", methods=["GET", "POST"])
def login() -> BaseResponse | str:
    """Show the login form and sign the user in."""
    next_url = safe_next(request.values.get("next"))
    if current_user.is_authenticated:
        return redirect(next_url)
    if request.method == "GET":
        return _login_form(next_url, "", None)

    email = request.form.get("email", "").strip()[:320]
    password = request.form.get("password", "")[:1024]
    address = request.remote_addr or "unknown"
    limiter = _limiter()
    wait_s = limiter.retry_after_s(email, address)
    if wait_s:
        minutes = max(1, math.ceil(wait_s / 60))
        message = (
            "Too many failed sign-in attempts. "
            f"Sign-in is paused for this account or address; try again in {minutes} min."
        )
        return _login_form(next_url, email, message)
    if not email or not password:
        return _login_form(next_url, email, "Enter your email and password.")

    with get_services().sessions.begin() as db:
        user = users.authenticate(db, email, password)
        session_user = (
            SessionUser(user.id, user.email, user.display_name, user.role) if user else None
        )
    if session_user is None:
        limiter.record_failure(email, address)
        return _login_form(
            next_url, email, "Wrong email or password, or the account is deactivated."
        )

    limiter.reset_account(email, address)
    session.clear()
    session.permanent = True
    session["sid"] = secrets.token_urlsafe(16)
    login_user(session_user)
    # Put the CSRF token in the session now: every later response re-sends the session cookie
    # as its request saw it, so a token added by one page request could be lost to a parallel one.
    generate_csrf()
    return redirect(next_url)


@bp.route("/logout", methods=["GET", "POST"])
def logout() -> BaseResponse | str:
    """Confirm on GET, so no link on another site can sign the user out; sign out on POST."""
    if request.method == "GET":
        return render_template("logout.html", error=None)
    if isinstance(sid := session.get("sid"), str):
        # A copy of the cookie dies a lifetime after its last signing, at the latest just
        # after now; the margin covers responses still in flight.
        lifetime_s = get_services().settings.session_lifetime_minutes * 60
        shared().set(_revoked_key(sid), 1, timeout=lifetime_s + REVOCATION_MARGIN_S)
    logout_user()
    session.clear()
    return redirect(url_for("auth.login"))


def is_public(path: str, endpoint: str | None) -> bool:
    """Tell whether a request may proceed without a login."""
    return endpoint in PUBLIC_ENDPOINTS or path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def guard() -> BaseResponse | None:
    """Deny every anonymous request that is not explicitly public."""
    if is_public(request.path, request.endpoint) or current_user.is_authenticated:
        return None
    wants_page = request.method in ("GET", "HEAD") and not request.path.startswith(API_PREFIXES)
    if wants_page:
        return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
    return _unauthorized()


def _unauthorized() -> Response:
    response = jsonify(
        error="authentication required",
        message=g.get("auth_error") or "Your session has ended. Sign in again.",
        login_url=url_for("auth.login"),
    )
    response.status_code = 401
    return response


def init_app(server: Flask) -> None:
    """Install login, the guard and the auth routes on the Flask app."""
    login_manager.init_app(server)
    login_manager.session_protection = "basic"
    login_manager.unauthorized_handler(_unauthorized)
    server.register_blueprint(bp)
    server.before_request(guard)
