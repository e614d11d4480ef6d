"""No password from the compose or env files in any output, log, report or metrics."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from tests.conftest import run_cli

PASSWORDS = ("s3cret-db-pass-7f3a", "s3cret-root-pass-91bc")


def test_no_secret_in_any_output_log_manifest_or_metrics(sample_stack, compose_cmd, tmp_path):
    env = {"KLINK_SYNC_COMPOSE": compose_cmd}
    dest = tmp_path / "backup"
    metrics = tmp_path / "klink-sync.prom"
    config = tmp_path / "config.yml"
    config.write_text(f"metrics_file: {metrics}\nretention:\n  keep_last: 5\n")
    common = ["--folder", sample_stack, "--config", config]
    runs = [
        run_cli("plan", *common, "-v", env=env),
        run_cli("plan", *common, "--json", env=env),
        run_cli("hot-cold", *common, "--dest", dest, "-v", env=env),
        run_cli("hot-cold", *common, "--dest", dest, "--json", "-v", env=env),
        run_cli("hot-cold", *common, "--dest", dest, "--dry-run", env=env),
        run_cli("cold", *common, "--dest", dest, "-v", env=env),
        run_cli("snapshots", "--dest", dest, "--json", env=env),
        run_cli("verify", "--dest", dest, "--all", env=env),
        run_cli("prune", "--dest", dest, "--config", config, "-v", env=env),
        run_cli("restore", "--dest", dest, "--folder", tmp_path / "elsewhere", "--dry-run",
                env=env),
        run_cli("hot-cold", *common, "--dest", dest, "-v",
                env={**env, "KLINK_SYNC_COMPOSE": "false"}, check=1),  # a failed run too
    ]  # fmt: skip
    texts = {f"run {i}": r.stdout + r.stderr for i, r in enumerate(runs)}
    assert any("rsync -aHAX" in t for t in texts.values()), "-v shows the commands"
    for snap in (dest / "snapshots").iterdir():
        for name in ("manifest.json", "SHA256SUMS", "verified.json"):
            if (snap / name).exists():
                texts[f"{snap.name}/{name}"] = (snap / name).read_text()
        with gzip.open(snap / "source-index.json.gz", "rt", errors="replace") as index:
            texts[f"{snap.name}/index"] = index.read()
        # the snapshot holds the .env itself (a backup is as secret as the deployment)
        assert PASSWORDS[0] in (snap / "folder/.env").read_text()
    texts["metrics"] = metrics.read_text()
    leaks = [(where, p) for where, text in texts.items() for p in PASSWORDS if p in text]
    assert leaks == []
    assert "klink_sync_last_run_success" in texts["metrics"]
    assert Path(dest / "latest").is_symlink()


# Compose quotes a bad value Go's way (strconv.Quote): a character Go does not count as
# printable is escaped in a form of its own (\u00a0, \v, \a, \x7f), never as JSON writes it;
# its tables are Go's (Unicode 15: 🛜 is printed as is), not Python's
GO_ESCAPED = ("\u00a0", "\v", "\a", "\x7f", "\x01", "\u2028", "\ue000", "\v\U0001f6dc")


@pytest.mark.parametrize("odd", GO_ESCAPED,
                         ids=["+".join(f"U{ord(c):04X}" for c in o) for o in GO_ESCAPED])
def test_a_password_compose_refuses_is_masked_as_compose_quotes_it(compose_cmd, tmp_path, odd):
    """The compose client refuses the .env before it asks Docker anything: its error, the
    run's error line and the on_failure hook's KLINK_SYNC_ERROR show no part of it."""
    folder = tmp_path / "k-link"
    (folder / "storage/database").mkdir(parents=True)
    (folder / "docker-compose.yml").write_text(
        "services:\n  database:\n    image: klink-sample/database\n"
        "    volumes: ['./storage/database:/var/lib/mysql']\n"
        "    environment:\n      MARIADB_ROOT_PASSWORD: ${DB_ROOT_PASSWORD}\n")  # fmt: skip
    (folder / ".env").write_text(f'DB_ROOT_PASSWORD="Zq9{odd}Lm4PwX${{x"\n')
    seen = tmp_path / "hook-saw"
    config = tmp_path / "config.yml"
    config.write_text("hooks:\n  shell: true\n"
                      f"  on_failure: ['printf %s \"$KLINK_SYNC_ERROR\" > {seen}']\n")  # fmt: skip
    proc = run_cli("hot-cold", "--folder", folder, "--dest", tmp_path / "backup", "--config",
                   config, "-v", env={"KLINK_SYNC_COMPOSE": compose_cmd}, check=None)  # fmt: skip
    said = proc.stdout + proc.stderr + seen.read_text()
    assert proc.returncode != 0 and "Invalid template" in said, said
    assert "Lm4PwX" not in said and "*****" in said, said
