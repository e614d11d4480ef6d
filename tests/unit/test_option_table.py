"""The option table (config.OPTIONS) is the one declaration: README, sample and Settings agree.

An option added to the table but not to Settings (or the other way), a README table edited by
hand, or a sample example that `config check` refuses, each fails here.
"""

from __future__ import annotations

import difflib
import importlib.util
from dataclasses import fields
from pathlib import Path
from types import ModuleType

import yaml

from klink_sync.config import (
    DEFAULT_START_TIMEOUT,
    DEFAULT_STOP_TIMEOUT,
    OPTIONS,
    Settings,
    check_settings,
    readme_table,
    sample,
)

ROOT = Path(__file__).resolve().parents[2]
SRC = "/etc/klink-sync.yml"
REGENERATE = "run `.venv/bin/python scripts/readme_options.py` to rewrite it from OPTIONS"


def _script() -> ModuleType:
    """scripts/readme_options.py, which finds and rewrites the table (not a package)."""
    spec = importlib.util.spec_from_file_location(
        "readme_options", ROOT / "scripts" / "readme_options.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- the README ------------------------------------------------------------------------------


def test_readme_option_table_is_the_generated_one() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = _script().current_table(readme)
    diff = "".join(difflib.unified_diff(table.splitlines(keepends=True),
                                        readme_table().splitlines(keepends=True),
                                        "README.md", "readme_table()"))  # fmt: skip
    assert table == readme_table(), (
        f"README.md's option table (### Config file) is not klink_sync/config.py's OPTIONS: "
        f"{REGENERATE}\n{diff}"
    )


def test_readme_table_has_one_row_per_option_in_order() -> None:
    rows = readme_table().splitlines()
    assert rows[:2] == ["| option | default | what |", "|---|---|---|"]
    assert [row.split(" | ")[0] for row in rows[2:]] == [f"| `{key}`" for key in OPTIONS]
    assert "| `stop_timeout` | 120 |" in readme_table()
    assert "| `require_mount` | false |" in readme_table()
    assert "| `dest` | — |" in readme_table()


def test_help_texts_fit_a_table_cell_and_a_comment_line() -> None:
    for key, option in OPTIONS.items():
        assert option.help.strip() == option.help and option.help, key
        assert "|" not in option.help and "\n" not in option.help, key


def test_the_script_rewrites_only_the_table() -> None:
    script = _script()
    before = "# x\n\n### Config file\n\nThe options:\n\n| option | default | what |\n"
    after = "\n```yaml\ndest: /b\n```\n\n## Next\n\n| other | table |\n|---|---|\n"
    stale = before + "|---|---|---|\n| `dest` | — | old words |\n" + after
    fresh = script.rewrite(stale)
    assert fresh == before.removesuffix("| option | default | what |\n") + readme_table() + after
    assert script.rewrite(fresh) == fresh
    assert script.current_table(fresh) == readme_table()


def test_the_script_refuses_a_readme_without_the_table() -> None:
    script = _script()
    for text in ("# x\n\nno heading\n", "### Config file\n\ntext\n\n## Next\n\n| a |\n|---|\n"):
        try:
            script.table_span("\n" + text)
        except ValueError as exc:
            assert "Config file" in str(exc)
        else:
            raise AssertionError(f"found a table in {text!r}")


# --- declared once, used: Settings and the table ---------------------------------------------


def test_every_option_is_a_setting_and_every_setting_an_option() -> None:
    """Every option that is read is used, every option used is declared."""
    settings_fields = {f.name for f in fields(Settings)} - {"source"}
    filled = {option.field_name: key for key, option in OPTIONS.items()}
    assert len(filled) == len(OPTIONS), "two options fill the same Settings field"
    assert set(filled) - settings_fields == set(), "options read but kept in no Settings field"
    assert settings_fields - set(filled) == set(), "Settings fields no option declares"
    assert filled["overrides"] == "volumes"  # the one option parsed into another name
    assert {key for key, option in OPTIONS.items() if option.field_name != key} == {"volumes"}


def test_settings_defaults_are_the_table_defaults() -> None:
    settings = Settings()
    for option in OPTIONS.values():
        value = getattr(settings, option.field_name)
        assert value == option.default or value == tuple(option.default), option.key
    assert settings.stop_timeout == DEFAULT_STOP_TIMEOUT == OPTIONS["stop_timeout"].default == 120
    assert settings.start_timeout == DEFAULT_START_TIMEOUT == OPTIONS["start_timeout"].default
    assert DEFAULT_START_TIMEOUT == 300


# A value other than the default for every option: each must reach its Settings field.
GIVEN = {
    "folder": "/opt/k-link",
    "compose_files": ["docker-compose.yml"],
    "compose_command": "docker-compose",
    "dest": "/mnt/backup/k-link",
    "ssh_options": ["-p", "2222"],
    "stop_timeout": 30,
    "start_timeout": 60,
    "volumes": [{"service": "kbox", "class": "cold"}],
    "retention": {"keep_last": 3},
    "require_mount": True,
    "allow_unclean_stop": True,
    "excludes": {"./storage/data": ["cache/"]},
    "hooks": {"after": [["logger", "done"]]},
    "metrics_file": "/var/lib/node-exporter/klink_sync.prom",
    "ping_url": "https://hc-ping.com/abc",
    "log_level": "debug",
    "database": {"user": "backup", "password_file": "/etc/klink-sync/db-pw"},
    "offsite": {"repository": "/srv/restic", "password_file": "/etc/klink-sync/pw"},
    "notify": {"urls": ["ntfys://ntfy.example.org/k-link"]},
}


def test_every_option_read_reaches_its_setting() -> None:
    assert set(GIVEN) == set(OPTIONS), "give the new option a value in GIVEN"
    settings, problems = check_settings(GIVEN, SRC)
    assert problems == [] and settings is not None
    defaults = Settings(source=SRC)
    for key, option in OPTIONS.items():
        field = option.field_name
        assert getattr(settings, field) != getattr(defaults, field), f"{key} is read, not kept"


# --- the sample --------------------------------------------------------------------------------


def _uncommented(text: str) -> str:
    """The sample with its examples on: '#key:' and '#  nested' lines ('# text' is prose)."""
    return "".join(line[1:] if line.startswith("#") and (line[1:3] == "  " or line[1:2].strip())
                   else line for line in text.splitlines(keepends=True))  # fmt: skip


def test_the_sample_examples_uncommented_pass_check_settings() -> None:
    data = yaml.safe_load(_uncommented(sample()))
    settings, problems = check_settings(data, SRC)
    assert problems == []
    assert settings is not None
    examples = {key for key, option in OPTIONS.items() if option.example is not None}
    assert examples <= set(data), "an example that does not set its own option"
    defaults = Settings(source=SRC)
    for key in examples:  # each example shows a value other than the default
        field = OPTIONS[key].field_name
        assert getattr(settings, field) != getattr(defaults, field), key


def test_the_sample_prints_every_option_with_its_default() -> None:
    text = sample()
    for key, option in OPTIONS.items():
        shown = option.default_text
        default = "" if shown is None else f" (default: {shown})"
        assert f"\n# {key}: {option.help}{default}\n" in text
        assert f"\n{key}:" in text or f"\n#{key}:" in text, key
