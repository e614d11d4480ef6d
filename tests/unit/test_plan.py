"""plan.py: deployments read from real compose files -> copy units, classes, excludes, steps."""

from __future__ import annotations

import os
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

from klink_sync.classify import ANONYMOUS_REASON, DEFAULT_REASON, Override
from klink_sync.compose import load_deployment
from klink_sync.destination.local import LocalDestination
from klink_sync.models import Phase, Source, VolumeClass, VolumeType
from klink_sync.plan import CopyUnit, Mode, Plan, build_plan
from klink_sync.steps import copy_step, landing

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
HOT, COLD, SKIP = VolumeClass.HOT, VolumeClass.COLD, VolumeClass.SKIP
BIND, NAMED, ANON = VolumeType.BIND, VolumeType.VOLUME, VolumeType.ANONYMOUS

MYSQL = "container path /var/lib/mysql is a MariaDB/MySQL database"
DMS = "container path /var/www/dms/storage is the K-Box document storage"
INDEX = "container path /opt/solr/k-search/k-search/data is the Solr search index"
DOWNLOADS = "container path /var/www/k-search/var/data-downloads is the K-Search downloads"
FOLDER_REASON = "the setup folder: compose and env files, relative volumes"


def real_world(tmp_path: Path, fixture: str, folder_name: str = "k-link") -> Path:
    folder = tmp_path / folder_name
    folder.mkdir()
    shutil.copy(FIXTURES / fixture, folder / "docker-compose.yml")
    return folder


def compose(tmp_path: Path, text: str, folder_name: str = "k-link") -> Path:
    folder = tmp_path / folder_name
    folder.mkdir()
    (folder / "docker-compose.yml").write_text(textwrap.dedent(text))
    return folder


def plan_of(folder: Path, *overrides: Override, mode: Mode = Mode.HOT_COLD, **kw) -> Plan:
    return build_plan(load_deployment(folder, **kw), overrides, mode=mode)


def units(plan: Plan) -> dict[str, tuple[str, VolumeClass, tuple[str, ...]]]:
    """dest -> (source, class, excludes)."""
    return {u.dest: (u.source, u.cls, u.excludes) for u in plan.units}


def unit(plan: Plan, dest: str) -> CopyUnit:
    return next(u for u in plan.units if u.dest == dest)


# --- the real-world examples -------------------------------------------------------------


def test_k_box_example(tmp_path: Path) -> None:
    folder = real_world(tmp_path, "k-box.docker-compose.example.yml")
    plan = plan_of(folder)
    f = str(folder)

    assert plan.folder == folder
    assert plan.compose_files == (folder / "docker-compose.yml",)
    assert plan.project_name == "k-link"
    assert plan.mode is Mode.HOT_COLD
    assert plan.stop_timeout == 120
    assert units(plan) == {
        "folder": (f, COLD, ("storage/data", "storage/database", "storage/index")),
        "folder/storage/data": (f"{f}/storage/data", HOT, ()),
        "folder/storage/database": (f"{f}/storage/database", COLD, ()),
        "folder/storage/index": (f"{f}/storage/index", HOT, ()),
    }
    assert [u.dest for u in plan.units] == list(units(plan))  # folder first, then by source
    assert unit(plan, "folder").reason == FOLDER_REASON
    assert unit(plan, "folder/storage/database").reason == MYSQL
    assert unit(plan, "folder/storage/data").reason == DMS
    assert unit(plan, "folder/storage/index").reason == INDEX
    assert all(u.type is BIND and u.volume_names == () for u in plan.units)
    assert [u.dest for u in plan.hot_units] == ["folder/storage/data", "folder/storage/index"]
    assert {(c.volume.service, c.volume.target, c.cls) for c in plan.volumes} == {
        ("engine", "/opt/solr/k-search/k-search/data", HOT),
        ("database", "/var/lib/mysql", COLD),
        ("kbox", "/var/www/dms/storage", HOT),
    }


def test_k_link_example(tmp_path: Path) -> None:
    folder = real_world(tmp_path, "k-link.docker-compose.example.yml", "deploy")
    plan = plan_of(folder)
    f = str(folder)

    assert plan.project_name == "deploy"
    assert units(plan) == {
        "folder": (f, COLD, ("storage/data", "storage/database", "storage/index")),
        "folder/storage/data": (f"{f}/storage/data", HOT, ()),
        "folder/storage/database": (f"{f}/storage/database", COLD, ()),
        "folder/storage/index": (f"{f}/storage/index", HOT, ()),
    }
    assert unit(plan, "folder/storage/data").reason == DOWNLOADS
    assert [u.dest for u in plan.hot_units] == ["folder/storage/data", "folder/storage/index"]


def test_k_box_dev_example_has_only_anonymous_volumes(tmp_path: Path) -> None:
    folder = real_world(tmp_path, "k-box.docker-compose.dev.example.yml")
    plan = plan_of(folder)

    assert units(plan) == {"folder": (str(folder), COLD, ())}
    assert plan.hot_units == ()
    assert {(c.volume.target, c.volume.type, c.cls, c.reason) for c in plan.volumes} == {
        ("/var/lib/mysql", ANON, SKIP, ANONYMOUS_REASON),
        ("/opt/solr/k-search/k-search/data", ANON, SKIP, ANONYMOUS_REASON),
    }
    assert [s.phase for s in plan.steps] == [
        Phase.PREFLIGHT, Phase.STOP, Phase.COLD, Phase.START, Phase.FINISH,
    ]  # fmt: skip


# --- steps -------------------------------------------------------------------------------


def test_steps_hot_cold_order_and_texts(tmp_path: Path) -> None:
    folder = real_world(tmp_path, "k-box.docker-compose.example.yml")
    plan = build_plan(load_deployment(folder), stop_timeout=42)

    assert [s.phase for s in plan.steps] == [
        Phase.PREFLIGHT, Phase.HOT, Phase.STOP, Phase.COLD, Phase.START, Phase.FINISH,
    ]  # fmt: skip
    texts = {s.phase: s.text for s in plan.steps}
    assert texts[Phase.HOT] == (
        "copy while the stack runs: folder/storage/data, folder/storage/index; "
        "seed (the cold pass corrects them): folder, folder/storage/database; "
        "again while 16 MiB or more changed during a round"
    )
    assert texts[Phase.STOP] == "stop every service of project 'k-link' (timeout 42s)"
    assert texts[Phase.COLD].startswith(
        "copy everything, strict: folder, folder/storage/data, folder/storage/database, "
        "folder/storage/index;"
    )


def test_steps_cold_mode_has_no_hot_step(tmp_path: Path) -> None:
    folder = real_world(tmp_path, "k-box.docker-compose.example.yml")
    plan = plan_of(folder, mode=Mode.COLD)

    assert plan.mode is Mode.COLD
    assert [s.phase for s in plan.steps] == [
        Phase.PREFLIGHT, Phase.STOP, Phase.COLD, Phase.START, Phase.FINISH,
    ]  # fmt: skip
    assert "folder/storage/data" in {s.phase: s.text for s in plan.steps}[Phase.COLD]


def test_steps_hot_cold_without_hot_units_has_no_hot_step(tmp_path: Path) -> None:
    folder = real_world(tmp_path, "k-box.docker-compose.example.yml")
    plan = plan_of(folder, Override(COLD, target="/var/www/dms/storage"),
                   Override(COLD, service="engine"))  # fmt: skip
    assert plan.hot_units == ()
    assert Phase.HOT not in [s.phase for s in plan.steps]


# --- overrides ---------------------------------------------------------------------------


def test_override_makes_the_database_hot(tmp_path: Path) -> None:
    folder = real_world(tmp_path, "k-box.docker-compose.example.yml")
    plan = plan_of(folder, Override(HOT, service="database", reason="replica, tested"))

    db = unit(plan, "folder/storage/database")
    assert db.cls is HOT
    assert db.reason == "config override: replica, tested"
    assert [u.dest for u in plan.hot_units] == [
        "folder/storage/data", "folder/storage/database", "folder/storage/index",
    ]  # fmt: skip


def test_override_skip_removes_the_unit_and_the_folder_excludes_it(tmp_path: Path) -> None:
    folder = real_world(tmp_path, "k-box.docker-compose.example.yml")
    plan = plan_of(folder, Override(SKIP, target="/opt/solr/k-search/k-search/data"))

    assert units(plan) == {
        "folder": (str(folder), COLD, ("storage/data", "storage/database", "storage/index")),
        "folder/storage/data": (f"{folder}/storage/data", HOT, ()),
        "folder/storage/database": (f"{folder}/storage/database", COLD, ()),
    }
    index = next(c for c in plan.volumes if c.volume.service == "engine")
    assert (index.cls, index.reason) == (SKIP, "config override: set in config")


def test_override_by_source_makes_an_unknown_volume_hot(tmp_path: Path) -> None:
    folder = compose(tmp_path, """
        services:
          app:
            image: example/app
            volumes:
              - ./uploads:/srv/uploads
              - ./cache:/srv/cache
    """)  # fmt: skip
    plan = plan_of(folder, Override(HOT, source=str(folder / "uploads"), reason="append only"))

    assert units(plan) == {
        "folder": (str(folder), COLD, ("cache", "uploads")),
        "folder/cache": (f"{folder}/cache", COLD, ()),
        "folder/uploads": (f"{folder}/uploads", HOT, ()),
    }
    assert unit(plan, "folder/cache").reason == DEFAULT_REASON
    assert unit(plan, "folder/uploads").reason == "config override: append only"


# --- binds inside and outside the folder, nesting ----------------------------------------


def test_bind_outside_the_folder_lands_in_volumes(tmp_path: Path) -> None:
    disk = tmp_path / "mnt" / "data"
    folder = compose(tmp_path, f"""
        services:
          engine:
            image: klinktechnology/k-search-engine
            volumes:
              - {disk}/index:/opt/solr/k-search/k-search/data
          database:
            image: mariadb:10.3
            volumes:
              - ./storage/database:/var/lib/mysql
    """)  # fmt: skip
    plan = plan_of(folder)
    outside = "volumes/" + f"{disk}/index"[1:].replace("/", "-")

    assert units(plan) == {
        "folder": (str(folder), COLD, ("storage/database",)),
        "folder/storage/database": (f"{folder}/storage/database", COLD, ()),
        outside: (f"{disk}/index", HOT, ()),
    }
    assert outside.endswith("mnt-data-index")


def test_sibling_with_the_folder_name_as_prefix_is_outside(tmp_path: Path) -> None:
    folder = compose(tmp_path, """
        services:
          db:
            image: mariadb
            volumes:
              - ../k-link-data:/var/lib/mysql
    """)  # fmt: skip
    plan = plan_of(folder)
    sibling = str(tmp_path / "k-link-data")

    assert units(plan)["folder"] == (str(folder), COLD, ())
    outside = [u for u in plan.units if u.dest != "folder"]
    assert [(u.source, u.dest.startswith("volumes/"), u.cls) for u in outside] == [
        (sibling, True, COLD)
    ]


def test_nested_volumes_inside_the_folder_exclude_each_other(tmp_path: Path) -> None:
    folder = compose(tmp_path, """
        services:
          kbox:
            image: klinktechnology/k-box
            volumes:
              - ./storage:/srv/storage
              - ./storage/data:/var/www/dms/storage
              - ./storage/data/cache:/srv/cache
    """)  # fmt: skip
    plan = plan_of(folder, Override(SKIP, target="/srv/cache"))
    f = str(folder)

    assert units(plan) == {
        "folder": (f, COLD, ("storage", "storage/data", "storage/data/cache")),
        "folder/storage": (f"{f}/storage", COLD, ("data", "data/cache")),
        "folder/storage/data": (f"{f}/storage/data", HOT, ("cache",)),
    }


def test_nested_volumes_outside_the_folder_exclude_each_other(tmp_path: Path) -> None:
    disk = tmp_path / "disk"
    folder = compose(tmp_path, f"""
        services:
          engine:
            image: klinktechnology/k-search-engine
            volumes:
              - {disk}/index:/opt/solr/k-search/k-search/data
          app:
            image: example/app
            volumes:
              - {disk}:/srv/all
    """)  # fmt: skip
    plan = plan_of(folder)
    outer = unit(plan, "volumes/" + str(disk)[1:].replace("/", "-"))
    inner = unit(plan, "volumes/" + f"{disk}/index"[1:].replace("/", "-"))

    assert (outer.source, outer.cls, outer.excludes) == (str(disk), COLD, ("index",))
    assert (inner.source, inner.cls, inner.excludes) == (f"{disk}/index", HOT, ())
    assert unit(plan, "folder").excludes == ()


def test_bind_outside_containing_the_folder_excludes_the_folder(tmp_path: Path) -> None:
    folder = compose(tmp_path, """
        services:
          app:
            image: example/app
            volumes:
              - ..:/srv/parent
              - ./storage/database:/var/lib/mysql
    """)  # fmt: skip
    plan = plan_of(folder)
    parent = next(u for u in plan.units if u.source == str(tmp_path))

    assert parent.dest.startswith("volumes/")
    assert parent.excludes == ("k-link", "k-link/storage/database")
    assert unit(plan, "folder").excludes == ("storage/database",)


def test_bind_of_the_folder_itself_is_the_folder_unit(tmp_path: Path) -> None:
    folder = compose(tmp_path, """
        services:
          app:
            image: example/app
            volumes:
              - .:/var/www/dms/storage
    """)  # fmt: skip
    plan = plan_of(folder)
    assert units(plan) == {"folder": (str(folder), COLD, ())}
    assert plan.hot_units == ()


def test_skipped_bind_outside_is_excluded_from_its_parent(tmp_path: Path) -> None:
    disk = tmp_path / "disk"
    folder = compose(tmp_path, f"""
        services:
          app:
            image: example/app
            volumes:
              - {disk}:/srv/data
              - {disk}/tmp:/srv/tmp
    """)  # fmt: skip
    plan = plan_of(folder, Override(SKIP, target="/srv/tmp"))
    assert [(u.source, u.excludes) for u in plan.units] == [
        (str(folder), ()),
        (str(disk), ("tmp",)),
    ]


def test_same_safe_name_gets_a_numbered_dest(tmp_path: Path) -> None:
    folder = compose(tmp_path, """
        services:
          app:
            image: example/app
            volumes:
              - /srv/a/b:/srv/one
              - /srv/a-b:/srv/two
    """)  # fmt: skip
    plan = plan_of(folder)
    assert units(plan) == {
        "folder": (str(folder), COLD, ()),
        "volumes/srv-a-b": ("/srv/a-b", COLD, ()),
        "volumes/srv-a-b-2": ("/srv/a/b", COLD, ()),
    }


# --- one source, several services --------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "second", "expected"),
    [
        (HOT, COLD, COLD),
        (COLD, HOT, COLD),
        (SKIP, COLD, COLD),
        (HOT, SKIP, HOT),
        (SKIP, HOT, HOT),
    ],
)
def test_shared_source_takes_the_more_delicate_class(
    tmp_path: Path, first: VolumeClass, second: VolumeClass, expected: VolumeClass
) -> None:
    folder = compose(tmp_path, """
        services:
          one:
            image: example/one
            volumes:
              - ./shared:/srv/one
          two:
            image: example/two
            volumes:
              - ./shared:/srv/two
    """)  # fmt: skip
    plan = plan_of(folder, Override(first, service="one", reason="one"),
                   Override(second, service="two", reason="two"))  # fmt: skip

    shared = [u for u in plan.units if u.source == str(folder / "shared")]
    assert len(shared) == 1
    assert (shared[0].dest, shared[0].cls) == ("folder/shared", expected)
    winner = "one" if first is expected else "two"
    assert shared[0].reason == f"config override: {winner}"
    assert len(plan.volumes) == 2  # both uses stay visible in the plan
    assert unit(plan, "folder").excludes == ("shared",)


def test_shared_source_skipped_by_both_is_excluded_only(tmp_path: Path) -> None:
    folder = compose(tmp_path, """
        services:
          one:
            image: example/one
            volumes:
              - ./shared:/srv/one
          two:
            image: example/two
            volumes:
              - ./shared:/srv/two
    """)  # fmt: skip
    plan = plan_of(folder, Override(SKIP, source=str(folder / "shared")))
    assert units(plan) == {"folder": (str(folder), COLD, ("shared",))}


def test_real_shared_database_and_document_mount(tmp_path: Path) -> None:
    folder = compose(tmp_path, """
        services:
          database:
            image: mariadb:10.3
            volumes:
              - ./storage:/var/lib/mysql
          kbox:
            image: klinktechnology/k-box
            volumes:
              - ./storage:/var/www/dms/storage
    """)  # fmt: skip
    plan = plan_of(folder)
    assert units(plan)["folder/storage"] == (str(folder / "storage"), COLD, ())
    assert unit(plan, "folder/storage").reason == MYSQL
    assert plan.hot_units == ()


# --- named volumes -----------------------------------------------------------------------


def test_named_volumes_get_project_prefixed_candidates(tmp_path: Path) -> None:
    folder = compose(tmp_path, """
        services:
          database:
            image: mariadb:10.3
            volumes:
              - dbdata:/var/lib/mysql
          engine:
            image: klinktechnology/k-search-engine
            volumes:
              - type: volume
                source: index
                target: /opt/solr/k-search/k-search/data
        volumes:
          dbdata:
          index: {}
    """)  # fmt: skip
    plan = plan_of(folder)

    db, index = unit(plan, "volumes/dbdata"), unit(plan, "volumes/index")
    assert (db.source, db.type, db.cls, db.reason) == ("dbdata", NAMED, COLD, MYSQL)
    assert db.volume_names == ("k-link_dbdata",)  # v1 and v2 names agree
    assert db.excludes == ()
    assert (index.source, index.type, index.cls) == ("index", NAMED, HOT)
    assert index.volume_names == ("k-link_index",)
    assert unit(plan, "folder").excludes == ()


def test_named_volume_candidates_include_the_compose_v1_name(tmp_path: Path) -> None:
    folder = compose(tmp_path, """
        services:
          database:
            image: mariadb:10.3
            volumes:
              - dbdata:/var/lib/mysql
        volumes:
          dbdata:
    """)  # fmt: skip
    plan = plan_of(folder, environ={"COMPOSE_PROJECT_NAME": "K.Link"})
    assert unit(plan, "volumes/dbdata").volume_names == ("K.Link_dbdata", "klink_dbdata")


def test_top_level_name_sets_the_project_of_volume_names(tmp_path: Path) -> None:
    folder = compose(tmp_path, """
        name: kbox-prod
        services:
          database:
            image: mariadb:10.3
            volumes:
              - dbdata:/var/lib/mysql
        volumes:
          dbdata:
    """)  # fmt: skip
    plan = plan_of(folder)
    assert plan.project_name == "kbox-prod"
    assert unit(plan, "volumes/dbdata").volume_names == ("kbox-prod_dbdata",)


def test_name_and_external_volumes_use_that_name(tmp_path: Path) -> None:
    folder = compose(tmp_path, """
        services:
          database:
            image: mariadb:10.3
            volumes:
              - dbdata:/var/lib/mysql
          kbox:
            image: klinktechnology/k-box
            volumes:
              - docs:/var/www/dms/storage
          engine:
            image: klinktechnology/k-search-engine
            volumes:
              - index:/opt/solr/k-search/k-search/data
        volumes:
          dbdata:
            name: kbox_database_2019
          docs:
            external: true
          index:
            external:
              name: legacy-index
    """)  # fmt: skip
    plan = plan_of(folder)
    assert {u.dest: (u.source, u.cls, u.volume_names) for u in plan.units if u.type is NAMED} == {
        "volumes/dbdata": ("dbdata", COLD, ("kbox_database_2019",)),
        "volumes/docs": ("docs", HOT, ("docs",)),
        "volumes/index": ("index", HOT, ("legacy-index",)),
    }


def test_named_volume_shared_by_two_services_is_one_unit(tmp_path: Path) -> None:
    folder = compose(tmp_path, """
        services:
          database:
            image: mariadb:10.3
            volumes:
              - shared:/var/lib/mysql
          kbox:
            image: klinktechnology/k-box
            volumes:
              - shared:/var/www/dms/storage
        volumes:
          shared:
    """)  # fmt: skip
    plan = plan_of(folder)
    named = [u for u in plan.units if u.type is NAMED]
    assert [(u.dest, u.cls, u.reason) for u in named] == [("volumes/shared", COLD, MYSQL)]


def test_skipped_named_volume_and_anonymous_volumes_are_no_units(tmp_path: Path) -> None:
    folder = compose(tmp_path, """
        services:
          app:
            image: example/app
            volumes:
              - cache:/srv/cache
              - /srv/anonymous
              - type: tmpfs
                target: /tmp
        volumes:
          cache:
    """)  # fmt: skip
    plan = plan_of(folder, Override(SKIP, source="cache"))
    assert units(plan) == {"folder": (str(folder), COLD, ())}
    assert {(c.volume.target, c.cls) for c in plan.volumes} == {
        ("/srv/cache", SKIP),
        ("/srv/anonymous", SKIP),
    }


def test_named_volume_and_bind_with_the_same_safe_name(tmp_path: Path) -> None:
    folder = compose(tmp_path, """
        services:
          app:
            image: example/app
            volumes:
              - /data:/srv/bind
              - data:/srv/named
        volumes:
          data:
    """)  # fmt: skip
    plan = plan_of(folder)
    assert {u.dest: (u.source, u.type) for u in plan.units if u.dest != "folder"} == {
        "volumes/data": ("/data", BIND),
        "volumes/data-2": ("data", NAMED),
    }


# --- a file bind inside the folder -------------------------------------------------------


def test_file_bind_inside_the_folder_is_its_own_unit(tmp_path: Path) -> None:
    folder = compose(tmp_path, """
        services:
          app:
            image: example/app
            volumes:
              - ./config.ini:/etc/app.ini:ro
    """)  # fmt: skip
    plan = plan_of(folder)
    assert units(plan) == {
        "folder": (str(folder), COLD, ("config.ini",)),
        "folder/config.ini": (str(folder / "config.ini"), COLD, ()),
    }


@pytest.mark.skipif(shutil.which("rsync") is None, reason="rsync is not installed")
def test_file_bind_inside_the_folder_stays_a_file_in_the_snapshot(tmp_path: Path) -> None:
    folder = compose(tmp_path, """
        services:
          app:
            image: example/app
            volumes:
              - ./config.ini:/etc/app.ini:ro
    """)  # fmt: skip
    (folder / "config.ini").write_text("a=1\n")
    dest = LocalDestination(tmp_path / "dest")
    staging = tmp_path / "dest" / ".staging"
    for u in plan_of(folder).units:
        source = Source(u.source, os.path.isfile(u.source))
        (staging / landing(u, source)).parent.mkdir(parents=True, exist_ok=True)
        argv = copy_step(Phase.COLD, u, source, dest, None, ()).argv
        subprocess.run(argv, check=True, capture_output=True)

    assert (staging / "folder" / "docker-compose.yml").is_file()
    assert (staging / "folder" / "config.ini").is_file()
