"""A named Docker volume: its host path is asked of Docker at run time."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from tests.conftest import run_cli
from tests.e2e.conftest import compose, running_services

COMPOSE = """
services:
  kbox:
    image: klink-sample/base:bookworm
    command: ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 0.2; done"]
    volumes:
      - docs:/var/www/dms/storage
      - ./config:/etc/kbox:ro
volumes:
  docs:
"""


def test_named_volume_is_resolved_and_copied(tmp_path: Path, compose_cmd: str):
    folder = tmp_path / f"named-{os.getpid()}"
    (folder / "config").mkdir(parents=True)
    (folder / "config" / "app.ini").write_text("[app]\n")
    (folder / "docker-compose.yml").write_text(COMPOSE)
    compose(folder, compose_cmd, "up", "-d")
    try:
        content = os.urandom(4096).hex()
        subprocess.run(
            [*compose_cmd.split(), "exec", "-T", "kbox", "sh", "-c",
             f"echo {content} > /var/www/dms/storage/doc.txt"],
            cwd=folder, check=True,
        )  # fmt: skip
        dest = tmp_path / "backup"
        proc = run_cli("hot-cold", "--folder", folder, "--dest", dest, "--json",
                       env={"KLINK_SYNC_COMPOSE": compose_cmd})  # fmt: skip
        report = json.loads(proc.stdout)
        assert report["services_after"] == ["kbox"] == running_services(folder, compose_cmd)
        snap = dest / "latest"
        assert (snap / "volumes/docs/doc.txt").read_text().strip() == content
        assert (snap / "folder/config/app.ini").read_text() == "[app]\n"
        manifest = json.loads((snap / "manifest.json").read_text())
        unit = next(u for u in manifest["units"] if u["dest"] == "volumes/docs")
        assert unit["type"] == "volume" and unit["class"] == "hot"
        assert unit["host_path"].endswith(f"/{folder.name}_docs/_data")
    finally:
        compose(folder, compose_cmd, "down", "-v", "-t", "5")
