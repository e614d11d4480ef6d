"""live.py and its command lines (pure parts): which unit is copied how, the login, the
defaults file, mariadb-backup's log, the docker argv."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from klink_sync import docker, live
from klink_sync.compose import load_deployment
from klink_sync.errors import UsageError
from klink_sync.models import Login, Mode
from klink_sync.plan import build_plan

SAMPLE = Path(__file__).resolve().parents[2] / "scripts" / "sample-stack" / "deploy"


def plan_of(tmp_path: Path, text: str):
    folder = tmp_path / "k-link"
    folder.mkdir()
    (folder / "docker-compose.yml").write_text(textwrap.dedent(text))
    return build_plan(load_deployment(folder), mode=Mode.LIVE)


K_BOX = """\
    services:
      database:
        image: mariadb:10.11
        environment: {MARIADB_ROOT_PASSWORD: "root-secret-1"}
        volumes: ["./storage/database:/var/lib/mysql", "./storage/conf:/etc/mysql/conf.d"]
      kbox:
        image: k-box
        volumes: ["./storage/data:/var/www/dms/storage"]
      engine:
        image: k-search-engine
        volumes: ["./storage/index:/opt/solr/k-search/k-search/data"]
      cache:
        image: something
        volumes: ["./storage/cache:/cache"]
    """


def test_the_index_and_other_services_cold_volumes_are_paused_the_documents_follow(tmp_path):
    sel = live.select(plan_of(tmp_path, K_BOX))
    assert (sel.database.dest, sel.service, sel.datadir) == (
        "folder/storage/database", "database", "/var/lib/mysql")  # fmt: skip
    assert [u.dest for u in sel.paused] == ["folder/storage/cache", "folder/storage/index"]
    assert sel.paused_services == ("cache", "engine")
    # the database's own config (cold, its service only), the setup folder, the documents
    assert sorted(u.dest for u in sel.after) == [
        "folder", "folder/storage/conf", "folder/storage/data"]  # fmt: skip


def test_a_mariadb_image_with_another_datadir_is_the_database(tmp_path):
    sel = live.select(plan_of(tmp_path, """\
        services:
          db:
            image: docker.io/library/mysql:8
            volumes: ["./mysql:/data/mysql"]
        """))  # fmt: skip
    assert (sel.service, sel.datadir) == ("db", "/data/mysql")


@pytest.mark.parametrize("volume", ["./pg:/var/lib/postgresql/data", "./pg:/data"])
def test_postgres_is_refused_naming_the_image_and_hot_cold(tmp_path, volume):
    plan = plan_of(tmp_path, f"""\
        services:
          db:
            image: postgres:15
            volumes: ["{volume}"]
          database:
            image: mariadb
            volumes: ["./db:/var/lib/mysql"]
        """)  # fmt: skip
    with pytest.raises(UsageError, match=r"image postgres:15.*hot-cold"):
        live.select(plan)


def test_no_database_or_two_are_refused(tmp_path):
    with pytest.raises(UsageError, match="has none: use hot-cold"):
        live.select(plan_of(tmp_path, """\
            services:
              kbox:
                image: k-box
                volumes: ["./data:/var/www/dms/storage"]
            """))  # fmt: skip


def test_a_sidecar_mounting_the_datadir_read_only_is_not_the_database(tmp_path):
    sel = live.select(plan_of(tmp_path, """\
        services:
          backupsidecar:
            image: some/tool
            volumes: ["dbdata:/var/lib/mysql:ro"]
          database:
            image: mariadb:10.11
            volumes: ["dbdata:/var/lib/mysql"]
        volumes:
          dbdata: {}
        """))  # fmt: skip
    assert sel.service == "database"


def test_a_second_mariadb_elsewhere_is_refused_not_copied_paused(tmp_path):
    with pytest.raises(UsageError, match=r"service otherdb \(image mariadb:10.11\) is another"):
        live.select(plan_of(tmp_path, """\
            services:
              database:
                image: mariadb:10.11
                volumes: ["./db:/var/lib/mysql"]
              otherdb:
                image: mariadb:10.11
                command: ["--datadir=/data"]
                volumes: ["./db2:/data"]
            """))  # fmt: skip


def test_the_documents_final_copy_keeps_files_deleted_since():
    """After the backup point a deleted document's row is in the database copy: its file
    must stay (no --delete); every other copy mirrors its source."""
    from klink_sync import rsync

    assert "--delete" in rsync.copy_argv("/a", "/b")
    assert "--delete" not in rsync.copy_argv("/a", "/b", delete=False)


def test_the_login_comes_from_the_database_services_environment():
    env = load_deployment(SAMPLE).environments["database"]
    login = live.login_from(env, "database")
    assert (login.user, login.password) == ("root", "s3cret-root-pass-91bc")
    assert "s3cret" not in repr(login)
    assert live.login_from({"MARIADB_ROOT_PASSWORD": "a", "MYSQL_ROOT_PASSWORD": "b"},
                           "db").password == "a"  # fmt: skip
    with pytest.raises(UsageError, match="database.password_file"):
        live.login_from({"MYSQL_PASSWORD": "x"}, "db")


def test_env_file_values_reach_the_service_environment_and_environment_wins(tmp_path):
    folder = tmp_path / "k"
    folder.mkdir()
    (folder / "db.env").write_text("MARIADB_ROOT_PASSWORD=from-env-file\nOTHER=1\n")
    (folder / ".env").write_text("ROOT=from-dotenv\n")
    (folder / "docker-compose.yml").write_text(textwrap.dedent("""\
        services:
          db:
            image: mariadb
            env_file: db.env
            environment: {OTHER: "${ROOT}"}
            volumes: ["./db:/var/lib/mysql"]
        """))  # fmt: skip
    env = load_deployment(folder).environments["db"]
    assert env == {"MARIADB_ROOT_PASSWORD": "from-env-file", "OTHER": "from-dotenv"}


def test_the_defaults_file_quotes_the_login_and_refuses_line_breaks():
    text = live.defaults_file_text(Login("root", 'p#ss "w\\rd'))
    # a quote inside is escaped: unescaped, MariaDB's option parser would end the value there
    # and read the rest after '#' as a comment
    assert text == '[client]\nuser="root"\npassword="p#ss \\"w\\\\rd"\n'
    with pytest.raises(UsageError, match="line break"):
        live.defaults_file_text(Login("root", "a\nb", "x"))


# mariadb-backup 10.11's own lines around the commit block (times: when each arrived)
LOG = [
    (10.0, "[00] 2026-11-30 20:25:08 Finished BACKUP STAGE BLOCK_DDL"),
    (10.5, "[00] 2026-11-30 20:25:09 Starting BACKUP STAGE BLOCK_COMMIT"),
    (10.52, "[00] 2026-11-30 20:25:09 Acquired locks for BACKUP STAGE BLOCK_COMMIT"),
    (10.6, "[00] 2026-11-30 20:25:09 Finishing BACKUP STAGE BLOCK_COMMIT"),
    (10.61, "[00] 2026-11-30 20:25:09 Starting BACKUP STAGE END"),
    (10.62, "[00] 2026-11-30 20:25:09 Executing BACKUP STAGE END"),
    (10.65, "[00] 2026-11-30 20:25:09 All tables unlocked"),
    (11.0, "[00] 2026-11-30 20:25:09 completed OK!"),
]


def test_the_commit_block_runs_from_its_request_to_the_tables_unlocked():
    block = live.commit_block(LOG)
    assert block.seconds == pytest.approx(0.15)
    assert block.backup_point == 10.52


def test_the_commit_block_without_the_unlock_line_ends_at_backup_stage_end():
    block = live.commit_block([x for x in LOG if "unlocked" not in x[1]])
    assert block.seconds == pytest.approx(0.12)
    assert live.commit_block(LOG[:1]) == live.CommitBlock(None, None)


def test_mariadb_backup_argv_keeps_the_login_in_the_defaults_file():
    argv = docker.mariadb_backup_argv("mariadb:10.11", "mariadb-backup", "abc123", "/d/.scr",
                                      "/var/lib/klink-sync/live-1.cnf", "/var/lib/mysql",
                                      "172.20.0.2", "klink-sync-live-1-backup")  # fmt: skip
    assert argv == (
        "docker", "run", "--rm", "--name", "klink-sync-live-1-backup",
        "--network", "container:abc123", "--volumes-from", "abc123",
        "-v", "/d/.scr:/klink-sync-backup",
        "-v", "/var/lib/klink-sync/live-1.cnf:/run/klink-sync/client.cnf:ro",
        "--entrypoint", "mariadb-backup", "mariadb:10.11",
        "--defaults-extra-file=/run/klink-sync/client.cnf", "--backup",
        "--target-dir=/klink-sync-backup/data", "--datadir=/var/lib/mysql",
        "--host=172.20.0.2",
    )  # fmt: skip
    assert docker.mariadb_prepare_argv("m", "mariabackup", "/s", "n")[-3:] == (
        "m", "--prepare", "--target-dir=/klink-sync-backup/data")  # fmt: skip
    assert docker.chown_argv("m", "/s", 100, 101, "n")[-3:] == (
        "-R", "100:101", "/klink-sync-backup/data")  # fmt: skip
    assert docker.which_backup_argv("m") == (
        "docker", "run", "--rm", "--entrypoint", "sh", "m", "-c",
        "command -v mariadb-backup || command -v mariabackup")  # fmt: skip
    assert docker.pause_argv(["a", "b"]) == ("docker", "pause", "a", "b")
