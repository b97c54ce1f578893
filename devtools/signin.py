"""Sign in through the dashboard's real login form, CSRF token included."""

from __future__ import annotations

import re

import requests

# The login form's hidden input, as templates/login.html renders it.
CSRF_INPUT = re.compile(r'name="csrf_token"\s+value="([^"]*)"')


def csrf_token(html: str) -> str:
    """Return the CSRF token a rendered form carries, or "" when it has none."""
    found = CSRF_INPUT.search(html)
    return found.group(1) if found else ""


def sign_in(
    session: requests.Session, base: str, email: str, password: str, timeout_s: float = 10
) -> requests.Response:
    """Load the login form, then post it as a browser would; return the post's response."""
    form = session.get(f"{base}/login", timeout=timeout_s)
    return session.post(
        f"{base}/login",
        data={"email": email, "password": password, "csrf_token": csrf_token(form.text)},
        allow_redirects=False,
        timeout=timeout_s,
    )
