"""Walk every route of the Flask URL map: anonymous requests reach only the public ones."""

from __future__ import annotations

import re

from werkzeug.routing import Rule

PUBLIC_RULE_PREFIXES = (
    "/login",
    "/healthz",
    "/vendor/",
    "/assets/",
    "/_dash-component-suites/",
    "/_favicon.ico",
)


def _sample_path(rule: Rule) -> str:
    """Fill each converter of a rule with a harmless sample value."""
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", "sample", rule.rule)


def test_anonymous_requests_reach_only_login_health_and_static(app, client) -> None:
    rules = list(app.server.url_map.iter_rules())
    assert len(rules) > 5
    checked = 0
    for rule in rules:
        path = _sample_path(rule)
        public = path.startswith(PUBLIC_RULE_PREFIXES)
        for method in sorted((rule.methods or set()) - {"OPTIONS", "HEAD"}):
            response = client.open(path, method=method)
            checked += 1
            if public:
                continue
            if method == "GET" and not path.startswith(("/_dash-", "/_reload-hash", "/api/")):
                assert response.status_code == 302, (method, path)
                assert response.headers["Location"].startswith("/login?next="), (method, path)
            else:
                assert response.status_code == 401, (method, path, response.status_code)
                assert response.is_json, (method, path)
    assert checked >= len(rules)


def test_public_routes_are_exactly_the_expected_ones(app) -> None:
    public = sorted(
        r.rule for r in app.server.url_map.iter_rules() if r.rule.startswith(PUBLIC_RULE_PREFIXES)
    )
    assert public == sorted(
        [
            "/login",
            "/healthz",
            "/vendor/<path:filename>",
            "/assets/<path:filename>",
            "/_dash-component-suites/<string:package_name>/<path:fingerprinted_path>",
            "/_favicon.ico",
        ]
    )
