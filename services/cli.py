"""`flask --app app users|prompts|sync ...`: manage users and prompts, and sync, from the shell."""

from __future__ import annotations

import getpass
import sys
from collections.abc import Callable

import click
from flask.cli import AppGroup, with_appcontext
from sqlalchemy.orm import Session

from db.models import ROLES, PromptChange
from services import prompt_identity, users
from services.container import get_services
from services.phoenix import PhoenixError
from services.sync_worker import SyncLock, SyncWorker, lock_ttl


def _read_password() -> str:
    """Prompt for a password on a terminal, else read one line from stdin."""
    if sys.stdin.isatty():
        password: str = click.prompt("Password", hide_input=True, confirmation_prompt=True)
        return password
    return sys.stdin.readline().rstrip("\r\n")


users_cli = AppGroup("users", help="Create, list and change dashboard users.")


@users_cli.command("create")
@click.argument("email")
@click.option("--role", type=click.Choice(ROLES), default="viewer", show_default=True)
@click.option("--name", "display_name", default="", help="Display name; defaults to the email.")
@click.option("--if-missing", is_flag=True, help="Succeed quietly when the user already exists.")
def create_command(email: str, role: str, display_name: str, if_missing: bool) -> None:
    """Create a user; the password is prompted, or read from stdin."""
    with get_services().sessions.begin() as db:
        if if_missing and users.get_by_email(db, email) is not None:
            click.echo(f"User {users.normalize_email(email)} exists; left unchanged.")
            return
        password = _read_password()
        try:
            user = users.create_user(db, email, password, role=role, display_name=display_name)
        except users.UserError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"Created {user.email} with role {user.role}.")


@users_cli.command("list")
def list_command() -> None:
    """List every user with role, state and last login."""
    with get_services().sessions() as db:
        rows = users.list_users(db)
        if not rows:
            click.echo("No users yet. Create one with: flask --app app users create EMAIL")
            return
        click.echo(f"{'email':<40} {'role':<8} {'active':<7} last login")
        for user in rows:
            last = user.last_login_at.isoformat(timespec="seconds") if user.last_login_at else "-"
            click.echo(
                f"{user.email:<40} {user.role:<8} {'yes' if user.active else 'no':<7} {last}"
            )


@users_cli.command("set-role")
@click.argument("email")
@click.argument("role", type=click.Choice(ROLES))
def set_role_command(email: str, role: str) -> None:
    """Change a user's role."""
    with get_services().sessions.begin() as db:
        try:
            user = users.set_role(db, email, role)
        except users.UserError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"{user.email} now has role {user.role}.")


@users_cli.command("deactivate")
@click.argument("email")
def deactivate_command(email: str) -> None:
    """Deactivate a user; they lose access at their next request."""
    with get_services().sessions.begin() as db:
        try:
            user = users.set_active(db, email, False)
        except users.UserError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"{user.email} is deactivated.")


@users_cli.command("activate")
@click.argument("email")
def activate_command(email: str) -> None:
    """Re-activate a deactivated user."""
    with get_services().sessions.begin() as db:
        try:
            user = users.set_active(db, email, True)
        except users.UserError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"{user.email} is active.")


@users_cli.command("set-password")
@click.argument("email")
def set_password_command(email: str) -> None:
    """Set a user's password (prompted, or read from stdin); their sessions end."""
    with get_services().sessions.begin() as db:
        try:
            user = users.set_password(db, email, _read_password())
        except users.UserError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"{user.email} has a new password; their sessions and tokens have ended.")


@users_cli.command("sign-out-everywhere")
@click.argument("email")
def sign_out_everywhere_command(email: str) -> None:
    """End every session and token of a user, on every device."""
    with get_services().sessions.begin() as db:
        try:
            user = users.sign_out_everywhere(db, email)
        except users.UserError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"{user.email} is signed out everywhere.")


@click.command("sync")
@with_appcontext
@click.option("--rebuild", is_flag=True, help="Forget all links and facts and read Phoenix again.")
@click.option("--follow", is_flag=True, help="Keep reading new data until stopped.")
def sync_cli(rebuild: bool, follow: bool) -> None:
    """Read new spans and evaluations from Phoenix into the dashboard's links and facts."""
    services = get_services()
    if services.sync is None:
        raise click.ClickException("The Phoenix integration is off (PHOENIX_ENABLED=false).")
    try:
        result = services.sync.rebuild() if rebuild else services.sync.tick()
    except PhoenixError as exc:
        raise click.ClickException(f"Phoenix: {exc}") from None
    click.echo(
        f"Read {result.spans_read} spans ({result.llm_spans} LLM) and "
        f"{result.annotations} new or changed annotations from {len(result.projects)} projects."
    )
    if follow:
        lock = SyncLock(services.settings.redis_url, ttl_s=lock_ttl(services.settings))
        worker = SyncWorker(
            services.sync, lock, services.settings.sync_interval_s, settings=services.settings
        )
        click.echo("Following Phoenix; Ctrl-C stops.")
        try:
            worker.run()
        except KeyboardInterrupt:
            worker.lock.release()


prompts_cli = AppGroup(
    "prompts", help="List prompts and their template groups; merge, relabel, rename, undo."
)


def _actor(value: str | None) -> str:
    """Name who makes a change from the shell: --actor, else the operating-system user."""
    return value or f"cli:{getpass.getuser()}"


actor_option = click.option("--actor", help="Who makes the change (for the audit log).")


def _apply(change: Callable[[Session], PromptChange]) -> None:
    """Run one audited change in a transaction and print its summary, or a clear error."""
    with get_services().sessions.begin() as db:
        try:
            record = change(db)
        except prompt_identity.PromptIdentityError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"Change {record.id}: {record.summary}")


@prompts_cli.command("list")
def prompts_list_command() -> None:
    """List every template group: id, prompt, label, stated version and template."""
    with get_services().sessions() as db:
        found = prompt_identity.groups(db)
    if not found:
        click.echo("No prompts yet: they appear as the sync reads spans with templates.")
        return
    click.echo(f"{'group id':<36}  {'prompt':<30} {'label':<14} {'source':<9} template")
    for g in found:
        snippet = " ".join(g.template.split())[:50]
        click.echo(f"{g.id:<36}  {g.prompt[:30]:<30} {g.label[:14]:<14} {g.source:<9} {snippet}")


@prompts_cli.command("merge")
@click.argument("prompt_name")
@click.argument("group_ids", nargs=-1, required=True)
@actor_option
def prompts_merge_command(prompt_name: str, group_ids: tuple[str, ...], actor: str | None) -> None:
    """Put template groups (ids from `prompts list`) into the prompt PROMPT_NAME."""
    _apply(lambda db: prompt_identity.merge(db, _actor(actor), group_ids, prompt_name))


@prompts_cli.command("relabel")
@click.argument("group_id")
@click.argument("label")
@actor_option
def prompts_relabel_command(group_id: str, label: str, actor: str | None) -> None:
    """Set the version label a template group shows."""
    _apply(lambda db: prompt_identity.relabel(db, _actor(actor), group_id, label))


@prompts_cli.command("rename")
@click.argument("old_name")
@click.argument("new_name")
@actor_option
def prompts_rename_command(old_name: str, new_name: str, actor: str | None) -> None:
    """Rename a prompt."""
    _apply(lambda db: prompt_identity.rename(db, _actor(actor), old_name, new_name))


@prompts_cli.command("undo")
@click.argument("change_id")
@actor_option
def prompts_undo_command(change_id: str, actor: str | None) -> None:
    """Undo a change (numbers from `prompts history`)."""
    _apply(lambda db: prompt_identity.undo(db, _actor(actor), change_id))


@prompts_cli.command("history")
def prompts_history_command() -> None:
    """List the newest changes: number, when, who, what, and whether undone."""
    with get_services().sessions() as db:
        changes = prompt_identity.history(db)
    if not changes:
        click.echo("No changes yet.")
        return
    for c in changes:
        state = " (undone)" if c.undone else ""
        click.echo(
            f"{c.id:>5}  {c.at.isoformat(timespec='seconds')}  {c.actor}  {c.summary}{state}"
        )
