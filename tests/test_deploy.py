"""The production files: docker-compose.yml, the Dockerfile, .env.example and the database init.

No Docker engine is needed. The compose file is checked twice:
- interpolated the way Docker Compose does it, then validated against the Compose Specification's
  JSON schema, vendored from compose-spec/compose-go (tests/data/README.md), the schema
  `docker compose` v2 validates with;
- by `docker-compose config -q` (Debian's docker-compose 1.29, installed by
  scripts/system-deps.sh), which interpolates .env and validates without an engine.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
import uuid
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import sqlalchemy as sa
import yaml

from settings import PROJECT_DIR, Settings

sys.path.insert(0, str(PROJECT_DIR / "scripts"))
import make_env

COMPOSE_FILE = PROJECT_DIR / "docker-compose.yml"
DOCKERFILE = PROJECT_DIR / "Dockerfile"
ENV_EXAMPLE = PROJECT_DIR / ".env.example"
INIT_SCRIPT = PROJECT_DIR / "deploy" / "postgres-init.sh"
SCHEMA_FILE = PROJECT_DIR / "tests" / "data" / "compose-spec.json"
PHOENIX_IMAGE = "arizephoenix/phoenix:20.26.1"
# Settings the dashboard container does not need: they only serve `python app.py`.
DEV_SERVER_ONLY = {"HOST", "PORT"}
# Where the deployment deliberately departs from the laptop default.
DEPLOYMENT_VALUES = {"SESSION_COOKIE_SECURE"}

# Compose interpolation: $$, $NAME, ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error},
# ${NAME?error}, ${NAME:+replacement}, ${NAME+replacement}.
VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)|(?P<bare>[A-Za-z_][A-Za-z0-9_]*)"
    r"|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\})"
)


class MissingVariable(Exception):
    """A ${NAME:?message} variable is unset or empty."""


def substitute(text: str, env: dict[str, str]) -> str:
    """Interpolate one string as Compose does."""

    def replace(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        if match["bare"]:
            return env.get(match["bare"], "")
        name, op, arg = match["name"], match["op"], match["arg"] or ""
        value = env.get(name)
        present = value is not None and (value != "" or not (op or "").startswith(":"))
        if op in ("-", ":-"):
            return value if present and value is not None else arg
        if op in ("?", ":?"):
            if not present or value is None:
                raise MissingVariable(f"{name}: {arg}")
            return value
        if op in ("+", ":+"):
            return arg if present else ""
        return value or ""

    return VARIABLE.sub(replace, text)


def interpolate(node: Any, env: dict[str, str]) -> Any:
    """Interpolate every string of a parsed compose file."""
    if isinstance(node, str):
        return substitute(node, env)
    if isinstance(node, list):
        return [interpolate(item, env) for item in node]
    if isinstance(node, dict):
        return {key: interpolate(value, env) for key, value in node.items()}
    return node


def variables_in(text: str) -> set[str]:
    """Return every variable a text refers to."""
    names = set()
    for match in VARIABLE.finditer(text):
        if not match["escaped"]:
            names.add(match["bare"] or match["name"])
    return names


def parse_env_file(text: str) -> dict[str, str]:
    """Read NAME=value lines as Compose reads .env (no quotes are used here)."""
    values = {}
    for line in text.splitlines():
        match = make_env.ASSIGNMENT.match(line.strip())
        if match:
            values[match["name"]] = match["value"]
    return values


def example_names() -> set[str]:
    """Return every variable .env.example lists, set (NAME=) or documented (# NAME=)."""
    pattern = re.compile(r"^#?\s*([A-Z][A-Z0-9_]*)=", flags=re.MULTILINE)
    return set(pattern.findall(ENV_EXAMPLE.read_text()))


def validator() -> jsonschema.protocols.Validator:
    """The Compose Specification schema, checked against its own meta-schema first."""
    schema = json.loads(SCHEMA_FILE.read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


@pytest.fixture(scope="module")
def generated_env() -> dict[str, str]:
    """The variables of a .env that `make env` would write."""
    return parse_env_file(make_env.render(ENV_EXAMPLE.read_text()))


@pytest.fixture(scope="module")
def raw_compose() -> dict[str, Any]:
    """docker-compose.yml as written."""
    data: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return data


@pytest.fixture(scope="module")
def compose(raw_compose: dict[str, Any], generated_env: dict[str, str]) -> dict[str, Any]:
    """docker-compose.yml as Compose sees it with a freshly generated .env."""
    result: dict[str, Any] = interpolate(raw_compose, generated_env)
    return result


def environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment as a mapping, from either form."""
    env = service.get("environment", {})
    if isinstance(env, list):
        return dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


# --- The Compose Specification ----------------------------------------------------------------


def test_compose_file_is_valid(compose: dict[str, Any]) -> None:
    validator().validate(compose)


@pytest.mark.parametrize(
    "break_it",
    [
        pytest.param(lambda c: c["services"]["postgres"].update(helthcheck={}), id="typo-key"),
        pytest.param(
            lambda c: c["services"]["dashboard"]["depends_on"]["redis"].update(
                condition="service_healty"
            ),
            id="bad-condition",
        ),
        pytest.param(lambda c: c["services"]["dashboard"].update(ports={"8050": 8050}), id="ports"),
        pytest.param(lambda c: c.update(volume=c.pop("volumes")), id="top-level-typo"),
        pytest.param(
            lambda c: c["services"]["redis"]["healthcheck"].update(interval=5), id="wrong-type"
        ),
    ],
)
def test_schema_rejects_a_broken_compose_file(compose: dict[str, Any], break_it: Any) -> None:
    broken = copy.deepcopy(compose)
    break_it(broken)
    with pytest.raises(jsonschema.ValidationError):
        validator().validate(broken)


def test_schema_rejects_a_typo_in_the_file(generated_env: dict[str, str]) -> None:
    text = COMPOSE_FILE.read_text().replace("    healthcheck:", "    health_check:", 1)
    broken = interpolate(yaml.safe_load(text), generated_env)
    errors = list(validator().iter_errors(broken))
    assert [(list(error.path), "'health_check'" in error.message) for error in errors] == [
        (["services", "phoenix"], True)
    ]


def compose_config(folder: Path, compose_text: str) -> subprocess.CompletedProcess[str]:
    """Run `docker-compose config -q` on a compose file in a folder with a fresh .env."""
    binary = shutil.which("docker-compose")
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail(
                "docker-compose is required when CI is set; scripts/system-deps.sh installs it"
            )
        pytest.skip("docker-compose is not installed; `make test` installs it")
    (folder / "docker-compose.yml").write_text(compose_text)
    if not (folder / ".env").exists():
        make_env.main(["--output", str(folder / ".env")])
    # Only .env may supply the stack's variables, not the shell running the tests.
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in example_names() and not key.startswith(("COMPOSE_", "DOCKER_"))
    }
    return subprocess.run(
        [binary, "-f", "docker-compose.yml", "config", "-q"],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_docker_compose_accepts_the_file_and_rejects_broken_ones(tmp_path: Path) -> None:
    """Docker's own (engine-less) `docker-compose config` agrees with the schema."""
    text = COMPOSE_FILE.read_text()
    result = compose_config(tmp_path, text)
    assert result.returncode == 0, result.stderr
    broken = compose_config(tmp_path, text.replace("    healthcheck:", "    health_check:", 1))
    assert broken.returncode != 0 and "health_check" in broken.stderr
    env_file = tmp_path / ".env"
    env_file.write_text(re.sub(r"(?m)^SECRET_KEY=.*$", "SECRET_KEY=", env_file.read_text()))
    missing = compose_config(tmp_path, text)
    assert missing.returncode != 0 and "set SECRET_KEY in .env" in missing.stderr


def test_every_required_variable_stops_compose_when_missing(
    raw_compose: dict[str, Any], generated_env: dict[str, str]
) -> None:
    required = set(re.findall(r"\$\{([A-Z0-9_]+):\?", COMPOSE_FILE.read_text()))
    assert {"SECRET_KEY", "PHOENIX_SECRET", "POSTGRES_PASSWORD"} <= required
    for name in sorted(required):
        env = {**generated_env, name: ""}
        with pytest.raises(MissingVariable, match=name):
            interpolate(raw_compose, env)


def test_interpolation_follows_compose_rules() -> None:
    env = {"SET": "x", "EMPTY": ""}
    assert substitute("${SET:-d} ${EMPTY:-d} ${EMPTY-d} ${UNSET-d} $$SET $SET", env) == (
        "x d  d $SET x"
    )
    assert substitute("${SET:+r}|${EMPTY:+r}|${EMPTY+r}", env) == "r||r"
    with pytest.raises(MissingVariable):
        substitute("${EMPTY:?needed}", env)
    assert substitute("${EMPTY?needed}", env) == ""


# --- What the stack must be -------------------------------------------------------------------


def test_phoenix_is_pinned_private_and_configured(compose: dict[str, Any]) -> None:
    phoenix = compose["services"]["phoenix"]
    assert phoenix["image"] == PHOENIX_IMAGE
    # The same version the test suite's own Phoenix runs (.phoenix-venv).
    makefile = (PROJECT_DIR / "Makefile").read_text()
    assert f"PHOENIX_VERSION := {PHOENIX_IMAGE.split(':')[1]}\n" in makefile
    env = environment(phoenix)
    assert env["PHOENIX_SQL_DATABASE_URL"].startswith("postgresql://phoenix:")
    assert env["PHOENIX_SQL_DATABASE_URL"].endswith("@postgres:5432/phoenix")
    # Phoenix silently ignores PHOENIX_DATABASE_URL and exits on PHOENIX_SECRET_KEY.
    for service in compose["services"].values():
        assert not {"PHOENIX_DATABASE_URL", "PHOENIX_SECRET_KEY"} & set(environment(service))
    assert env["PHOENIX_ENABLE_AUTH"] == "true"
    assert env["PHOENIX_SECRET"]
    assert env["PHOENIX_HOST_ROOT_PATH"] == "/phoenix"
    assert env["PHOENIX_ROOT_URL"].endswith("/phoenix")
    assert "ports" not in phoenix
    test = phoenix["healthcheck"]["test"]
    # Distroless image: exec form (no shell), with the image's own Python.
    assert test[0] == "CMD" and test[1].startswith("python")
    assert "6006/readyz" in test[-1] or "6006/healthz" in test[-1]


def test_phoenix_secret_never_reaches_the_dashboard(compose: dict[str, Any]) -> None:
    dashboard = compose["services"]["dashboard"]
    assert "env_file" not in dashboard
    env = environment(dashboard)
    assert not {"PHOENIX_SECRET", "PHOENIX_ADMIN_SECRET", "POSTGRES_PASSWORD"} & set(env)


def test_phoenix_secrets_meet_phoenix_rules(generated_env: dict[str, str]) -> None:
    for name in ("PHOENIX_SECRET", "PHOENIX_ADMIN_SECRET"):
        value = generated_env[name]
        assert len(value) >= 32 and re.search(r"\d", value) and re.search(r"[a-z]", value)
    assert generated_env["PHOENIX_SECRET"] != generated_env["PHOENIX_ADMIN_SECRET"]


def test_only_the_dashboard_is_published(compose: dict[str, Any]) -> None:
    published = {name for name, service in compose["services"].items() if "ports" in service}
    assert published == {"dashboard"}
    assert compose["services"]["dashboard"]["ports"] == ["127.0.0.1:8050:8050"]


def test_dashboard_waits_for_healthy_services(compose: dict[str, Any]) -> None:
    services = compose["services"]
    depends = services["dashboard"]["depends_on"]
    assert set(depends) == {"phoenix", "postgres", "redis", "clickhouse"}
    for name, condition in depends.items():
        assert condition == {"condition": "service_healthy"}, name
        assert services[name]["healthcheck"]["test"], name
    assert services["phoenix"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert services["dashboard"]["build"] == "."
    assert services["redis"]["image"].startswith("redis:7")


def test_dashboard_environment(compose: dict[str, Any], generated_env: dict[str, str]) -> None:
    env = environment(compose["services"]["dashboard"])
    assert env["SESSION_COOKIE_SECURE"] == "true"
    assert env["SECRET_KEY"] == generated_env["SECRET_KEY"]
    password = generated_env["DASHBOARD_DB_PASSWORD"]
    assert env["DATABASE_URL"] == (
        f"postgresql+psycopg2://dashboard:{password}@postgres:5432/dashboard"
    )
    assert env["REDIS_URL"] == "redis://redis:6379/0"
    assert env["PHOENIX_URL"] == "http://phoenix:6006"
    assert env["PHOENIX_ENABLED"] == "true"
    assert env["GUNICORN_WORKERS"] == "2"
    for name in ("PHOENIX_API_KEY", "PHOENIX_WRITE_API_KEY"):
        assert name in env
    # The dashboard accepts every value the stack gives it.
    names = {name for name, _default, _help in Settings.documented()}
    settings = Settings.from_env({k: v for k, v in env.items() if k in names})
    assert settings.redis_url and settings.database_url.startswith("postgresql+psycopg2://")


def test_dashboard_gets_every_setting_with_its_default(raw_compose: dict[str, Any]) -> None:
    env = raw_compose["services"]["dashboard"]["environment"]
    defaults = Settings.defaults()
    missing = set(defaults) - DEV_SERVER_ONLY - set(env)
    assert not missing, f"add these to the dashboard's environment: {sorted(missing)}"
    for name, value in env.items():
        match = re.fullmatch(rf"\$\{{{name}:-(.*)\}}", str(value))
        if match and name in defaults and name not in DEPLOYMENT_VALUES:
            assert match[1] == defaults[name], name


def test_postgres_has_a_volume_a_healthcheck_and_the_init_script(compose) -> None:
    postgres = compose["services"]["postgres"]
    assert postgres["image"] == "postgres:15"
    volumes = postgres["volumes"]
    assert "postgres-data:/var/lib/postgresql/data" in volumes
    assert "postgres-data" in compose["volumes"]
    init = [v for v in volumes if "/docker-entrypoint-initdb.d/" in v]
    assert init == ["./deploy/postgres-init.sh:/docker-entrypoint-initdb.d/10-databases.sh:ro"]
    # TCP, not the socket: the image's init server listens on its socket only.
    assert "pg_isready -h 127.0.0.1" in " ".join(postgres["healthcheck"]["test"])
    env = environment(postgres)
    for name in ("POSTGRES_PASSWORD", "PHOENIX_DB_PASSWORD", "DASHBOARD_DB_PASSWORD"):
        assert env[name]


def test_init_script_creates_both_databases_from_the_environment() -> None:
    text = INIT_SCRIPT.read_text()
    assert INIT_SCRIPT.stat().st_mode & stat.S_IXUSR
    assert text.startswith("#!/usr/bin/env bash\n")
    for needed in (
        'CREATE DATABASE :"phoenix_db" OWNER :"phoenix_db"',
        'CREATE DATABASE :"dashboard_db" OWNER :"dashboard_db"',
        "\\getenv phoenix_password PHOENIX_DB_PASSWORD",
        "\\getenv dashboard_password DASHBOARD_DB_PASSWORD",
    ):
        assert needed in text
    assert "PASSWORD '" not in text  # no password in the file
    subprocess.run(["bash", "-n", str(INIT_SCRIPT)], check=True)
    assert not (PROJECT_DIR / "deploy" / "postgres-init.sql").exists()


# --- The Dockerfile ---------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """Return (INSTRUCTION, arguments) pairs, continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    pairs = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            pairs.append((keyword.upper(), rest.strip()))
    return pairs


def final_stage() -> list[tuple[str, str]]:
    instructions = dockerfile_instructions()
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    return instructions[last_from:]


def test_dockerfile_is_slim_and_multi_stage() -> None:
    images = [args.split()[0] for keyword, args in dockerfile_instructions() if keyword == "FROM"]
    assert images and all(image == "python:3.11-slim" for image in images)
    stage = final_stage()
    copies = [args for keyword, args in stage if keyword == "COPY"]
    assert any(args.startswith("--from=builder /opt/venv") for args in copies)
    # The final stage installs nothing itself.
    assert not any("pip install" in args for keyword, args in stage if keyword == "RUN")


def test_dockerfile_runs_as_a_user_that_is_not_root() -> None:
    users = [args for keyword, args in final_stage() if keyword == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")


def test_dockerfile_healthcheck_probes_healthz() -> None:
    checks = [args for keyword, args in final_stage() if keyword == "HEALTHCHECK"]
    assert len(checks) == 1 and "/healthz" in checks[0]
    command = json.loads(checks[0][checks[0].index("CMD") + 3 :].strip())
    assert command[0] == "python"


def test_dockerfile_migrates_then_serves_with_gunicorn() -> None:
    cmds = [args for keyword, args in final_stage() if keyword == "CMD"]
    assert len(cmds) == 1
    argv = json.loads(cmds[0])
    assert argv[:2] == ["sh", "-c"]
    script = shlex.split(argv[2])
    assert script[:3] == ["alembic", "upgrade", "head"] and script[3] == "&&"
    # Then the facts store, before any worker opens it.
    assert script[4:7] == ["python", "-m", "store.migrate"] and script[7] == "&&"
    serve = script[8:]
    assert serve[:2] == ["exec", "gunicorn"] and serve[-1] == "app:server"
    assert serve[serve.index("--workers") + 1] == "${GUNICORN_WORKERS}"
    # `make migrate` runs the same commands.
    makefile = (PROJECT_DIR / "Makefile").read_text()
    assert "alembic upgrade head" in makefile and "-m store.migrate" in makefile
    envs = " ".join(args for keyword, args in final_stage() if keyword == "ENV")
    assert "GUNICORN_WORKERS=" in envs


def dockerignore_keeps(path: str) -> bool:
    """Tell whether .dockerignore lets a top-level path into the build context."""
    keep = True
    for line in (PROJECT_DIR / ".dockerignore").read_text().splitlines():
        pattern = line.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negated = pattern.startswith("!")
        if fnmatch(path, pattern.lstrip("!")):
            keep = negated
    return keep


def test_build_context_holds_what_the_dockerfile_copies_and_no_more() -> None:
    sources: list[str] = []
    for keyword, args in dockerfile_instructions():
        if keyword == "COPY" and "--from=" not in args:
            sources.extend(token for token in args.split()[:-1] if not token.startswith("--"))
    assert "app.py" in sources and "pyproject.toml" in sources
    for source in sources:
        assert (PROJECT_DIR / source).exists(), source
        assert dockerignore_keeps(source), source
    for secret_or_bulk in (".env", ".venv", ".phoenix-venv", ".tmp", ".git", "tests", "docs"):
        assert not dockerignore_keeps(secret_or_bulk), secret_or_bulk


# --- .env.example and `make env` --------------------------------------------------------------


def test_env_example_lists_every_variable(raw_compose: dict[str, Any]) -> None:
    listed = example_names()
    for name, _default, _help in Settings.documented():
        assert name in listed, name
    for name in variables_in(COMPOSE_FILE.read_text()):
        assert name in listed, name
    assert "SESSION_COOKIE_SECURE" in listed and "GUNICORN_WORKERS" in listed
    # Nothing listed that nobody reads.
    readers = variables_in(COMPOSE_FILE.read_text()) | {n for n, _, _ in Settings.documented()}
    assert listed <= readers, sorted(listed - readers)


def test_every_deployment_variable_is_documented() -> None:
    docs = (PROJECT_DIR / "README.md").read_text() + (
        PROJECT_DIR / "docs" / "operations.md"
    ).read_text()
    for name in sorted(example_names()):
        assert f"| `{name}` |" in docs, name
    assert "docs/operations.md" in (PROJECT_DIR / "README.md").read_text()


def test_env_example_leaves_secrets_empty_and_shows_the_defaults() -> None:
    values = parse_env_file(ENV_EXAMPLE.read_text())
    for name in make_env.SECRETS:
        assert values[name] == "", name
    defaults = Settings.defaults()
    for name, value in values.items():
        if name in defaults and name not in DEPLOYMENT_VALUES and name != "SECRET_KEY":
            assert value == defaults[name], name
    assert values["SESSION_COOKIE_SECURE"] == "true"


def test_make_env_writes_fresh_secrets_and_never_overwrites(tmp_path: Path) -> None:
    out = tmp_path / ".env"
    assert make_env.main(["--output", str(out)]) == 0
    values = parse_env_file(out.read_text())
    secrets = [values[name] for name in make_env.SECRETS]
    assert all(len(value) >= 32 for value in secrets)
    assert len(set(secrets)) == len(secrets)
    assert all(re.fullmatch(r"[A-Za-z0-9_-]+", value) for value in secrets)  # URL-safe
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    before = out.read_text()
    assert make_env.main(["--output", str(out)]) == 0
    assert out.read_text() == before
    Settings.from_env({"SECRET_KEY": values["SECRET_KEY"]})


def test_make_env_target_uses_the_script() -> None:
    makefile = (PROJECT_DIR / "Makefile").read_text()
    assert re.search(r"^env:\n\t@?\$\(PYTHON\) scripts/make_env.py$", makefile, re.MULTILINE)
    assert ".env" in (PROJECT_DIR / ".gitignore").read_text().split()


# --- The init script on a real PostgreSQL -----------------------------------------------------


@pytest.mark.integration
def test_init_script_creates_the_two_databases_on_postgres() -> None:
    admin_url = os.environ.get("TEST_PG_ADMIN_URL")
    if not admin_url:
        if os.environ.get("CI"):
            pytest.fail("TEST_PG_ADMIN_URL is required when CI is set; run through `make test`")
        pytest.skip("TEST_PG_ADMIN_URL is not set; `make test` starts PostgreSQL")
    url = sa.make_url(admin_url)
    suffix = uuid.uuid4().hex[:10]
    names = {"phoenix": f"phoenix_{suffix}", "dashboard": f"dashboard_{suffix}"}
    env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
    env.update(
        PGHOST=url.host or "127.0.0.1",
        PGPORT=str(url.port or 5432),
        POSTGRES_USER=url.username or "postgres",
        POSTGRES_DB=url.database or "postgres",
        PHOENIX_DB_NAME=names["phoenix"],
        DASHBOARD_DB_NAME=names["dashboard"],
        PHOENIX_DB_PASSWORD=make_env.new_secret(),
        DASHBOARD_DB_PASSWORD='it\'s a "quoted" pass;word',
    )
    admin = sa.create_engine(
        url.set(drivername="postgresql+psycopg2"), isolation_level="AUTOCOMMIT"
    )
    try:
        result = subprocess.run(
            ["bash", str(INIT_SCRIPT)], env=env, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert env["PHOENIX_DB_PASSWORD"] not in result.stdout + result.stderr
        with admin.connect() as conn:
            for name in names.values():
                owner = conn.execute(
                    sa.text("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = :n"),
                    {"n": name},
                ).scalar_one()
                assert owner == name
                scram = conn.execute(
                    sa.text(
                        "SELECT rolpassword LIKE 'SCRAM-SHA-256$%' FROM pg_authid "
                        "WHERE rolname = :n AND rolcanlogin"
                    ),
                    {"n": name},
                ).scalar_one()
                assert scram, name
        own = url.set(
            drivername="postgresql+psycopg2",
            username=names["dashboard"],
            password=None,
            database=names["dashboard"],
        )
        engine = sa.create_engine(own)
        with engine.begin() as conn:  # the owner may create tables, as Alembic will
            conn.execute(sa.text("CREATE TABLE t (id int)"))
        engine.dispose()
        other = sa.create_engine(own.set(database=names["phoenix"]))
        with pytest.raises(sa.exc.OperationalError, match="permission denied"):
            other.connect()
        other.dispose()
        # A second run fails loudly instead of changing the existing roles.
        again = subprocess.run(["bash", str(INIT_SCRIPT)], env=env, capture_output=True)
        assert again.returncode != 0
    finally:
        with admin.connect() as conn:
            for name in names.values():
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                conn.execute(sa.text(f'DROP ROLE IF EXISTS "{name}"'))
        admin.dispose()
