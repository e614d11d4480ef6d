"""classify.py: the real-world examples end to end, then each rule on its own."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from klink_sync.classify import (
    Override,
    check_overrides,
    classify,
    classify_all,
    image_repository,
)
from klink_sync.compose import load_deployment
from klink_sync.errors import UsageError
from klink_sync.models import Volume, VolumeClass, VolumeType

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
HOT, COLD, SKIP = VolumeClass.HOT, VolumeClass.COLD, VolumeClass.SKIP


def classes_of(tmp_path: Path, fixture: str) -> dict[str, tuple[VolumeClass, str]]:
    """target -> (class, reason) for a real-world example loaded as docker-compose.yml."""
    folder = tmp_path / "k-link"
    folder.mkdir()
    shutil.copy(FIXTURES / fixture, folder / "docker-compose.yml")
    classified = classify_all(load_deployment(folder).volumes)
    return {c.volume.target: (c.cls, c.reason) for c in classified}


def bind(target: str, service: str = "app", source: str = "/srv/x", image: str = "") -> Volume:
    return Volume(service, target, VolumeType.BIND, source, image)


# --- real-world examples ---------------------------------------------------------------


def test_k_box_example(tmp_path: Path) -> None:
    classes = classes_of(tmp_path, "k-box.docker-compose.example.yml")

    assert {target: cls for target, (cls, _) in classes.items()} == {
        "/var/lib/mysql": COLD,
        "/var/www/dms/storage": HOT,
        "/opt/solr/k-search/k-search/data": HOT,
    }
    assert classes["/var/lib/mysql"][1] == (
        "container path /var/lib/mysql is a MariaDB/MySQL database"
    )
    assert "/var/www/dms/storage" in classes["/var/www/dms/storage"][1]
    assert "index" in classes["/opt/solr/k-search/k-search/data"][1]


def test_k_link_example(tmp_path: Path) -> None:
    classes = classes_of(tmp_path, "k-link.docker-compose.example.yml")

    assert {target: cls for target, (cls, _) in classes.items()} == {
        "/var/lib/mysql": COLD,
        "/opt/solr/k-search/k-search/data": HOT,
        "/var/www/k-search/var/data-downloads": HOT,
    }
    assert all(reason for _, reason in classes.values())
    assert "K-Search downloads" in classes["/var/www/k-search/var/data-downloads"][1]


def test_k_box_dev_example_anonymous_volumes_are_skipped(tmp_path: Path) -> None:
    classes = classes_of(tmp_path, "k-box.docker-compose.dev.example.yml")

    assert {target: cls for target, (cls, _) in classes.items()} == {
        "/var/lib/mysql": SKIP,
        "/opt/solr/k-search/k-search/data": SKIP,
    }
    assert all(reason.startswith("anonymous volume: ") for _, reason in classes.values())


# --- the rules, in order ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "cls", "what"),
    [
        ("/var/lib/mysql", COLD, "MariaDB/MySQL database"),
        ("/var/lib/mysql/", COLD, "MariaDB/MySQL database"),
        ("/var/lib/postgresql/data", COLD, "PostgreSQL database"),
        ("/var/www/dms/storage", HOT, "K-Box document storage"),
        ("/var/www/k-search/var/data-downloads", HOT, "K-Search downloads"),
        ("/opt/solr/k-search/k-search/data", HOT, "Solr search index"),
    ],
)
def test_known_container_paths(target: str, cls: VolumeClass, what: str) -> None:
    result = classify(bind(target, image="busybox"))

    assert result.cls is cls
    assert result.reason.startswith(f"container path {target.rstrip('/')} is ")
    assert what in result.reason


def test_below_a_known_path_counts_but_a_lookalike_does_not() -> None:
    below = classify(bind("/var/www/dms/storage/documents"))
    lookalike = classify(bind("/var/www/dms/storage-old"))

    assert below.cls is HOT
    assert below.reason == (
        "container path /var/www/dms/storage/documents is inside /var/www/dms/storage,"
        " the K-Box document storage"
    )
    assert lookalike.cls is COLD
    assert lookalike.reason.startswith("unknown volume")


def test_container_path_beats_image() -> None:
    # the index is hot even in a database-looking image; the path is what is stable
    assert classify(bind("/opt/solr/k-search/k-search/data", image="mariadb")).cls is HOT


@pytest.mark.parametrize(
    ("image", "repository"),
    [
        ("mariadb:10.3", "mariadb"),
        ("docker.io/library/mysql:8", "mysql"),
        ("postgres", "postgres"),
        ("localhost:5000/team/mongo:7@sha256:abc", "mongo"),
        ("redis@sha256:0123", "redis"),
        ("klinktechnology/k-search-engine:1.0.1", "k-search-engine"),
        ("", ""),
    ],
)
def test_image_repository(image: str, repository: str) -> None:
    assert image_repository(image) == repository


@pytest.mark.parametrize("image", ["mariadb:10.3", "docker.io/library/mysql:8", "postgres"])
def test_database_image_is_cold(image: str) -> None:
    result = classify(bind("/data", image=image))

    assert result.cls is COLD
    assert result.reason == f"image {image_repository(image)} is a database"


def test_image_never_makes_a_volume_hot() -> None:
    result = classify(bind("/data", image="klinktechnology/k-search-engine:1.0.1"))

    assert result.cls is COLD
    assert result.reason == (
        "unknown volume: copied only while the stack is stopped (safe default);"
        " override in the config to copy it hot"
    )


def test_anonymous_beats_container_path() -> None:
    volume = Volume("database", "/var/lib/mysql", VolumeType.ANONYMOUS, image="mariadb")
    result = classify(volume)

    assert result.cls is SKIP
    assert "add a bind mount" in result.reason


def test_named_volume_is_classified_by_container_path() -> None:
    volume = Volume("database", "/var/lib/mysql", VolumeType.VOLUME, "dbdata")

    assert classify(volume).cls is COLD


# --- config overrides ------------------------------------------------------------------

INDEX = bind("/opt/solr/k-search/k-search/data", "engine", "/mnt/data/index")
DATABASE = bind("/var/lib/mysql", "database", "/srv/k-link/storage/database", "mariadb:10.3")
UPLOADS = bind("/srv/uploads", "kbox", "/srv/k-link/storage/uploads")
EXTERNAL = Volume(
    "kbox", "/srv/ext", VolumeType.VOLUME, "ext", volume_name="real-name", external=True
)
ALL = (INDEX, DATABASE, UPLOADS, EXTERNAL)


def test_override_by_service() -> None:
    override = Override(SKIP, service="engine", reason="the index is rebuilt on restore")
    result = classify(INDEX, [override])

    assert result.cls is SKIP
    assert result.reason == "config override: the index is rebuilt on restore"
    assert classify(DATABASE, [override]).cls is COLD  # other services untouched


def test_override_by_target() -> None:
    result = classify(UPLOADS, [Override(HOT, target="/srv/uploads/")])

    assert result.cls is HOT
    assert result.reason == "config override: set in config"


def test_override_by_source_path_or_volume_name() -> None:
    assert classify(UPLOADS, [Override(HOT, source="/srv/k-link/storage/uploads/")]).cls is HOT
    assert classify(EXTERNAL, [Override(SKIP, source="ext")]).cls is SKIP
    assert classify(EXTERNAL, [Override(SKIP, source="real-name")]).cls is SKIP


def test_override_needs_every_given_field_to_match() -> None:
    override = Override(HOT, service="kbox", target="/var/lib/mysql")

    assert classify(DATABASE, [override]).cls is COLD
    assert classify(DATABASE, [override]).reason.startswith("container path")


def test_override_beats_every_other_rule() -> None:
    anonymous = Volume("database", "/var/lib/mysql", VolumeType.ANONYMOUS, image="mariadb")

    assert classify(DATABASE, [Override(HOT, target="/var/lib/mysql")]).cls is HOT
    assert classify(anonymous, [Override(COLD, service="database")]).cls is COLD


def test_last_matching_override_wins() -> None:
    overrides = [
        Override(HOT, service="kbox", reason="first"),
        Override(SKIP, target="/srv/uploads", reason="second"),
        Override(COLD, service="engine", reason="does not match"),
    ]
    result = classify(UPLOADS, overrides)

    assert (result.cls, result.reason) == (SKIP, "config override: second")
    assert classify(EXTERNAL, overrides).reason == "config override: first"


def test_classify_all_keeps_order() -> None:
    results = classify_all(ALL, [Override(SKIP, service="engine")])

    assert [r.volume for r in results] == list(ALL)
    assert [r.cls for r in results] == [SKIP, COLD, COLD, COLD]


# --- checking overrides against the deployment -----------------------------------------

SERVICES = ("database", "engine", "kbox", "ksearch")


def test_good_overrides_pass() -> None:
    overrides = [
        Override(SKIP, service="engine"),
        Override(HOT, target="/srv/uploads"),
        Override(COLD, source="real-name"),
        Override(HOT, service="database", target="/var/lib/mysql"),
    ]
    check_overrides(overrides, SERVICES, ALL)


def test_unknown_service_is_an_error() -> None:
    overrides = [
        Override(HOT, service="kbox"),
        Override(HOT, service="engine"),
        Override(HOT, service="foo"),
    ]
    with pytest.raises(UsageError) as caught:
        check_overrides(overrides, SERVICES, ALL)

    assert str(caught.value) == "config: volumes[2]: service 'foo' is not in the compose file"
    assert caught.value.exit_code == 2


def test_override_matching_no_volume_is_an_error() -> None:
    with pytest.raises(UsageError) as caught:
        check_overrides([Override(HOT, service="database", target="/srv/uploads")], SERVICES, ALL)

    assert str(caught.value) == (
        "config: volumes[0]: matches no volume (service 'database', target '/srv/uploads')"
    )


def test_service_without_volumes_matches_nothing() -> None:
    with pytest.raises(UsageError, match=r"volumes\[0\]: matches no volume \(service 'ksearch'"):
        check_overrides([Override(HOT, service="ksearch")], SERVICES, ALL)


def test_override_naming_nothing_is_an_error() -> None:
    with pytest.raises(UsageError, match=r"volumes\[0\]: give at least one of"):
        check_overrides([Override(HOT, reason="everything")], SERVICES, ALL)


def test_a_socket_bind_is_no_data_to_copy() -> None:
    """Hardening 12: docker.sock was planned as an unknown cold volume; the cold pass then
    failed every night, with the stack stopped."""
    found = classify(bind("/var/run/docker.sock", source="/var/run/docker.sock"))
    assert found.cls is VolumeClass.SKIP and "socket" in found.reason
    # a folder named like a socket is data (review: ./data.sock holding files was skipped)
    assert classify(bind("/data", source="/srv/k/data.sock")).cls is VolumeClass.COLD


def test_the_docker_daemons_folder_is_not_copied_as_an_ordinary_volume() -> None:
    """Hardening 13: /var/lib/docker as a bind source was an ordinary cold volume, unsaid."""
    found = classify(bind("/host-docker", source="/var/lib/docker"))
    assert found.cls is VolumeClass.SKIP and "Docker daemon's own folder" in found.reason
    assert classify(bind("/x", source="/var/lib/docker/overlay2")).cls is VolumeClass.SKIP
    assert classify(bind("/data", source="/var/lib/dockerish")).cls is VolumeClass.COLD
    # a volume's data bound by path is data (review: the K-Box documents were left out)
    docs = bind("/var/www/dms/storage", source="/var/lib/docker/volumes/kbox_storage/_data")
    assert classify(docs).cls is VolumeClass.HOT
