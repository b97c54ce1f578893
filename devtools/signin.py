"""Sign in through the dashboard's real login form, CSRF token included."""

from __future__ import annotations

from html.parser import HTMLParser

import requests


class _CsrfInput(HTMLParser):
    """Keep the first CSRF token: an input named csrf_token, or a csrf-token meta tag."""

    def __init__(self) -> None:
        super().__init__()
        self.token = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        """Note a csrf_token input's value."""
        values = dict(attrs)
        if self.token:
            return
        if tag == "input" and values.get("name") == "csrf_token":
            self.token = values.get("value") or ""
        elif tag == "meta" and values.get("name") == "csrf-token":
            self.token = values.get("content") or ""


def csrf_token(html: str) -> str:
    """Return the CSRF token a rendered form carries, or "" when it has none."""
    parser = _CsrfInput()
    parser.feed(html)
    return parser.token


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
