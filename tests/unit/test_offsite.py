"""offsite.py: the `offsite:` settings, the secret files, restic's command lines (pure)."""

from __future__ import annotations

import os

import pytest

from klink_sync.config import check_settings
from klink_sync.errors import UsageError
from klink_sync.offsite import (
    Offsite,
    backup_argv,
    check_argv,
    deployment_id,
    forget_argv,
    parse_environment,
    push_tags,
    restic_env,
    safe_name,
    secret_file,
    stored,
    summary,
)
from klink_sync.retention import Retention


def _check(entry: object) -> tuple[Offsite | None, list[str]]:
    settings, problems = check_settings({"offsite": entry}, "cfg.yml")
    return (settings.offsite if settings else None), problems


def test_a_minimal_offsite_section_gets_the_defaults():
    offsite, problems = _check({"repository": "/srv/repo", "password_file": "/etc/pw"})
    assert problems == []
    assert offsite == Offsite("/srv/repo", "/etc/pw")
    assert offsite.after_backup and offsite.check_subset == "2%" and offsite.limit_upload == 0
    assert offsite.retention == Retention(keep_daily=7, keep_weekly=4, keep_monthly=12)


@pytest.mark.parametrize(
    ("entry", "said"),
    [
        ({"password_file": "/etc/pw"}, "cfg.yml: offsite.repository: is required"),
        ({"repository": "/r"}, "cfg.yml: offsite.password_file: is required"),
        ({"repository": "/r", "password_file": "pw"}, "offsite.password_file: must be an abs"),
        ({"repository": "/r", "password_file": "/p", "colour": 1}, "unknown key 'colour'"),
        ({"repository": "/r", "password_file": "/p", "check_subset": "200%"}, "check_subset"),
        ({"repository": "/r", "password_file": "/p", "check_subset": "3/2"}, "check_subset"),
        ({"repository": "/r", "password_file": "/p", "limit_upload": -1}, "limit_upload"),
        ({"repository": "/r", "password_file": "/p", "after_backup": "yes"}, "after_backup"),
        ({"repository": "/r", "password_file": "/p", "retention": {"keep_daily": -1}},
         "offsite.retention.keep_daily"),
        ({"repository": "/r", "password_file": "/p", "retention": {"keep_yearly": 1}},
         "unknown key 'keep_yearly'"),
        ({"repository": "/r", "password_file": "/p", "options": ["no-equals"]}, "options"),
        ({"repository": "/r\nx", "password_file": "/p"}, "one line"),
    ],
)  # fmt: skip
def test_bad_offsite_settings_name_the_key(entry, said):
    offsite, problems = _check(entry)
    assert offsite is None
    assert any(said in p for p in problems), problems


def test_a_share_or_a_fraction_is_a_subset():
    for subset in ("2%", "0.5%", "100%", "1/10"):
        assert _check({"repository": "/r", "password_file": "/p", "check_subset": subset})[0]


def test_the_secret_files_must_be_private(tmp_path):
    pw = tmp_path / "pw"
    pw.write_text("a long restic password\n")
    pw.chmod(0o640)
    with pytest.raises(UsageError, match=r"pw: offsite.password_file: mode 0640 lets others"):
        secret_file(str(pw), "password_file")
    pw.chmod(0o600)
    assert secret_file(str(pw), "password_file") == b"a long restic password\n"
    link = tmp_path / "link"
    link.symlink_to(pw)
    with pytest.raises(UsageError, match="link: offsite.password_file"):
        secret_file(str(link), "password_file")
    with pytest.raises(UsageError, match="missing: offsite.environment_file: No such file"):
        secret_file(str(tmp_path / "missing"), "environment_file")


def test_restic_gets_the_files_not_the_callers_restic_variables(tmp_path):
    pw, envfile = tmp_path / "pw", tmp_path / "offsite.env"
    pw.write_text("restic-password-1234\n")
    lines = ["# keys", "export AWS_ACCESS_KEY_ID=AKIDEXAMPLE99",
             "AWS_SECRET_ACCESS_KEY='s3cr3t/with=signs'", "AWS_DEFAULT_REGION=eu"]
    envfile.write_text("\n".join(lines) + "\n")
    for f in (pw, envfile):
        f.chmod(0o600)
    offsite = Offsite("s3:http://127.0.0.1:9/b", str(pw), str(envfile))
    base = {"PATH": "/usr/bin", "RESTIC_PASSWORD": "from-the-shell", "AWS_PROFILE": "x"}
    env, secrets = restic_env(offsite, base, str(tmp_path / "cache"))
    assert env["RESTIC_PASSWORD_FILE"] == str(pw) and "RESTIC_PASSWORD" not in env
    assert "AWS_PROFILE" not in env and env["PATH"] == "/usr/bin"
    assert env["AWS_SECRET_ACCESS_KEY"] == "s3cr3t/with=signs"
    assert env["RESTIC_REPOSITORY"] == "s3:http://127.0.0.1:9/b"
    assert set(secrets) == {"restic-password-1234", "AKIDEXAMPLE99", "s3cr3t/with=signs"}


def test_a_bad_environment_line_names_the_file_and_line():
    with pytest.raises(UsageError, match=r"^/e/o.env: line 2: not NAME=value$"):
        parse_environment("A=1\nnot a variable\n", "/e/o.env")


def test_the_push_runs_inside_the_snapshot_with_the_previous_push_as_parent():
    offsite = Offsite("/r", "/p", limit_upload=500, options=("sftp.command=ssh x",))
    argv = backup_argv(offsite, push_tags("2026-11-30T01-00-00Z", "hot-cold", "k-link"),
                       "k-link", "abc123")  # fmt: skip
    assert argv[:5] == ("restic", "-o", "sftp.command=ssh x", "--limit-upload", "500")
    assert argv[-1] == "." and "--ignore-ctime" in argv
    assert argv[argv.index("--parent") + 1] == "abc123"
    tags = [argv[i + 1] for i, a in enumerate(argv) if a == "--tag"]
    assert tags == ["klink-sync", "snapshot:2026-11-30T01-00-00Z", "mode:hot-cold",
                    "deployment:k-link"]  # fmt: skip
    assert "--parent" not in backup_argv(offsite, (), "k-link", None)


def test_check_and_forget_follow_the_settings():
    offsite = Offsite("/r", "/p", check_subset="5%", retention=Retention(keep_last=2,
                                                                         keep_monthly=6))
    assert check_argv(offsite)[-1] == "--read-data-subset=5%"
    argv = forget_argv(offsite)
    assert argv[argv.index("--keep-last") + 1] == "2" and "--keep-daily" not in argv
    assert argv[-1] == "--prune" and ("--group-by", "host") == argv[5:7]
    assert forget_argv(offsite, dry_run=True)[-1] == "--dry-run"


def test_only_klink_syncs_snapshots_are_listed_oldest_first():
    listing = [
        {"id": "b" * 64, "short_id": "bbbb", "time": "2026-11-30T02:00:00Z", "hostname": "k",
         "tags": ["klink-sync", "snapshot:2026-11-30T02-00-00Z", "mode:cold", "deployment:k"]},
        {"id": "c" * 64, "time": "2026-11-30T03:00:00Z", "hostname": "k", "tags": ["other"]},
        {"id": "a" * 64, "short_id": "aaaa", "time": "2026-11-30T01:00:00Z", "hostname": "k",
         "tags": ["klink-sync", "snapshot:2026-11-30T01-00-00Z", "mode:hot-cold", "deployment:k"]},
    ]  # fmt: skip
    assert [(s.name, s.id, s.mode) for s in stored(listing)] == [
        ("2026-11-30T01-00-00Z", "aaaa", "hot-cold"),
        ("2026-11-30T02-00-00Z", "bbbb", "cold")]  # fmt: skip
    assert stored(None) == []


def test_the_summary_is_the_last_json_line():
    out = '{"message_type":"status"}\n{"message_type":"summary","data_added":12}\n'
    assert summary(out)["data_added"] == 12 and summary("") == {}


def test_a_password_in_the_repository_url_is_not_shown():
    offsite = Offsite("rest:https://user:hunter2@backup.example:8000/k", "/p")
    assert "hunter2" not in offsite.shown and "backup.example:8000" in offsite.shown
    assert Offsite("s3:https://s3.example/b", "/p").shown == "s3:https://s3.example/b"



@pytest.mark.parametrize(
    ("name", "safe"),
    [("2026-11-30T01-00-00Z", True), ("2026-11-30T01-00-00Z-2", True),
     ("2026-11-30T01-00-00Z-pre-restore", True), ("../../x", False), ("a/b", False),
     ("2026-11-30T01-00-00Z/../..", False), ("latest", False), ("", False),
     ("2026-11-30T01-00-00Z,snapshot:x", False)],
)  # fmt: skip
def test_only_klink_syncs_own_names_can_become_folders(name, safe):
    assert safe_name(name) is safe


def test_the_deployment_id_keeps_tags_whole():
    assert deployment_id("k-link", "site-a.example") == "k-link@site-a.example"
    assert deployment_id("a,snapshot:../x", "h") == "a_snapshot_.._x@h"
    assert "," not in "".join(push_tags("2026-11-30T01-00-00Z", "cold,x", "k@h"))


def test_a_short_password_or_a_fifo_is_refused(tmp_path):
    pw = tmp_path / "pw"
    pw.write_text("short\n")
    pw.chmod(0o600)
    with pytest.raises(UsageError, match="shorter than 8 characters"):
        restic_env(Offsite("/r", str(pw)), {}, str(tmp_path))
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo, 0o600)
    with pytest.raises(UsageError, match="fifo: offsite.password_file: not a regular file"):
        secret_file(str(fifo), "password_file")  # at once: nobody writes to it


@pytest.mark.parametrize("repository, password", [
    ("rest:https://backup:Xk9/p#w2Qz@127.0.0.1:1/repo", "Xk9/p#w2Qz"),
    ("rest:https://backup:Hx7?pQ2wZ9@host:8000/repo", "Hx7?pQ2wZ9"),
    ("rest:https://backup:Hx7pQ2wZ9@[fd00::1/repo", "Hx7pQ2wZ9"),
    ("rest:https://backup:Kq7%rT9wZx@127.0.0.1:1/repo", "Kq7%rT9wZx"),
])  # fmt: skip
def test_a_url_password_with_any_character_is_found_and_never_shown(repository, password):
    """Review: `/`, `#` or `?` in the password cut it short for urlsplit (restic's error
    printed it whole), a broken IPv6 address raised a traceback."""
    from klink_sync.offsite import url_secrets

    assert password in url_secrets(repository)
    shown = Offsite(repository, "/p").shown
    assert password not in shown and "*****" in shown
