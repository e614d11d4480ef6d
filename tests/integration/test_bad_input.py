"""Bad input: one clear line naming the file or key, exit 2, nothing stopped or written."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.integration.test_hot_cold import ALL, COMPOSE, make_deployment, set_running


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# (id, setup(folder, tmp) -> extra CLI args, expected message parts)
def _malformed_yaml(f, t):
    _write(f / "docker-compose.yml", "services:\n  kbox: [unclosed\n")
    return []


def _no_compose(f, t):
    (f / "docker-compose.yml").unlink()
    return []


def _no_volumes(f, t):
    _write(f / "docker-compose.yml", "services:\n  web:\n    image: nginx\n")
    return []


def _missing_source(f, t):
    _write(f / "docker-compose.yml", COMPOSE.replace("./storage/index", "./storage/nowhere"))
    return []


def _services_not_mapping(f, t):
    _write(f / "docker-compose.yml", "services: [a, b]\n")
    return []


def _required_variable(f, t):
    _write(f / "docker-compose.yml", COMPOSE.replace("${DB_ROOT_PASSWORD}", "${NOPE:?set NOPE}"))
    return []


def _undeclared_named_volume(f, t):
    _write(f / "docker-compose.yml", COMPOSE.replace("./storage/index:", "indexvol:"))
    return []


def _config(text):
    def setup(f, t):
        return ["--config", _write(t / "config.yml", text)]
    return setup


def _config_missing(f, t):
    return ["--config", t / "no-such-config.yml"]


def _folder_missing(f, t):
    return ["--folder", t / "no-such-folder"]


def _dest_foreign(f, t):
    foreign = t / "foreign"
    foreign.mkdir()
    (foreign / "precious.txt").write_text("not a backup")
    return ["--dest", foreign]


def _dest_inside_source(f, t):
    return ["--dest", f / "storage" / "backup"]


def _source_inside_dest(f, t):
    outside = t / "disk"
    _write(f / "docker-compose.yml", COMPOSE.replace("./storage/index", f"{outside}/backup/index"))
    (outside / "backup" / "index").mkdir(parents=True)
    return ["--dest", outside / "backup"]


def _no_dest(f, t):
    return ["--no-dest"]


CASES = [
    ("malformed-yaml", _malformed_yaml, ["docker-compose.yml", "not valid YAML", "line"]),
    ("no-compose-file", _no_compose, ["no compose file"]),
    ("no-volumes", _no_volumes, ["docker-compose.yml", "no service declares a volume"]),
    ("missing-source", _missing_source, ["storage/nowhere", "does not exist"]),
    ("services-not-mapping", _services_not_mapping, ["docker-compose.yml", "services"]),
    ("required-variable", _required_variable, ["NOPE"]),
    ("undeclared-named-volume", _undeclared_named_volume, ["indexvol"]),
    ("config-unknown-key", _config("colour: blue\n"), ["config.yml", "unknown key 'colour'"]),
    ("config-wrong-type", _config("stop_timeout: soon\n"), ["config.yml", "stop_timeout",
                                                            "a number"]),
    ("config-bad-yaml", _config("dest: [\n"), ["config.yml", "not valid YAML"]),
    ("config-bad-class", _config("volumes:\n  - service: kbox\n    class: warm\n"),
     ["config.yml", "volumes[0].class", "hot, cold or skip"]),
    ("config-unknown-service", _config("volumes:\n  - service: nosuch\n    class: hot\n"),
     ["config.yml", "volumes[0]", "nosuch"]),
    ("config-missing", _config_missing, ["no-such-config.yml", "cannot read"]),
    ("folder-missing", _folder_missing, ["no-such-folder", "does not exist"]),
    ("dest-not-ours", _dest_foreign, ["foreign", "not empty", ".klink-sync"]),
    ("dest-inside-source", _dest_inside_source, ["destination is inside the source"]),
    ("source-inside-dest", _source_inside_dest, ["source is inside the destination"]),
    ("no-destination", _no_dest, ["no destination"]),
]


@pytest.mark.parametrize("setup, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input(tmp_path, klink_env, setup, expected):
    folder = make_deployment(tmp_path)
    set_running(klink_env, ALL)
    dest = tmp_path / "backup"
    args = ["--folder", folder, "--dest", dest]
    extra = [str(a) for a in setup(folder, tmp_path)]
    if extra == ["--no-dest"]:
        extra = ["--dest", "--no-dest"]  # drop --dest below, pass nothing in its place
    for flag in ("--folder", "--dest"):
        if flag in extra:  # the case replaces that option
            i = args.index(flag)
            del args[i:i + 2]
    extra = [] if extra == ["--dest", "--no-dest"] else extra
    env = {k: v for k, v in klink_env.items() if k != "KLINK_SYNC_DEST"}
    proc = run_cli("hot-cold", *args, *extra, env=env, check=2)
    message = proc.stderr.strip().splitlines()[-1]
    assert message.startswith("klink-sync: error: ")
    assert len(proc.stderr.strip().splitlines()) <= 2, proc.stderr  # one line (after a log line)
    for part in expected:
        assert part in message, (part, message)
    calls = Path(klink_env["FAKE_COMPOSE_LOG"])
    assert not calls.exists() or " stop" not in calls.read_text()
    assert not dest.exists()
    assert sorted(Path(klink_env["FAKE_COMPOSE_STATE"]).read_text().split()) == ALL


def test_unknown_snapshot_name_is_bad_input(tmp_path, klink_env):
    folder = make_deployment(tmp_path)
    set_running(klink_env, ALL)
    dest = tmp_path / "backup"
    run_cli("hot-cold", "--folder", folder, "--dest", dest, env=klink_env)
    for command in ("restore", "verify"):
        proc = run_cli(command, "1999-01-01T00-00-00Z", "--dest", dest, env=klink_env, check=2)
        assert "no snapshot named '1999-01-01T00-00-00Z'" in proc.stderr


def test_case_table_is_large_enough():
    assert len(CASES) + 1 >= 15


def test_unknown_cut_in_klink_sync_disable_is_bad_input(tmp_path, klink_env):
    """The benchmark's switch: a misspelt cut is refused before anything is stopped."""
    folder = make_deployment(tmp_path)
    set_running(klink_env, ALL)
    dest = tmp_path / "backup"
    proc = run_cli("hot-cold", "--folder", folder, "--dest", dest,
                   env={**klink_env, "KLINK_SYNC_DISABLE": "seed,paralel"}, check=2)  # fmt: skip
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "KLINK_SYNC_DISABLE: unknown paralel" in lines[0]
    assert sorted(Path(klink_env["FAKE_COMPOSE_STATE"]).read_text().split()) == ALL
    assert not (dest / "snapshots").exists() or not any((dest / "snapshots").iterdir())
