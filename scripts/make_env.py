"""Write .env from .env.example with fresh secrets; never overwrite an existing file.

    python3 scripts/make_env.py [--example .env.example] [--output .env]

Standard library only: it runs before anything is installed.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import string
import sys
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
# The variables that get a generated value when .env.example leaves them empty.
SECRETS = (
    "SECRET_KEY",
    "POSTGRES_PASSWORD",
    "PHOENIX_DB_PASSWORD",
    "DASHBOARD_DB_PASSWORD",
    "CLICKHOUSE_PASSWORD",
    "PHOENIX_SECRET",
    "PHOENIX_ADMIN_SECRET",
    "PHOENIX_DEFAULT_ADMIN_INITIAL_PASSWORD",
)
ASSIGNMENT = re.compile(r"^(?P<name>[A-Z][A-Z0-9_]*)=(?P<value>.*)$")


def new_secret() -> str:
    """Return a URL-safe secret of 64 characters with a digit and a lowercase letter.

    URL-safe, so a password can sit in a database URL as it is; the digit and the lowercase
    letter are what Phoenix requires of PHOENIX_SECRET and PHOENIX_ADMIN_SECRET.
    """
    while True:
        value = secrets.token_urlsafe(48)
        if any(c in string.digits for c in value) and any(
            c in string.ascii_lowercase for c in value
        ):
            return value


def render(example: str) -> str:
    """Return the example with every empty secret filled in, each with its own value."""
    lines = []
    for line in example.splitlines():
        match = ASSIGNMENT.match(line)
        if match and match["name"] in SECRETS and not match["value"].strip():
            line = f"{match['name']}={new_secret()}"
        lines.append(line)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write the file, readable by its owner only."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--example", type=Path, default=PROJECT_DIR / ".env.example")
    parser.add_argument("--output", type=Path, default=PROJECT_DIR / ".env")
    args = parser.parse_args(argv)
    if args.output.exists():
        print(f"{args.output} exists; left unchanged. Delete it first to make a new one.")
        return 0
    text = render(args.example.read_text())
    # O_EXCL: a file that appeared meanwhile is not overwritten either.
    fd = os.open(args.output, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    print(f"Wrote {args.output} with new secrets. Add the Phoenix API keys once Phoenix runs.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
