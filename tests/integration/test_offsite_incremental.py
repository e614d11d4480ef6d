"""An offsite push after 1% of the documents changed reads and uploads only what changed.

Each new snapshot hard-links the files it shares with the previous one (their ctime moves)
and has a new name (its path moves): the push must still neither re-read nor re-upload
them. Real restic, a real repository on disk, the real command with a stand-in compose;
restic's read bytes come from its own /proc/PID/io (`read_bytes`: what it fetched from the
disk, the page cache dropped just before it starts, restic's own program read back in),
read before it is reaped.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

from tests.conftest import run_cli
from tests.integration.test_hot_cold import ALL, make_deployment, set_running

DOCUMENTS, SIZE = 200, 512 * 1024
WRAPPER = """#!{python}
import os, subprocess, sys
if "backup" in sys.argv:  # what restic reads must come from the disk, not the page cache
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as caches:
        caches.write("1")  # the page cache: file contents; stat() stays cheap
    with open("{restic}", "rb") as program:  # its own code is not what the test counts
        while program.read(1 << 20):
            pass
child = subprocess.Popen(["{restic}", *sys.argv[1:]])
os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # exited, not reaped: /proc is there
with open(f"/proc/{{child.pid}}/io") as f:
    io = dict(line.split(": ") for line in f.read().splitlines())
if "backup" in sys.argv:
    with open(os.environ["KLINK_TEST_IO_LOG"], "a") as log:
        log.write(io["read_bytes"].strip() + "\\n")
sys.exit(child.wait())
"""


def _restic_that_reports_its_reads(bin_dir: Path, log: Path) -> dict[str, str]:
    bin_dir.mkdir()
    wrapper = bin_dir / "restic"
    wrapper.write_text(WRAPPER.format(python=shutil.which("python3"),
                                      restic=shutil.which("restic")))  # fmt: skip
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return {"PATH": f"{bin_dir}:{os.environ['PATH']}", "KLINK_TEST_IO_LOG": str(log)}


def _config(tmp_path: Path, folder: Path) -> Path:
    password = tmp_path / "restic-password"
    password.write_text("a restic password for the incremental test\n")
    password.chmod(0o600)
    config = tmp_path / "config.yml"
    lines = [f"folder: {folder}", f"dest: {tmp_path / 'backup'}", "offsite:",
             f"  repository: {tmp_path / 'repo'}", f"  password_file: {password}"]
    config.write_text("\n".join(lines) + "\n")
    return config


def _backup(config: Path, env: dict) -> dict:
    proc = run_cli("hot-cold", "--config", config, "--json", env=env)
    report = json.loads(proc.stdout)
    assert report["offsite"]["result"] == "ok", report["offsite"]
    return report


def test_a_push_after_one_percent_changed_reads_and_adds_only_that(tmp_path, klink_env):
    folder = make_deployment(tmp_path)
    docs = folder / "storage" / "data" / "docs"
    docs.mkdir()
    for i in range(DOCUMENTS):
        (docs / f"doc-{i:04d}.bin").write_bytes(os.urandom(SIZE))
    config = _config(tmp_path, folder)
    io_log = tmp_path / "restic-io.log"
    env = {**klink_env, **_restic_that_reports_its_reads(tmp_path / "bin", io_log)}
    set_running(env, ALL)
    run_cli("offsite", "init", "--config", config, env=env)
    first = _backup(config, env)
    assert first["offsite"]["files_new"] > DOCUMENTS

    changed = DOCUMENTS // 100
    for i in range(changed):
        (docs / f"doc-{i:04d}.bin").write_bytes(os.urandom(SIZE))
    second = _backup(config, env)
    pushed = second["offsite"]
    snapshot = tmp_path / "backup" / "snapshots" / second["snapshot"]
    # what changed: the documents, and the snapshot's own record (manifest, checksums, index)
    own = sum((snapshot / n).stat().st_size for n in os.listdir(snapshot) if n != "folder"
              and (snapshot / n).is_file())  # fmt: skip
    changed_bytes = changed * SIZE + own
    files = sum(len(f) for _, _, f in os.walk(snapshot))
    assert pushed["files_unmodified"] >= files - changed - 4, pushed  # 4: the snapshot's own
    assert pushed["added_bytes"] <= 2 * changed_bytes + 2**20, pushed
    reads = [int(line) for line in io_log.read_text().split()]
    assert len(reads) == 2 and reads[0] > DOCUMENTS * SIZE  # the first push read it all
    assert reads[1] <= 3 * changed_bytes, (reads, changed_bytes)
