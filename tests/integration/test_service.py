"""Running klink-sync as a service: timer units, config sample/check, metrics, hooks, pings.

Backups run the real command with real rsync against the stand-in compose command.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import KLINK_SYNC, run_cli
from tests.integration.test_hot_cold import (
    ALL,
    ROOT_PASSWORD,
    make_deployment,
    running,
    set_running,
)

# --- timer units -------------------------------------------------------------------------------


def _verify_units(unit_dir: Path) -> subprocess.CompletedProcess:
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is missing: scripts/install-deps.sh installs systemd"
    units = [str(unit_dir / "klink-sync.service"), str(unit_dir / "klink-sync.timer")]
    # --man=no: no man pages here; a unit's problems are printed (and must be none)
    return subprocess.run([analyze, "verify", "--man=no", *units], capture_output=True,
                          text=True, env={**os.environ, "SYSTEMD_LOG_LEVEL": "notice"})  # fmt: skip


def _config(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


def test_timer_install_writes_units_that_systemd_analyze_verifies(tmp_path):
    unit_dir = tmp_path / "units"
    config = _config(tmp_path / "config.yml", f"""\
        folder: /opt/k-link
        dest: {tmp_path}/backup dir
        metrics_file: {tmp_path}/textfile/klink_sync.prom
    """)  # fmt: skip
    proc = run_cli("timer", "install", "--config", config, "--unit-dir", unit_dir,
                   "--on-calendar", "Mon..Fri 02:30", "--exec", KLINK_SYNC)  # fmt: skip
    service = (unit_dir / "klink-sync.service").read_text()
    timer = (unit_dir / "klink-sync.timer").read_text()
    verified = _verify_units(unit_dir)
    assert verified.returncode == 0 and not verified.stderr.strip(), verified.stderr
    assert f"ExecStart={KLINK_SYNC} hot-cold --config {config}\n" in service
    assert f'ReadWritePaths="-{tmp_path}/backup dir"\n' in service
    assert f"ReadWritePaths=-{tmp_path}/textfile\n" in service
    assert "OnCalendar=Mon..Fri 02:30\n" in timer and "Persistent=true\n" in timer
    recover = (unit_dir / "klink-sync-recover.service").read_text()
    assert f"ExecStart={KLINK_SYNC} recover --config {config}\n" in recover
    assert f"ExecStopPost={KLINK_SYNC} recover --config {config}\n" in service
    lines = proc.stdout.splitlines()
    units = ("klink-sync.service", "klink-sync.timer", "klink-sync-recover.service")
    assert lines[:3] == [f"wrote {unit_dir}/{name}" for name in units]
    assert lines[-3:] == ["systemctl daemon-reload", "systemctl enable --now klink-sync.timer",
                          "systemctl enable klink-sync-recover.service"]  # fmt: skip
    assert sorted(p.name for p in unit_dir.iterdir()) == sorted(units)
    assert (unit_dir / "klink-sync.service").stat().st_mode & 0o777 == 0o644


def test_timer_install_defaults_verify_too(tmp_path):
    """No config file yet: a warning, and units without ReadWritePaths that still verify."""
    unit_dir = tmp_path / "units"
    proc = run_cli("timer", "install", "--config", tmp_path / "missing.yml",
                   "--unit-dir", unit_dir)  # fmt: skip  (--exec: this very command)
    assert "does not exist yet" in proc.stderr
    service = (unit_dir / "klink-sync.service").read_text()
    assert f"ExecStart={KLINK_SYNC} hot-cold --config {tmp_path}/missing.yml" in service
    assert "ReadWritePaths" not in service
    assert "OnCalendar=daily" in (unit_dir / "klink-sync.timer").read_text()
    verified = _verify_units(unit_dir)
    assert verified.returncode == 0 and not verified.stderr.strip(), verified.stderr


def test_systemd_analyze_catches_a_broken_unit(tmp_path):
    """The check above can fail: a unit with a bad value is reported."""
    unit_dir = tmp_path / "units"
    run_cli("timer", "install", "--config", tmp_path / "c.yml", "--unit-dir", unit_dir)
    service = unit_dir / "klink-sync.service"
    service.write_text(service.read_text().replace("Nice=10", "Nice=100"))
    assert "Nice priority out of range" in _verify_units(unit_dir).stderr


def test_timer_print_writes_nothing(tmp_path):
    unit_dir = tmp_path / "units"
    proc = run_cli("timer", "print", "--config", tmp_path / "c.yml", "--unit-dir", unit_dir,
                   "--exec", KLINK_SYNC)  # fmt: skip
    assert not unit_dir.exists()
    assert f"# {unit_dir}/klink-sync.service\n[Unit]" in proc.stdout
    assert "[Timer]\nOnCalendar=daily\nPersistent=true\nRandomizedDelaySec=30m\n" in proc.stdout
    assert proc.stdout.rstrip().endswith("systemctl enable --now klink-sync.timer\n"
                                         "systemctl enable klink-sync-recover.service")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--on-calendar", "nightly"), "--on-calendar 'nightly': not a systemd calendar spec"),
        (("--exec", "/nonexistent/klink-sync"), "/nonexistent/klink-sync: not an executable"),
    ],
)
def test_timer_refuses_bad_arguments(tmp_path, args, message):
    proc = run_cli("timer", "install", "--unit-dir", tmp_path / "u", "--config",
                   tmp_path / "c.yml", *args, check=2)  # fmt: skip
    assert message in proc.stderr
    assert not (tmp_path / "u").exists()


def test_timer_refuses_a_config_with_problems(tmp_path):
    config = _config(tmp_path / "c.yml", "dest: /b\nstop_timeout: soon\nretention: {keep: 1}\n")
    proc = run_cli("timer", "install", "--unit-dir", tmp_path / "u", "--config", config, check=2)
    assert f"{config}: stop_timeout: must be a number" in proc.stderr
    assert f"{config}: retention: unknown key 'keep'" in proc.stderr
    assert not (tmp_path / "u").exists()


# --- config sample and check ------------------------------------------------------------------


def _uncommented(sample: str) -> str:
    """The sample with its examples switched on: '#key:' and '#  nested' lines ('# ' is prose)."""
    return "".join(line[1:] if line.startswith("#") and (line[1:3] == "  " or line[1:2].strip())
                   else line for line in sample.splitlines(keepends=True))  # fmt: skip


def test_config_sample_passes_config_check_unchanged(tmp_path):
    sample = run_cli("config", "sample").stdout
    path = tmp_path / "config.yml"
    path.write_text(sample)
    proc = run_cli("config", "check", path)
    assert proc.stdout == f"{path}: ok\n" and proc.stderr == ""
    from klink_sync.config import OPTIONS

    for key in OPTIONS:  # every option is documented, set or as an example
        assert f"\n# {key}: " in sample and (f"\n{key}:" in sample or f"\n#{key}:" in sample)


def test_config_sample_examples_pass_too(tmp_path):
    path = tmp_path / "config.yml"
    path.write_text(_uncommented(run_cli("config", "sample").stdout))
    run_cli("config", "check", path)
    data = yaml.safe_load(path.read_text())
    assert data["dest"] == "/mnt/backup/k-link" and data["hooks"]["before"][0][0] == "logger"
    assert data["retention"]["keep_daily"] == 7
    assert data["metrics_file"].endswith(".prom") and data["log_level"] == "info"


BAD_CONFIGS = [
    ("stop_timout: 60\n", "unknown key 'stop_timout'"),
    ('stop_timeout: "120"\n', "stop_timeout: must be a number"),
    ("volumes:\n  - service: kbox\n    class: lukewarm\n",
     "volumes[0].class: must be hot, cold or skip"),
    ("retention:\n  keep_daily: -1\n", "retention.keep_daily: must be a whole number >= 0"),
    ("require_mount: maybe\n", "require_mount: must be true or false"),
    ("hooks:\n  before: logger starting\n",
     "hooks.before: a string runs through the shell only with hooks.shell: true; give an argv "
     "list like [logger, backup done]"),
    ("hooks:\n  after:\n    - []\n", "hooks.after[0]: empty command"),
    ("hooks:\n  on_fail:\n    - [true]\n",
     "hooks: unknown key 'on_fail' (hooks are before, after, on_failure; shell: true allows "
     "command lines)"),
    ("metrics_file: klink_sync.prom\n", "metrics_file: must be an absolute path"),
    ("metrics_file: /var/lib/node-exporter/klink_sync.txt\n",
     "metrics_file: must end in .prom (node_exporter's textfile collector reads only *.prom "
     "files)"),
    ("ping_url: hc-ping.com/abc\n", "ping_url: must be an http:// or https:// URL"),
    ("log_level: verbose\n", "log_level: must be debug, info or warning"),
    ("excludes:\n  ./storage/data: cache/\n",
     "excludes['./storage/data']: must be a list of patterns, like [cache/, '*.tmp']"),
    ("dest: /mnt/a\ndest: /mnt/b\n", "dest: given twice (line 2); keep one"),
    ("dest: [/mnt/a\n", "not valid YAML (line 2)"),
    ("- dest: /mnt/a\n", "the config must be a mapping of options"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "message"), BAD_CONFIGS, ids=[m for _, m in BAD_CONFIGS])
def test_config_check_names_the_file_the_key_and_the_reason(tmp_path, text, message):
    path = tmp_path / "config.yml"
    path.write_text(text)
    proc = run_cli("config", "check", path, check=2)
    assert proc.stderr.splitlines() == [f"{path}: {message}", f"{path}: 1 problem"]
    assert proc.stdout == ""


def test_config_check_reports_every_problem(tmp_path):
    path = _config(tmp_path / "config.yml", """\
        stop_timout: 60
        start_timeout: "300"
        volumes:
          - service: kbox
            class: lukewarm
            path: /x
        retention: {keep_daily: -1, keep_yearly: 2}
        hooks:
          before: logger starting
          after: [[], [logger, ok], [logger, {a: 1}]]
        metrics_file: klink_sync.prom
        ping_url: hc-ping.com/abc
        log_level: verbose
        dest: /mnt/a
        dest: /mnt/b
    """)  # fmt: skip
    proc = run_cli("config", "check", path, check=2)
    assert proc.stderr.splitlines() == [f"{path}: {m}" for m in [
        "dest: given twice (line 15); keep one",
        "unknown key 'stop_timout'",
        "start_timeout: must be a number",
        "volumes[0]: unknown key 'path'",
        "volumes[0].class: must be hot, cold or skip",
        "retention: unknown key 'keep_yearly'",
        "retention.keep_daily: must be a whole number >= 0",
        "hooks.before: a string runs through the shell only with hooks.shell: true; give an "
        "argv list like [logger, backup done]",
        "hooks.after[0]: empty command",
        "hooks.after[2][1]: must be a string",
        "metrics_file: must be an absolute path",
        "ping_url: must be an http:// or https:// URL",
        "log_level: must be debug, info or warning",
    ]] + [f"{path}: 13 problems"]  # fmt: skip


def test_a_run_with_a_bad_config_names_the_first_problem_and_the_checker(tmp_path):
    path = tmp_path / "config.yml"
    path.write_text("stop_timout: 60\nlog_level: loud\n")
    proc = run_cli("hot-cold", "--config", path, "--folder", tmp_path, check=2)
    assert proc.stderr.strip() == (f"klink-sync: error: {path}: unknown key 'stop_timout' "
                                   f"(and 1 more: klink-sync config check {path})")  # fmt: skip


def test_config_check_of_a_missing_file(tmp_path):
    proc = run_cli("config", "check", tmp_path / "nope.yml", check=2)
    assert f"{tmp_path}/nope.yml: cannot read config: No such file or directory" in proc.stderr


# --- runs: metrics, hooks, pings ----------------------------------------------------------------


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return make_deployment(tmp_path)


def _families(path: Path) -> dict[str, list]:
    """name -> samples, parsed by Prometheus' own text-format parser."""
    families = {f.name: f for f in text_string_to_metric_families(path.read_text())}
    return {name: f.samples for name, f in families.items()}


def _value(samples: list, **labels: str) -> float:
    found = [s.value for s in samples if all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(found) == 1, (labels, samples)
    return found[0]


def test_metrics_after_a_successful_and_a_failed_run(folder, tmp_path, klink_env):
    set_running(klink_env, ALL)
    dest, prom = tmp_path / "backup", tmp_path / "textfile" / "klink_sync.prom"
    prom.parent.mkdir()
    config = _config(tmp_path / "config.yml", f"dest: {dest}\nmetrics_file: {prom}\n")
    began = time.time()
    report = json.loads(run_cli("hot-cold", "--folder", folder, "--config", config, "--json",
                                env=klink_env).stdout)  # fmt: skip
    m = _families(prom)
    d = {"dest": str(dest)}
    assert _value(m["klink_sync_last_run_success"], **d) == 1
    ran = _value(m["klink_sync_last_run_timestamp_seconds"], **d)
    assert began <= ran <= time.time()
    assert _value(m["klink_sync_last_success_timestamp_seconds"], **d) == ran
    assert _value(m["klink_sync_downtime_seconds"], **d) == pytest.approx(
        report["downtime_seconds"])
    phases = {s.labels["phase"]: s.value for s in m["klink_sync_phase_duration_seconds"]}
    assert set(phases) == {*report["phases"], "checksums"}
    assert phases["cold"] == pytest.approx(report["phases"]["cold"])
    moved = {s.labels["pass"]: s.value for s in m["klink_sync_transferred_bytes"]}
    assert moved == {"hot": report["bytes_moved"]["hot"], "cold": report["bytes_moved"]["cold"]}
    assert moved["hot"] > 500_000
    source_bytes = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    assert _value(m["klink_sync_snapshot_size_bytes"], **d) == source_bytes
    assert _value(m["klink_sync_snapshots_total"], **d) == 1
    assert "# TYPE klink_sync_last_run_success gauge" in prom.read_text()
    assert "# HELP klink_sync_downtime_seconds " in prom.read_text()
    assert oct(prom.stat().st_mode & 0o777) == "0o644"
    assert ROOT_PASSWORD not in prom.read_text()

    # a failed run: success 0, a new run time, the last success kept from before
    time.sleep(0.05)
    failing = {**klink_env, "FAKE_COMPOSE_FAIL": "stop"}
    run_cli("hot-cold", "--folder", folder, "--config", config, env=failing, check=1)
    m2 = _families(prom)
    assert _value(m2["klink_sync_last_run_success"], **d) == 0
    assert _value(m2["klink_sync_last_run_timestamp_seconds"], **d) > ran
    assert _value(m2["klink_sync_last_success_timestamp_seconds"], **d) == ran
    assert _value(m2["klink_sync_snapshots_total"], **d) == 1
    assert "klink_sync_downtime_seconds" not in m2  # no snapshot: nothing to say
    assert [p.name for p in prom.parent.iterdir()] == ["klink_sync.prom"]  # no temp file left


def test_metrics_of_a_first_run_that_fails(folder, tmp_path, klink_env):
    set_running(klink_env, ALL)
    prom = tmp_path / "klink_sync.prom"
    config = _config(tmp_path / "config.yml", f"dest: {tmp_path}/b\nmetrics_file: {prom}\n")
    run_cli("cold", "--folder", folder, "--config", config,
            env={**klink_env, "FAKE_COMPOSE_FAIL": "stop"}, check=1)  # fmt: skip
    m = _families(prom)
    assert _value(m["klink_sync_last_run_success"]) == 0
    assert "klink_sync_last_success_timestamp_seconds" not in m
    assert _value(m["klink_sync_snapshots_total"]) == 0


def test_a_metrics_file_that_cannot_be_written_is_only_a_warning(folder, tmp_path, klink_env):
    set_running(klink_env, ALL)
    prom = tmp_path / "no-such-dir" / "klink_sync.prom"
    config = _config(tmp_path / "config.yml", f"dest: {tmp_path}/b\nmetrics_file: {prom}\n")
    proc = run_cli("hot-cold", "--folder", folder, "--config", config, env=klink_env)
    assert f"metrics file {prom} not written" in proc.stderr


ENV_DUMP = [sys.executable, "-c",
            "import json, os, sys; json.dump({k: v for k, v in os.environ.items() "
            "if k.startswith('KLINK_SYNC_')}, open(sys.argv[1], 'w'))"]  # fmt: skip


def _hooks_config(tmp_path: Path, dest: Path, before: list, after: list, extra: str = "") -> Path:
    hooks = {
        "before": before,
        "after": after,
        "on_failure": [[*ENV_DUMP, str(tmp_path / "on_failure.json")]],
    }
    text = yaml.safe_dump({"dest": str(dest), "hooks": hooks}) + extra
    return _config(tmp_path / "config.yml", text)


def _dumped(path: Path) -> dict:
    data = json.loads(path.read_text())
    data.pop("KLINK_SYNC_COMPOSE", None)  # the stand-in compose, from the test's environment
    data.pop("KLINK_SYNC_STATE_DIR", None)  # the tests' own state folder, likewise
    return data


def test_hooks_get_the_documented_variables(folder, tmp_path, klink_env):
    set_running(klink_env, ALL)
    dest = tmp_path / "backup"
    config = _hooks_config(tmp_path, dest, before=[[*ENV_DUMP, str(tmp_path / "before.json")]],
                           after=[[*ENV_DUMP, str(tmp_path / "after.json")]])  # fmt: skip
    report = json.loads(run_cli("hot-cold", "--folder", folder, "--config", config, "--json",
                                env=klink_env).stdout)  # fmt: skip
    assert _dumped(tmp_path / "before.json") == {
        "KLINK_SYNC_STATUS": "starting", "KLINK_SYNC_MODE": "hot-cold",
        "KLINK_SYNC_SNAPSHOT": "", "KLINK_SYNC_DOWNTIME_SECONDS": "",
        "KLINK_SYNC_RECOVERED": "",
        "KLINK_SYNC_EXIT_CODE": "", "KLINK_SYNC_DEST": str(dest),
        "KLINK_SYNC_FOLDER": str(folder), "KLINK_SYNC_ERROR": "", "KLINK_SYNC_OFFSITE": "",
    }  # fmt: skip
    after = _dumped(tmp_path / "after.json")
    assert after == {
        "KLINK_SYNC_STATUS": "ok", "KLINK_SYNC_MODE": "hot-cold",
        "KLINK_SYNC_SNAPSHOT": report["snapshot"],
        "KLINK_SYNC_DOWNTIME_SECONDS": f"{report['downtime_seconds']:.3f}",
        "KLINK_SYNC_RECOVERED": "",
        "KLINK_SYNC_EXIT_CODE": "0", "KLINK_SYNC_DEST": str(dest),
        "KLINK_SYNC_FOLDER": str(folder), "KLINK_SYNC_ERROR": "", "KLINK_SYNC_OFFSITE": "",
    }  # fmt: skip
    assert (dest / "snapshots" / after["KLINK_SYNC_SNAPSHOT"] / "manifest.json").is_file()
    assert not (tmp_path / "on_failure.json").exists()


def test_on_failure_hook_gets_the_error_and_exit_code(folder, tmp_path, klink_env):
    set_running(klink_env, ALL)
    dest = tmp_path / "backup"
    config = _hooks_config(tmp_path, dest, before=[], after=[])
    failing = {**klink_env, "FAKE_COMPOSE_FAIL": "stop"}
    proc = run_cli("hot-cold", "--folder", folder, "--config", config, env=failing, check=1)
    env = _dumped(tmp_path / "on_failure.json")
    assert env["KLINK_SYNC_STATUS"] == "failed" and env["KLINK_SYNC_EXIT_CODE"] == "1"
    assert env["KLINK_SYNC_SNAPSHOT"] == "" and env["KLINK_SYNC_DOWNTIME_SECONDS"] == ""
    assert "stop failed" in env["KLINK_SYNC_ERROR"]
    assert env["KLINK_SYNC_ERROR"] in proc.stderr
    assert env["KLINK_SYNC_DEST"] == str(dest) and env["KLINK_SYNC_FOLDER"] == str(folder)


def test_a_failing_before_hook_leaves_the_stack_untouched(folder, tmp_path, klink_env):
    set_running(klink_env, ALL)
    dest = tmp_path / "backup"
    config = _hooks_config(tmp_path, dest, after=[[*ENV_DUMP, str(tmp_path / "after.json")]],
                           before=[["sh", "-c", "echo disk not mounted >&2; exit 3"]])  # fmt: skip
    proc = run_cli("hot-cold", "--folder", folder, "--config", config, env=klink_env, check=1)
    assert "error: before hook failed: sh -c" in proc.stderr
    assert "(exit 3): disk not mounted" in proc.stderr
    log = Path(klink_env["FAKE_COMPOSE_LOG"])
    calls = log.read_text().splitlines() if log.exists() else []
    assert not [c for c in calls if " stop" in f" {c}" or " start" in f" {c}"], calls
    assert running(klink_env) == ALL
    assert not (dest / "snapshots").exists() or not list((dest / "snapshots").iterdir())
    assert not (tmp_path / "after.json").exists()
    failed = _dumped(tmp_path / "on_failure.json")
    assert failed["KLINK_SYNC_STATUS"] == "failed"
    assert failed["KLINK_SYNC_ERROR"].startswith("before hook failed: sh -c")


def test_a_hook_that_kills_its_process_group_leaves_klink_sync_to_report(
    folder, tmp_path, klink_env
):
    """`trap 'kill 0' EXIT` (a script ending its children) kills the hook's own group:
    klink-sync, started as a service is (a session of its own), still reports the
    failure: its error line, exit 1, the metrics."""
    set_running(klink_env, ALL)
    metrics = tmp_path / "klink-sync.prom"
    config = tmp_path / "config.yml"
    config.write_text(yaml.safe_dump({
        "dest": str(tmp_path / "backup"), "metrics_file": str(metrics),
        "hooks": {"before": [["sh", "-c", "exit 3"]],
                  "on_failure": [["sh", "-c", "trap 'kill 0' EXIT; true"]]}}))  # fmt: skip
    proc = subprocess.run([KLINK_SYNC, "hot-cold", "--folder", folder, "--config", config],
                          env={**os.environ, **klink_env}, capture_output=True, text=True,
                          timeout=120, start_new_session=True)  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert "error: before hook failed: sh -c" in proc.stderr
    assert re.search(r"^klink_sync_last_run_success\{[^}]*\} 0$", metrics.read_text(), re.M)
    assert running(klink_env) == ALL


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGHUP"])
def test_a_signal_during_a_hook_ends_the_hook_and_the_run_is_reported(
    folder, tmp_path, klink_env, sig
):
    """Review: a hook runs in a session of its own; a SIGTERM to klink-sync (or a hang-up
    of its terminal) during a hook left the hook running on its own, and the run ended
    with no error line, no on_failure hook, no metrics."""
    import signal

    set_running(klink_env, ALL)
    metrics, marker, started = (tmp_path / n for n in ("klink-sync.prom", "late", "began"))
    config = tmp_path / "config.yml"
    hook = f": > {started}; sleep 4; : > {marker}"
    config.write_text(yaml.safe_dump({"dest": str(tmp_path / "backup"),
                                      "metrics_file": str(metrics),
                                      "hooks": {"shell": True, "before": [hook]}}))  # fmt: skip
    proc = subprocess.Popen([KLINK_SYNC, "hot-cold", "--folder", folder, "--config", config],
                            env={**os.environ, **klink_env}, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 30
    while not started.exists():
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    proc.send_signal(getattr(signal, sig))
    _, stderr = proc.communicate(timeout=30)
    time.sleep(5)  # the hook would have written its marker by now
    assert not marker.exists(), "the hook went on after klink-sync ended"
    assert proc.returncode == 1, stderr
    assert f"interrupted by {sig}" in stderr
    assert re.search(r"^klink_sync_last_run_success\{[^}]*\} 0$", metrics.read_text(), re.M)
    assert running(klink_env) == ALL


def test_a_signal_during_the_on_failure_hook_keeps_the_failure_and_its_report(
    folder, tmp_path, klink_env
):
    """Review: a SIGTERM in an on_failure hook replaced the run's error (services still
    down, and the command to start them) by "interrupted", and the metrics were never
    written."""
    import signal

    set_running(klink_env, ALL)
    metrics, started = tmp_path / "klink-sync.prom", tmp_path / "began"
    config = tmp_path / "config.yml"
    config.write_text(yaml.safe_dump({"dest": str(tmp_path / "backup"), "start_timeout": 2,
                                      "metrics_file": str(metrics),
                                      "hooks": {"shell": True,
                                                "on_failure": [f": > {started}; sleep 5"]}}))
    env = {**os.environ, **klink_env, "FAKE_COMPOSE_FAIL": "start"}
    proc = subprocess.Popen([KLINK_SYNC, "hot-cold", "--folder", folder, "--config", config],
                            env=env, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 60
    while not started.exists():
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 70, stderr
    assert "services still down" in stderr and "start them now with" in stderr
    assert re.search(r"^klink_sync_last_run_success\{[^}]*\} 0$", metrics.read_text(), re.M)


def test_a_failing_after_hook_fails_the_run_and_keeps_the_snapshot(folder, tmp_path, klink_env):
    set_running(klink_env, ALL)
    dest = tmp_path / "backup"
    config = _hooks_config(tmp_path, dest, before=[], after=[["false"]])
    proc = run_cli("hot-cold", "--folder", folder, "--config", config, env=klink_env, check=1)
    assert "error: after hook failed: false failed (exit 1)" in proc.stderr
    failed = _dumped(tmp_path / "on_failure.json")
    assert failed["KLINK_SYNC_STATUS"] == "failed"
    assert (dest / "snapshots" / failed["KLINK_SYNC_SNAPSHOT"] / "manifest.json").is_file()
    assert os.readlink(dest / "latest").endswith(failed["KLINK_SYNC_SNAPSHOT"])


def test_shell_hooks_only_with_shell_true(folder, tmp_path, klink_env):
    set_running(klink_env, ALL)
    out = tmp_path / "shell.txt"
    config = _config(tmp_path / "config.yml", f"""\
        dest: {tmp_path}/backup
        hooks:
          shell: true
          after: echo "$KLINK_SYNC_STATUS $KLINK_SYNC_SNAPSHOT" > '{out}'
    """)  # fmt: skip
    report = json.loads(run_cli("hot-cold", "--folder", folder, "--config", config, "--json",
                                env=klink_env).stdout)  # fmt: skip
    assert out.read_text() == f"ok {report['snapshot']}\n"


class _Pings(http.server.BaseHTTPRequestHandler):
    seen: list[str] = []

    def do_GET(self):  # noqa: N802
        self.seen.append(self.path)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"OK")

    def log_message(self, *args):  # quiet
        pass


@pytest.fixture
def ping_server():
    _Pings.seen = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Pings)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/ping/abc-123", _Pings.seen
    server.shutdown()
    server.server_close()


def test_ping_url_start_then_success(folder, tmp_path, klink_env, ping_server):
    url, seen = ping_server
    set_running(klink_env, ALL)
    config = _config(tmp_path / "config.yml", f"dest: {tmp_path}/b\nping_url: {url}\n")
    run_cli("hot-cold", "--folder", folder, "--config", config, env=klink_env)
    assert seen == ["/ping/abc-123/start", "/ping/abc-123"]


def test_ping_url_start_then_fail(folder, tmp_path, klink_env, ping_server):
    url, seen = ping_server
    set_running(klink_env, ALL)
    config = _config(tmp_path / "config.yml", f"dest: {tmp_path}/b\nping_url: {url}/\n")
    run_cli("hot-cold", "--folder", folder, "--config", config,
            env={**klink_env, "FAKE_COMPOSE_FAIL": "stop"}, check=1)  # fmt: skip
    assert seen == ["/ping/abc-123/start", "/ping/abc-123/fail"]


def test_a_dead_ping_url_is_only_a_warning(folder, tmp_path, klink_env):
    set_running(klink_env, ALL)
    with __import__("socket").socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = _config(tmp_path / "config.yml",
                     f"dest: {tmp_path}/b\nping_url: http://127.0.0.1:{port}/x\n")  # fmt: skip
    proc = run_cli("hot-cold", "--folder", folder, "--config", config, env=klink_env)
    assert f"ping http://127.0.0.1:{port}/x/start failed" in proc.stderr
    assert f"ping http://127.0.0.1:{port}/x failed" in proc.stderr


def test_a_hanging_ping_gives_up_after_five_seconds(folder, tmp_path, klink_env):
    set_running(klink_env, ALL)
    with __import__("socket").socket() as s:  # accepts connections, never answers
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        url = f"http://127.0.0.1:{s.getsockname()[1]}/x"
        config = _config(tmp_path / "config.yml", f"dest: {tmp_path}/b\nping_url: {url}\n")
        began = time.monotonic()
        proc = run_cli("hot-cold", "--folder", folder, "--config", config, env=klink_env)
        took = time.monotonic() - began
    assert "timed out" in proc.stderr
    assert took < 30  # two pings of 5 s each, plus the run


def test_dry_run_runs_no_hooks_and_writes_no_metrics(folder, tmp_path, klink_env):
    set_running(klink_env, ALL)
    prom = tmp_path / "klink_sync.prom"
    config = _hooks_config(tmp_path, tmp_path / "b", before=[["false"]], after=[],
                           extra=f"metrics_file: {prom}\n")  # fmt: skip
    run_cli("hot-cold", "--folder", folder, "--config", config, "--dry-run", env=klink_env)
    assert not prom.exists() and not (tmp_path / "on_failure.json").exists()


def test_log_level_from_the_config_and_the_environment(folder, tmp_path, klink_env):
    set_running(klink_env, ALL)
    config = _config(tmp_path / "config.yml", f"dest: {tmp_path}/b\nlog_level: warning\n")
    quiet = run_cli("hot-cold", "--folder", folder, "--config", config, env=klink_env)
    assert " INFO " not in quiet.stderr
    loud = run_cli("hot-cold", "--folder", folder, "--config", config,
                   env={**klink_env, "KLINK_SYNC_LOG_LEVEL": "debug"})  # fmt: skip
    assert " DEBUG " in loud.stderr
    flag = run_cli("hot-cold", "--folder", folder, "--config", config, "-v", env=klink_env)
    assert " DEBUG " in flag.stderr


def test_the_readme_config_examples_pass_config_check(tmp_path):
    import re

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", readme, re.S)
    assert len(blocks) >= 2
    for i, block in enumerate(blocks):
        path = tmp_path / f"readme-{i}.yml"
        path.write_text(block)
        assert run_cli("config", "check", path).stdout == f"{path}: ok\n"


def test_config_check_takes_the_file_from_klink_sync_config(tmp_path):
    path = tmp_path / "config.yml"
    path.write_text("log_level: info\n")
    proc = run_cli("config", "check", env={"KLINK_SYNC_CONFIG": str(path)})
    assert proc.stdout == f"{path}: ok\n"
