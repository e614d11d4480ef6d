"""No password from the compose or env files in any output, log, report or metrics."""

from __future__ import annotations

import gzip
from pathlib import Path

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
