"""Login, logout, the deny-by-default guard and the login rate limit."""

from __future__ import annotations

import logging
import math
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
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.wrappers import Response as BaseResponse

from services import login_sessions, tokens, user_settings, users
from services.cache import shared
from services.container import get_services

bp = Blueprint("auth", __name__)
login_manager = LoginManager()
log = logging.getLogger(__name__)

# Reachable without a login, by endpoint (never by path prefix, which the catch-all page route
# would also match): the login form, the health probe, and the static files a login page loads.
PUBLIC_ENDPOINTS = frozenset({"auth.login", "healthz", "vendor", "_dash_assets.static"})
# Dash names its routes by their rule.
PUBLIC_DASH_RULES = frozenset(
    {"/_dash-component-suites/<string:package_name>/<path:fingerprinted_path>", "/_favicon.ico"}
)
# Anything under these answers JSON; a browser page never lives there.
API_PREFIXES = ("/_dash-", "/_reload-hash", "/api/")
KNOWN_DEVICE_COOKIE = "known_device"
KNOWN_DEVICE_MAX_AGE_S = 90 * 24 * 3600


class SessionCheckUnavailable(Exception):
    """Our database could not say whether a sign-in is still live, so the request is refused."""


@dataclass(frozen=True)
class SessionUser(UserMixin):
    """The logged-in user as the request sees it, detached from the database."""

    id: int
    email: str
    display_name: str
    role: str
    # The login session this request rides on; tokens minted from it end with it.
    sid: str
    # Display settings (services/user_settings.py): colour mode, and IANA zone or None.
    theme: str = "auto"
    timezone: str | None = None

    def get_id(self) -> str:
        """Return the id flask-login stores in the session."""
        return str(self.id)


def live_session_user(user_id: str, sid: str) -> SessionUser | None:
    """Return the user if their sign-in `sid` is live in our database, else None."""
    if not user_id.isdigit() or len(user_id) > 18 or not sid.isprintable() or len(sid) > 200:
        return None
    try:
        with get_services().sessions() as db:
            live = login_sessions.live_user(db, int(user_id), sid)
            theme, zone = user_settings.stored(db, live.id) if live else ("auto", None)
    except SQLAlchemyError as exc:
        # Without the database no sign-out can be checked: refuse rather than trust the cookie.
        log.warning("Cannot check a sign-in against the database: %s", type(exc).__name__)
        raise SessionCheckUnavailable from None
    return (
        None
        if live is None
        else SessionUser(live.id, live.email, live.display_name, live.role, sid, theme, zone)
    )


@login_manager.user_loader
def load_session_user(user_id: str) -> SessionUser | None:
    """Load the cookie's user, if its login session is still live in our database."""
    # A signed cookie stays valid until it expires: a copy of it, or an in-flight response that
    # re-sends it after the sign-out, must not sign the user back in.
    sid = session.get("sid")
    user = live_session_user(user_id, sid) if isinstance(sid, str) else None
    if user is None:
        # Empty it, so no response refreshes the dead session's cookie.
        session.clear()
    return user


@login_manager.request_loader
def load_user_from_token(req: Request) -> SessionUser | None:
    """Accept `Authorization: Bearer <dashboard token>` on API routes, instead of a cookie."""
    scheme, _, token = req.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not req.path.startswith("/api/"):
        return None
    settings = get_services().settings
    try:
        claims = tokens.decode(token.strip(), settings.secret_key, max_age_s=settings.token_ttl_s)
    except tokens.TokenError as exc:
        g.auth_error = str(exc)
        return None
    user = live_session_user(str(claims["sub"]), str(claims["sid"]))
    if user is None:
        g.auth_error = (
            "The token's sign-in has ended (signed out, or the user was changed or deactivated)."
        )
    g.token_auth = user is not None
    return user


def authenticated_by_token() -> bool:
    """Tell whether a valid bearer token, not a cookie, signed this request in."""
    return bool(current_user.is_authenticated and g.get("token_auth"))


@bp.route("/api/token", methods=["GET"])
def api_token() -> Response:
    """Mint a fresh bearer token for the signed-in user, tied to this sign-in."""
    if g.get("token_auth"):
        # A token that could mint its successor would never expire.
        response = jsonify(
            error="forbidden", message="Mint tokens from a signed-in browser session."
        )
        response.status_code = 403
        return response
    settings = get_services().settings
    issued = tokens.mint(
        user_id=current_user.id,
        email=current_user.email,
        name=current_user.display_name,
        role=current_user.role,
        sid=current_user.sid,
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


@dataclass(frozen=True)
class Attempt:
    """A sign-in attempt the limiter let through, or refused with a wait."""

    email: str
    address: str
    wait_s: int = 0


class LoginRateLimiter:
    """Slow password guessing down, without letting a guesser lock the real user out.

    - Per (account, address): at most `max_failures` tries per window. The try is counted
      atomically *before* the password is checked, so concurrent posts cannot exceed the limit.
    - Per address, over all accounts: ADDRESS_FACTOR times that, for one address spraying
      many accounts.
    - Per account, over all addresses: past `max_failures` tries in a window, one try per
      backoff interval (doubling up to MAX_BACKOFF_S), taken atomically. A guesser with many
      addresses gets a trickle; the real user waits seconds, never a lock-out, and not at all on
      a device that signed in to that account before (a signed cookie says so).

    Each count runs for one window from its first try, so a burst cannot straddle a boundary.
    """

    ADDRESS_FACTOR = 4
    MAX_BACKOFF_S = 30

    def __init__(self, max_failures: int, window_s: int) -> None:
        self.max_failures = max_failures
        self.window_s = window_s

    @staticmethod
    def _account(email: str) -> str:
        return users.normalize_email(email)

    def _pair_key(self, email: str, address: str) -> str:
        return f"login-try:pair:{self._account(email)}|{address}"

    def _address_key(self, address: str) -> str:
        return f"login-try:addr:{address}"

    def _account_key(self, email: str) -> str:
        return f"login-try:acct:{self._account(email)}"

    def _since(self, key: str) -> float:
        since = shared().get(f"{key}:since")
        return float(since) if since else time.time()

    def _window_left(self, key: str) -> int:
        return max(1, math.ceil(self._since(key) + self.window_s - time.time()))

    def _count(self, key: str) -> int:
        backend = shared()
        backend.add(f"{key}:since", time.time(), timeout=self.window_s)
        return backend.count(key, self.window_s)

    def acquire(self, email: str, address: str, *, known_device: bool) -> Attempt:
        """Count one try up front and tell whether it may check the password now."""
        backend = shared()
        pair, addr = self._pair_key(email, address), self._address_key(address)
        if self._count(pair) > self.max_failures:
            return Attempt(email, address, self._window_left(pair))
        if self._count(addr) > self.max_failures * self.ADDRESS_FACTOR:
            return Attempt(email, address, self._window_left(addr))
        tries = self._count(self._account_key(email))
        if tries > self.max_failures and not known_device:
            backoff_s = min(2 ** (tries - self.max_failures - 1), self.MAX_BACKOFF_S)
            slot = f"login-slot:{self._account(email)}"
            if not backend.add(slot, 1, timeout=backoff_s):
                return Attempt(email, address, backoff_s)
        return Attempt(email, address)

    def succeeded(self, attempt: Attempt) -> None:
        """Forget the account's tries, and give the address its try back."""
        backend = shared()
        for key in (
            self._pair_key(attempt.email, attempt.address),
            self._account_key(attempt.email),
        ):
            backend.forget_count(key)
            backend.delete(f"{key}:since")
        backend.uncount(self._address_key(attempt.address))


def _limiter() -> LoginRateLimiter:
    settings = get_services().settings
    return LoginRateLimiter(settings.login_max_failures, settings.login_window_s)


def _device_signer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(get_services().settings.secret_key, salt="known-device")


def _is_known_device(email: str) -> bool:
    """Tell whether this browser signed in to `email` before (a cookie we signed says so)."""
    raw = request.cookies.get(KNOWN_DEVICE_COOKIE)
    if not raw:
        return False
    try:
        known = _device_signer().loads(raw, max_age=KNOWN_DEVICE_MAX_AGE_S)
    except BadSignature:
        return False
    return bool(known == users.normalize_email(email))


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
    if request.path in (url_for("auth.logout"), url_for("auth.logout_everywhere")):
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
    if not email or not password:
        return _login_form(next_url, email, "Enter your email and password.")
    limiter = _limiter()
    attempt = limiter.acquire(
        email, request.remote_addr or "unknown", known_device=_is_known_device(email)
    )
    if attempt.wait_s:
        wait = (
            f"{attempt.wait_s} s"
            if attempt.wait_s < 60
            else f"{math.ceil(attempt.wait_s / 60)} min"
        )
        message = (
            "Too many failed sign-in attempts. "
            f"Sign-in is paused for this account or address; try again in {wait}."
        )
        return _login_form(next_url, email, message)

    with get_services().sessions.begin() as db:
        user = users.authenticate(db, email, password)
        if user is not None:
            sid = login_sessions.begin(db, user)
            session_user = SessionUser(
                user.id, user.email, user.display_name, user.role, sid, user.theme, user.timezone
            )
    if user is None:
        return _login_form(
            next_url, email, "Wrong email or password, or the account is deactivated."
        )

    limiter.succeeded(attempt)
    session.clear()
    session.permanent = True
    session["sid"] = session_user.sid
    login_user(session_user)
    # Put the CSRF token in the session now: every later response re-sends the session cookie
    # as its request saw it, so a token added by one page request could be lost to a parallel one.
    generate_csrf()
    response = redirect(next_url)
    response.set_cookie(
        KNOWN_DEVICE_COOKIE,
        _device_signer().dumps(session_user.email),
        max_age=KNOWN_DEVICE_MAX_AGE_S,
        httponly=True,
        samesite="Lax",
        secure=get_services().settings.session_cookie_secure,
    )
    return response


def _end_session(*, everywhere: bool) -> BaseResponse:
    """End this sign-in (or all of the user's) in our database, then clear the cookie."""
    sid = session.get("sid")
    with get_services().sessions.begin() as db:
        if everywhere and current_user.is_authenticated:
            users.sign_out_everywhere(db, current_user.email)
        if isinstance(sid, str):
            login_sessions.end(db, sid)
    logout_user()
    session.clear()
    return redirect(url_for("auth.login"))


@bp.route("/logout", methods=["GET", "POST"])
def logout() -> BaseResponse | str:
    """Confirm on GET, so no link on another site can sign the user out; sign out on POST."""
    if request.method == "GET":
        return render_template("logout.html", error=None)
    return _end_session(everywhere=False)


@bp.route("/logout/everywhere", methods=["POST"])
def logout_everywhere() -> BaseResponse:
    """End every sign-in and token of this user, on every device."""
    return _end_session(everywhere=True)


def is_public(req: Request) -> bool:
    """Tell whether a request may proceed without a login, by the endpoint it routed to."""
    if req.endpoint in PUBLIC_ENDPOINTS:
        return True
    rule = req.url_rule
    return rule is not None and req.endpoint == rule.rule and rule.rule in PUBLIC_DASH_RULES


def guard() -> BaseResponse | None:
    """Deny every anonymous request that is not explicitly public."""
    if is_public(request) or current_user.is_authenticated:
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


def _session_check_unavailable(_exc: SessionCheckUnavailable) -> Response:
    response = jsonify(
        error="sign-in cannot be checked",
        message="The dashboard cannot check your sign-in right now. Try again in a moment.",
    )
    response.status_code = 503
    response.headers["Retry-After"] = "5"
    return response


def init_app(server: Flask) -> None:
    """Install login, the guard and the auth routes on the Flask app."""
    login_manager.init_app(server)
    login_manager.session_protection = "basic"
    login_manager.unauthorized_handler(_unauthorized)
    server.register_blueprint(bp)
    server.before_request(guard)
    server.register_error_handler(SessionCheckUnavailable, _session_check_unavailable)
