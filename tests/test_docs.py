"""The README documents every setting and both commands."""

from __future__ import annotations

from settings import PROJECT_DIR, Settings


def test_readme_lists_every_variable_and_the_two_commands() -> None:
    readme = (PROJECT_DIR / "README.md").read_text()
    for name, _default, _meaning in Settings.documented():
        assert f"| `{name}` |" in readme, name
    assert "make demo" in readme and "make test" in readme
    assert "make test" in (PROJECT_DIR / ".ci" / "run").read_text()
