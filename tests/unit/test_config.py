"""config.py: YAML config -> Settings; every error names the file and the key."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from klink_sync.classify import Override
from klink_sync.config import (
    OPTIONS,
    Settings,
    check_file,
    check_settings,
    load_settings,
    parse_settings,
    sample,
)
from klink_sync.errors import UsageError
from klink_sync.models import VolumeClass

HOT, COLD, SKIP = VolumeClass.HOT, VolumeClass.COLD, VolumeClass.SKIP
SRC = "/etc/klink-sync.yml"


def config(tmp_path: Path, text: str, name: str = "klink-sync.yml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def error_of(data: object, source: str = SRC) -> str:
    with pytest.raises(UsageError) as info:
        parse_settings(data, source)
    return str(info.value)


# --- defaults ----------------------------------------------------------------------------


def test_defaults() -> None:
    settings = Settings()
    assert settings == Settings(
        folder=None, compose_files=(), compose_command=None, dest=None,
        stop_timeout=120, start_timeout=300, overrides=(), source="defaults",
    )  # fmt: skip
    assert load_settings(None) == settings


def test_defaults_agree_with_the_option_table() -> None:
    settings = Settings()
    for key, option in OPTIONS.items():
        default, help_text = option.default, option.help
        assert help_text
        if key == "volumes":
            assert settings.overrides == tuple(default)
        elif key == "compose_files":
            assert settings.compose_files == tuple(default)
        else:
            assert getattr(settings, key) == default, key


def test_empty_mapping_and_none_give_defaults() -> None:
    assert parse_settings({}, SRC) == Settings(source=SRC)
    assert parse_settings(None, SRC) == Settings(source=SRC)


def test_empty_file_gives_defaults(tmp_path: Path) -> None:
    path = config(tmp_path, "")
    assert load_settings(path) == Settings(source=str(path))


def test_comments_only_file_gives_defaults(tmp_path: Path) -> None:
    path = config(tmp_path, "# nothing set yet\n")
    assert load_settings(path) == Settings(source=str(path))


def test_null_values_keep_the_defaults() -> None:
    data = {"dest": None, "stop_timeout": None, "volumes": None, "compose_files": None}
    assert parse_settings(data, SRC) == Settings(source=SRC)


# --- every option ------------------------------------------------------------------------


def test_every_option_from_a_file(tmp_path: Path) -> None:
    path = config(tmp_path, """
        folder: /home/klink/deploy/k-link
        compose_files: [docker-compose.yml, docker-compose.prod.yml]
        compose_command: docker-compose
        dest: /mnt/backup/k-link
        stop_timeout: 30
        start_timeout: 600
        volumes:
          - service: database
            class: hot
            reason: a replica we can copy live
          - target: /var/www/dms/storage/
            class: cold
          - source: /mnt/data/cache
            class: skip
          - service: kbox
            target: /srv/tmp
            source: ./tmp
            class: skip
    """)  # fmt: skip
    assert load_settings(path) == Settings(
        folder="/home/klink/deploy/k-link",
        compose_files=("docker-compose.yml", "docker-compose.prod.yml"),
        compose_command="docker-compose",
        dest="/mnt/backup/k-link",
        stop_timeout=30,
        start_timeout=600,
        overrides=(
            Override(HOT, service="database", reason="a replica we can copy live"),
            Override(COLD, target="/var/www/dms/storage/"),
            Override(SKIP, source="/mnt/data/cache"),
            Override(SKIP, service="kbox", target="/srv/tmp", source="./tmp"),
        ),
        source=str(path),
    )


def test_settings_are_frozen() -> None:
    settings = parse_settings({"dest": "/b"}, SRC)
    with pytest.raises(AttributeError):
        settings.dest = "/elsewhere"  # type: ignore[misc]


def test_timeouts_of_one_second_are_accepted() -> None:
    settings = parse_settings({"stop_timeout": 1, "start_timeout": 1}, SRC)
    assert (settings.stop_timeout, settings.start_timeout) == (1, 1)


# --- errors in options -------------------------------------------------------------------


def test_unknown_key() -> None:
    assert error_of({"dest": "/b", "stop_timout": 10}) == f"{SRC}: unknown key 'stop_timout'"


def test_unknown_key_from_a_file(tmp_path: Path) -> None:
    path = config(tmp_path, "destination: /b\n")
    with pytest.raises(UsageError, match=re.escape(f"{path}: unknown key 'destination'")):
        load_settings(path)


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("stop_timeout", "30", "must be a number"),
        ("stop_timeout", "30s", "must be a number"),
        ("stop_timeout", 1.5, "must be a number"),
        ("stop_timeout", True, "must be a number"),
        ("stop_timeout", 7200, "must be at most 3600 seconds"),
        ("start_timeout", False, "must be a number"),
        ("dest", 5, "must be a string"),
        ("dest", ["/b"], "must be a string"),
        ("folder", True, "must be a string"),
        ("compose_command", ["docker", "compose"], "must be a string"),
        ("compose_files", "docker-compose.yml", "must be a list"),
        ("volumes", {"service": "database", "class": "hot"}, "must be a list"),
    ],
)
def test_wrong_type_names_the_file_and_the_key(key: str, value: object, expected: str) -> None:
    assert error_of({key: value}) == f"{SRC}: {key}: {expected}"


def test_wrong_type_from_a_file(tmp_path: Path) -> None:
    path = config(tmp_path, 'stop_timeout: "120"\n')
    with pytest.raises(UsageError) as info:
        load_settings(path)
    assert str(info.value) == f"{path}: stop_timeout: must be a number"


def test_bool_for_an_int_from_a_file(tmp_path: Path) -> None:
    path = config(tmp_path, "start_timeout: yes\n")
    with pytest.raises(UsageError) as info:
        load_settings(path)
    assert str(info.value) == f"{path}: start_timeout: must be a number"


@pytest.mark.parametrize("key", ["stop_timeout", "start_timeout"])
@pytest.mark.parametrize("value", [0, -5])
def test_timeout_below_one_second_is_refused(key: str, value: int) -> None:
    message = error_of({key: value})
    assert message.startswith(f"{SRC}: ")
    assert "at least 1 second" in message


@pytest.mark.parametrize("key", ["stop_timeout", "start_timeout"])
def test_timeout_below_one_second_names_the_key(key: str) -> None:
    assert key in error_of({key: 0})


def test_config_that_is_not_a_mapping() -> None:
    assert error_of(["dest", "/b"]) == f"{SRC}: the config must be a mapping of options"
    assert error_of("dest=/b") == f"{SRC}: the config must be a mapping of options"


# --- errors in overrides -----------------------------------------------------------------


@pytest.mark.parametrize("cls", ["warm", "HOT", "", 1, None])
def test_bad_class_in_an_override(cls: object) -> None:
    data = {"volumes": [{"service": "database", "class": "cold"},
                        {"service": "kbox", "class": cls}]}  # fmt: skip
    assert error_of(data) == f"{SRC}: volumes[1].class: must be hot, cold or skip"


def test_missing_class_in_an_override() -> None:
    assert error_of({"volumes": [{"service": "database"}]}) == (
        f"{SRC}: volumes[0].class: must be hot, cold or skip"
    )


@pytest.mark.parametrize(
    "entry",
    [
        {"class": "hot"},
        {"class": "hot", "reason": "why"},
        {"class": "hot", "service": "", "target": None},
    ],
)
def test_override_naming_nothing(entry: dict) -> None:
    assert error_of({"volumes": [entry]}) == (
        f"{SRC}: volumes[0]: names no service, target or source"
    )


def test_override_with_an_unknown_key() -> None:
    data = {"volumes": [{"service": "database", "class": "hot", "path": "/x"}]}
    assert error_of(data) == f"{SRC}: volumes[0]: unknown key 'path'"


@pytest.mark.parametrize("entry", ["database: hot", ["database", "hot"], 5])
def test_override_that_is_not_a_mapping(entry: object) -> None:
    assert error_of({"volumes": [entry]}) == (
        f"{SRC}: volumes[0]: must be a mapping with 'class' and service/target/source"
    )


def test_override_errors_from_a_file(tmp_path: Path) -> None:
    path = config(tmp_path, """
        volumes:
          - service: database
            class: hot
          - target: /var/www/dms/storage
            class: lukewarm
    """)  # fmt: skip
    with pytest.raises(UsageError) as info:
        load_settings(path)
    assert str(info.value) == f"{path}: volumes[1].class: must be hot, cold or skip"


@pytest.mark.parametrize(
    ("key", "value"), [("target", ["/var/lib/mysql"]), ("service", 5), ("source", {"a": 1})]
)
def test_override_field_of_the_wrong_type(key: str, value: object) -> None:
    with pytest.raises(UsageError, match=re.escape(f"{SRC}: volumes[0].{key}")):
        parse_settings({"volumes": [{key: value, "class": "hot"}]}, SRC)


# --- reading the file --------------------------------------------------------------------


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yml"
    with pytest.raises(UsageError) as info:
        load_settings(path)
    assert str(info.value) == f"{path}: cannot read config: No such file or directory"


def test_directory_instead_of_a_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as info:
        load_settings(tmp_path)
    assert str(info.value).startswith(f"{tmp_path}: cannot read config: ")


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("dest: /b\nstop_timeout: 10\nvolumes:\n  - service: db\n   class: hot\n", 5),
        ("dest: /b\n\tstop_timeout: 10\n", 2),
        ("folder: /srv/k-link\ndest: [/b\n", 3),
    ],
)
def test_malformed_yaml_names_the_file_and_the_line(tmp_path: Path, text: str, line: int) -> None:
    path = tmp_path / "klink-sync.yml"
    path.write_text(text)
    with pytest.raises(UsageError) as info:
        load_settings(path)
    assert str(info.value) == f"{path}: not valid YAML (line {line})"


def test_malformed_yaml_message_does_not_quote_the_file(tmp_path: Path) -> None:
    path = tmp_path / "klink-sync.yml"
    path.write_text("dest: /b\ncompose_command: 'secret-ish\n")
    with pytest.raises(UsageError) as info:
        load_settings(path)
    assert "secret-ish" not in str(info.value)


def test_non_utf8_file_is_a_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "klink-sync.yml"
    path.write_bytes(b"dest: /mnt/sauvegarde-\xe9t\xe9\n")
    with pytest.raises(UsageError, match=re.escape(str(path))):
        load_settings(path)


def test_source_is_the_file_path(tmp_path: Path) -> None:
    path = config(tmp_path, "dest: /b\n")
    assert load_settings(path).source == str(path)


# --- service options, every problem at once, the sample --------------------------------------


def test_service_options_from_a_file(tmp_path: Path) -> None:
    path = config(tmp_path, """
        require_mount: true
        excludes:
          ./storage/data: [cache/, "*.tmp"]
          klink_index: [tmp/]
        hooks:
          before: [[mount, /mnt/backup]]
        metrics_file: /var/lib/node-exporter/klink_sync.prom
        ping_url: https://hc-ping.com/abc
        log_level: debug
    """)  # fmt: skip
    settings = load_settings(path)
    assert settings.require_mount is True
    assert settings.excludes == {"./storage/data": ("cache/", "*.tmp"), "klink_index": ("tmp/",)}
    assert settings.hooks.before == (("mount", "/mnt/backup"),)
    assert settings.metrics_file == "/var/lib/node-exporter/klink_sync.prom"
    assert settings.ping_url == "https://hc-ping.com/abc"
    assert settings.log_level == "debug"


def test_check_settings_collects_every_problem() -> None:
    settings, problems = check_settings(
        {"dest": 5, "nope": 1, "log_level": "loud", "excludes": {"": ["x"], "a": [""]}}, SRC)
    assert settings is None
    assert problems == [
        f"{SRC}: dest: must be a string",
        f"{SRC}: unknown key 'nope'",
        f"{SRC}: excludes['']: must name a volume by its source (./storage/cache, /mnt/x or a "
        "named volume)",
        f"{SRC}: excludes['a'][0]: must be a non-empty pattern on one line",
        f"{SRC}: log_level: must be debug, info or warning",
    ]


def test_a_run_names_the_first_problem_and_how_many_more() -> None:
    assert error_of({"dest": 5, "nope": 1}) == (
        f"{SRC}: dest: must be a string (and 1 more: klink-sync config check {SRC})")


def test_a_key_given_twice_is_refused(tmp_path: Path) -> None:
    path = config(tmp_path, "dest: /a\nstop_timeout: 5\ndest: /b\n")
    with pytest.raises(UsageError) as info:
        load_settings(path)
    assert str(info.value) == f"{path}: dest: given twice (line 3); keep one"
    assert check_file(path) == [f"{path}: dest: given twice (line 3); keep one"]


def test_the_sample_is_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "config.yml"
    path.write_text(sample())
    assert check_file(path) == []
    assert load_settings(path) == Settings(source=str(path))
    for key in OPTIONS:
        assert f"\n# {key}: {OPTIONS[key].help}" in sample()
