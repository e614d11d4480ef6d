"""compose.py against real files: the real-world examples and one fixture per feature."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from klink_sync.compose import COMPOSE_NAMES, Deployment, find_compose_files, load_deployment
from klink_sync.errors import UsageError
from klink_sync.models import Volume, VolumeType

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
BIND, NAMED, ANON = VolumeType.BIND, VolumeType.VOLUME, VolumeType.ANONYMOUS


def setup_folder(tmp_path: Path, fixture: str) -> Path:
    """A copy of tests/fixtures/compose/<fixture> (hidden files included) in tmp_path."""
    folder = tmp_path / fixture
    shutil.copytree(FIXTURES / "compose" / fixture, folder)
    return folder


def real_world(tmp_path: Path, name: str, folder_name: str = "k-link") -> Path:
    """A setup folder holding one real-world example as its docker-compose.yml."""
    folder = tmp_path / folder_name
    folder.mkdir()
    shutil.copy(FIXTURES / name, folder / "docker-compose.yml")
    return folder


def mounts(deployment: Deployment) -> dict[str, tuple[str, str, VolumeType]]:
    """target -> (service, source, type): the part of each Volume the backup relies on."""
    return {v.target: (v.service, v.source, v.type) for v in deployment.volumes}


def by_target(deployment: Deployment, target: str) -> Volume:
    return next(v for v in deployment.volumes if v.target == target)


def bad(tmp_path: Path, name: str) -> Path:
    """A setup folder whose docker-compose.yml is tests/fixtures/compose/bad/<name>."""
    folder = tmp_path / "bad"
    folder.mkdir()
    shutil.copy(FIXTURES / "compose" / "bad" / name, folder / "docker-compose.yml")
    return folder


# --- the real-world examples -----------------------------------------------------------


def test_k_box_example(tmp_path: Path) -> None:
    folder = real_world(tmp_path, "k-box.docker-compose.example.yml")
    deployment = load_deployment(folder)

    assert deployment.folder == folder
    assert deployment.compose_files == (folder / "docker-compose.yml",)
    assert deployment.env_files == ()
    assert deployment.project_name == "k-link"
    assert deployment.services == ("database", "engine", "kbox", "ksearch")
    assert mounts(deployment) == {
        "/opt/solr/k-search/k-search/data": ("engine", f"{folder}/storage/index", BIND),
        "/var/lib/mysql": ("database", f"{folder}/storage/database", BIND),
        "/var/www/dms/storage": ("kbox", f"{folder}/storage/data", BIND),
    }
    assert by_target(deployment, "/var/lib/mysql").image == "mariadb:10.3"
    assert by_target(deployment, "/var/www/dms/storage").image == "klinktechnology/k-box:0.33.1"


def test_k_box_dev_example_has_only_anonymous_volumes(tmp_path: Path) -> None:
    deployment = load_deployment(real_world(tmp_path, "k-box.docker-compose.dev.example.yml"))

    assert deployment.services == ("engine", "ksearch", "mariadb")
    assert mounts(deployment) == {
        "/var/lib/mysql": ("mariadb", "", ANON),
        "/opt/solr/k-search/k-search/data": ("engine", "", ANON),
    }


def test_k_link_example(tmp_path: Path) -> None:
    folder = real_world(tmp_path, "k-link.docker-compose.example.yml")
    deployment = load_deployment(folder)

    assert deployment.services == ("database", "engine", "klink", "ksearch", "registry")
    assert mounts(deployment) == {
        "/var/lib/mysql": ("database", f"{folder}/storage/database", BIND),
        "/opt/solr/k-search/k-search/data": ("engine", f"{folder}/storage/index", BIND),
        "/var/www/k-search/var/data-downloads": ("ksearch", f"{folder}/storage/data", BIND),
    }
    assert by_target(deployment, "/var/lib/mysql").image == "mariadb:10.3.17"


def test_k_box_secrets_are_collected_and_never_shown(tmp_path: Path) -> None:
    deployment = load_deployment(real_world(tmp_path, "k-box.docker-compose.example.yml"))
    root_password = "2381aa6a99bee6ff61c2209ef4373887"  # MYSQL_ROOT_PASSWORD
    password = "b2510859c83414e0cbefd26284b9171d"  # MYSQL_PASSWORD and KBOX_DB_PASSWORD

    assert deployment.secrets == {root_password, password}
    shown = [repr(deployment), str(deployment), *(repr(v) for v in deployment.volumes)]
    for text in shown:
        assert root_password not in text
        assert password not in text


def test_k_link_secrets_ignore_short_values(tmp_path: Path) -> None:
    deployment = load_deployment(real_world(tmp_path, "k-link.docker-compose.example.yml"))

    # MYSQL_ROOT_PASSWORD, MYSQL_PASSWORD and REGISTRY_DB_PASS, REGISTRY_ADMIN_PASSWORD
    # "****" (4 characters) is too short to mask without garbling ordinary text
    assert deployment.secrets == {"238...", "kregistry"}


def test_project_name_is_the_folder_name_normalised_like_compose_v2(tmp_path: Path) -> None:
    folder = real_world(tmp_path, "k-link.docker-compose.example.yml", "._My K-Link.Setup_1")

    assert load_deployment(folder).project_name == "myk-linksetup_1"


def test_relative_folder_is_made_absolute(tmp_path: Path) -> None:
    folder = real_world(tmp_path, "k-box.docker-compose.example.yml")
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        deployment = load_deployment(Path("k-link"))
    finally:
        os.chdir(cwd)

    assert deployment.folder == folder
    assert by_target(deployment, "/var/lib/mysql").source == f"{folder}/storage/database"


# --- finding the compose files ---------------------------------------------------------


def touch(folder: Path, *names: str) -> None:
    for name in names:
        (folder / name).write_text("services: {}\n")


def test_find_prefers_compose_yaml_like_compose_v2(tmp_path: Path) -> None:
    touch(tmp_path, *COMPOSE_NAMES)
    assert find_compose_files(tmp_path) == (tmp_path / "compose.yaml",)

    (tmp_path / "compose.yaml").unlink()
    assert find_compose_files(tmp_path) == (tmp_path / "compose.yml",)

    (tmp_path / "compose.yml").unlink()
    assert find_compose_files(tmp_path) == (tmp_path / "docker-compose.yml",)

    (tmp_path / "docker-compose.yml").unlink()
    assert find_compose_files(tmp_path) == (tmp_path / "docker-compose.yaml",)


def test_find_adds_the_override_file(tmp_path: Path) -> None:
    touch(tmp_path, "docker-compose.yml", "docker-compose.override.yml")
    assert find_compose_files(tmp_path) == (
        tmp_path / "docker-compose.yml",
        tmp_path / "docker-compose.override.yml",
    )


def test_find_explicit_files_relative_to_the_folder(tmp_path: Path) -> None:
    touch(tmp_path, "docker-compose.yml", "prod.yml", "docker-compose.override.yml")
    found = find_compose_files(tmp_path, ["prod.yml", tmp_path / "docker-compose.yml"])
    assert found == (tmp_path / "prod.yml", tmp_path / "docker-compose.yml")


def test_find_explicit_file_must_exist(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"prod\.yml: compose file not found"):
        find_compose_files(tmp_path, ["prod.yml"])


def test_find_nothing_names_the_folder_and_the_names(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as caught:
        find_compose_files(tmp_path)
    assert str(caught.value).startswith(f"{tmp_path}: no compose file (looked for compose.yaml")
    assert "docker-compose.yml" in str(caught.value)


# --- volume syntax ---------------------------------------------------------------------


def test_every_volume_syntax(tmp_path: Path) -> None:
    folder = setup_folder(tmp_path, "volumes")
    deployment = load_deployment(folder, environ={"HOME": "/home/klink"})

    assert mounts(deployment) == {
        "/etc/nginx/nginx.conf": ("web", f"{folder}/nginx.conf", BIND),
        "/usr/share/nginx/html": ("web", f"{folder}/storage/web", BIND),
        "/var/log/nginx": ("web", f"{folder}/storage/logs", BIND),
        "/var/cache/nginx": ("web", f"{folder}/storage/cache", BIND),
        "/srv/setup": ("web", str(folder), BIND),
        "/srv/shared": ("web", f"{tmp_path}/shared", BIND),
        "/srv/backups": ("web", "/home/klink/backups", BIND),
        "/etc/nginx/certs": ("web", "/srv/certs", BIND),
        "/opt/solr/k-search/k-search/data": ("engine", "/mnt/data/index", BIND),
        "/var/www/dms/storage": ("kbox", f"{folder}/storage/data", BIND),
        "/etc/kbox/app.ini": ("kbox", "/etc/kbox/app.ini", BIND),
        "/var/www/dms/bootstrap/cache": ("kbox", "cache", NAMED),
        "/tmp/anonymous-long": ("kbox", "", ANON),
        "/var/lib/mysql": ("database", "dbdata", NAMED),
        "/srv/named": ("database", "named", NAMED),
        "/srv/ext": ("database", "ext", NAMED),
        "/srv/ext-named": ("database", "ext_named", NAMED),
        "/srv/legacy": ("database", "legacy", NAMED),
        "/var/lib/anonymous": ("database", "", ANON),
    }
    assert "/run/kbox" not in mounts(deployment)  # tmpfs: nothing on the host
    assert deployment.services == ("database", "engine", "kbox", "web", "worker")


def test_read_only_from_short_and_long_syntax(tmp_path: Path) -> None:
    deployment = load_deployment(setup_folder(tmp_path, "volumes"), environ={"HOME": "/h"})
    read_only = {v.target for v in deployment.volumes if v.read_only}

    assert read_only == {"/etc/nginx/nginx.conf", "/usr/share/nginx/html", "/etc/kbox/app.ini"}


def test_named_volume_names_and_external(tmp_path: Path) -> None:
    deployment = load_deployment(setup_folder(tmp_path, "volumes"), environ={"HOME": "/h"})
    named = {v.source: (v.volume_name, v.external) for v in deployment.volumes if v.type is NAMED}

    assert named == {
        "cache": ("", False),  # Docker name is <project>_cache, known at run time
        "dbdata": ("", False),
        "named": ("klink-named", False),
        "ext": ("ext", True),
        "ext_named": ("real-name", True),
        "legacy": ("legacy-real", True),
    }


def test_volume_keeps_the_service_image(tmp_path: Path) -> None:
    deployment = load_deployment(setup_folder(tmp_path, "volumes"), environ={"HOME": "/h"})

    assert by_target(deployment, "/var/lib/mysql").image == "docker.io/library/mariadb:10.3"
    assert by_target(deployment, "/etc/nginx/nginx.conf").image == "nginx:1.25"


def test_home_is_needed_for_tilde(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"services\.web\.volumes\[6\]: '~/backups'.*HOME"):
        load_deployment(setup_folder(tmp_path, "volumes"), environ={})


# --- .env and interpolation ------------------------------------------------------------


def test_interpolation_from_dotenv(tmp_path: Path) -> None:
    folder = setup_folder(tmp_path, "env")
    deployment = load_deployment(folder)
    sources = {v.target: v.source for v in deployment.volumes}

    assert sources == {
        "/var/lib/mysql": f"{folder}/data/database",  # ${DATA_DIR} (export DATA_DIR=...)
        "/var/www/dms/storage": f"{folder}/quoted dir",  # double quotes, comment after
        "/srv/colon-dash": f"{folder}/empty-default",  # ${EMPTY:-d}: empty takes default
        "/srv/dash": "/dash",  # ${EMPTY-d}: empty is set, so no default
        "/srv/unset-dash": f"{folder}/unset-default",  # ${UNSET-d}
        "/srv/nested": f"{folder}/data/nested/x",  # .env value using an earlier one
        "/srv/question": f"{folder}/single",  # ${EMPTY?}: set, even if empty
        "/srv/overridden": f"{folder}/from-dotenv",  # $VAR
        "/srv/single-quoted": f"{folder}/${{NOT_EXPANDED}}",  # single quotes: literal
        "/srv/unset": f"{folder}/unset",  # unset without default: empty string
    }
    assert by_target(deployment, "/var/lib/mysql").image == "mariadb:10.3"
    assert by_target(deployment, "/srv/dash").image == "klinktechnology/k-box:0.33.1"
    assert deployment.project_name == "envproject"  # COMPOSE_PROJECT_NAME in .env
    assert deployment.env_files == (folder / ".env", folder / "kbox.env")  # missing.env: no


def test_process_environment_wins_over_dotenv(tmp_path: Path) -> None:
    folder = setup_folder(tmp_path, "env")
    environ = {
        "DATA_DIR": "/mnt/disk",
        "OVERRIDDEN": "from-shell",
        "KBOX_TAG": "0.40.0",
        "COMPOSE_PROJECT_NAME": "shellproject",
    }
    deployment = load_deployment(folder, environ=environ)
    sources = {v.target: v.source for v in deployment.volumes}

    assert sources["/var/lib/mysql"] == "/mnt/disk/database"
    assert sources["/srv/nested"] == "/mnt/disk/nested/x"  # .env expands from the shell too
    assert sources["/srv/overridden"] == f"{folder}/from-shell"
    assert by_target(deployment, "/srv/dash").image == "klinktechnology/k-box:0.40.0"
    assert deployment.project_name == "shellproject"


def test_env_secrets_from_dotenv_env_file_and_environment(tmp_path: Path) -> None:
    folder = setup_folder(tmp_path, "env")
    deployment = load_deployment(folder, environ={"KBOX_SEARCH_TOKEN": "shell-search-token"})

    assert deployment.secrets == {
        "s3cr3t-from-dotenv",  # DB_PASSWORD in .env, and MYSQL_*PASSWORD through it
        "tok-123456",  # API_TOKEN in .env, used nowhere: still a secret
        "base64:kbox-app-key-value",  # KBOX_APP_KEY in kbox.env (env_file)
        "kbox-db-pass",  # KBOX_DB_PASSWORD in kbox.env, single-quoted
        "admin-default-pw",  # ${ADMIN_PASSWORD-default} in environment (list form)
        "shell-search-token",  # bare KBOX_SEARCH_TOKEN: from the shell
    }
    shown = repr(deployment) + "".join(repr(v) for v in deployment.volumes)
    for secret in deployment.secrets:
        assert secret not in shown


def test_dotenv_syntax(tmp_path: Path) -> None:
    folder = setup_folder(tmp_path, "dotenv-syntax")
    deployment = load_deployment(folder)
    sources = {v.target: v.source for v in deployment.volumes}

    assert sources == {
        "/srv/indented": f"{folder}/indented",
        "/srv/hash": f"{folder}/a#b",  # a # without a space before it is not a comment
        "/srv/yaml-style": f"{folder}/yaml-style",  # KEY: VALUE
        "/srv/inherited": f"{folder}/not-inherited",  # bare KEY, not in the shell: unset
        "/srv/escaped": f'{folder}/with "quotes"',
        "/srv/after-multi": f"{folder}/after",  # after a quoted value spanning two lines
        "/srv/dollar": f"{folder}/price$",  # $$ is a literal $
    }
    assert deployment.secrets == {"first line\nsecond line"}


def test_dotenv_bare_key_takes_the_shell_value(tmp_path: Path) -> None:
    deployment = load_deployment(setup_folder(tmp_path, "dotenv-syntax"), (), {"INHERITED": "/i"})

    assert by_target(deployment, "/srv/inherited").source == "/i"


def test_required_variable_missing_names_file_key_and_variable(tmp_path: Path) -> None:
    folder = setup_folder(tmp_path, "required-var")
    with pytest.raises(UsageError) as caught:
        load_deployment(folder)

    assert str(caught.value) == (
        f"{folder}/docker-compose.yml: services.database.volumes[0]: "
        "required variable DATA_DIR is missing a value: set DATA_DIR to the data disk"
    )


def test_required_variable_given_by_the_shell(tmp_path: Path) -> None:
    deployment = load_deployment(setup_folder(tmp_path, "required-var"), {}, {"DATA_DIR": "/d"})

    assert deployment.volumes[0].source == "/d/database"


def test_required_variable_empty_in_dotenv_is_missing_for_colon_form(tmp_path: Path) -> None:
    folder = setup_folder(tmp_path, "required-var")
    (folder / ".env").write_text("DATA_DIR=\n")

    with pytest.raises(UsageError, match="required variable DATA_DIR is missing a value"):
        load_deployment(folder)


def test_question_mark_without_colon_errors_only_when_unset(tmp_path: Path) -> None:
    folder = setup_folder(tmp_path, "env")
    compose = folder / "docker-compose.yml"
    compose.write_text(compose.read_text().replace("${EMPTY?}", "${NOPE?}"))

    with pytest.raises(UsageError, match=r"volumes\[5\]: required variable NOPE is missing"):
        load_deployment(folder)


def test_project_name_from_top_level_name(tmp_path: Path) -> None:
    folder = setup_folder(tmp_path, "project-name")

    assert load_deployment(folder).project_name == "named-in-file"
    assert load_deployment(folder, environ={"COMPOSE_PROJECT_NAME": "env"}).project_name == "env"
    assert load_deployment(folder).volumes == ()  # a service without volumes is fine


# --- merging an override file ----------------------------------------------------------


def test_override_file_is_merged(tmp_path: Path) -> None:
    folder = setup_folder(tmp_path, "override")
    deployment = load_deployment(folder)

    assert deployment.compose_files == (
        folder / "docker-compose.yml",
        folder / "docker-compose.override.yml",
    )
    assert deployment.services == ("backup-agent", "database", "kbox")
    assert mounts(deployment) == {
        "/var/lib/mysql": ("database", "/mnt/fast/database", BIND),  # later file wins
        "/etc/mysql/conf.d": ("database", f"{folder}/storage/conf", BIND),
        "/var/www/dms/storage": ("kbox", f"{folder}/storage/data", BIND),
        "/srv/shared": ("kbox", "shared", NAMED),  # declared in the first file
        "/srv/extra": ("kbox", "extra", NAMED),
        "/agent": ("backup-agent", f"{folder}/agent", BIND),
    }
    assert by_target(deployment, "/var/lib/mysql").image == "mariadb:10.6"
    assert by_target(deployment, "/var/www/dms/storage").image == "klinktechnology/k-box:0.33.1"
    assert by_target(deployment, "/srv/extra").volume_name == "kbox-extra"


def test_explicit_file_replaces_the_override_search(tmp_path: Path) -> None:
    folder = setup_folder(tmp_path, "override")
    deployment = load_deployment(folder, ["docker-compose.yml"])

    assert deployment.compose_files == (folder / "docker-compose.yml",)
    assert by_target(deployment, "/var/lib/mysql").source == f"{folder}/storage/database"


# --- malformed files: one line naming the file (and the key) ---------------------------

BAD_CASES = [
    ("not-yaml.yml", r"not valid YAML: .*, line 4$"),
    ("empty.yml", r"top level must be a mapping .*not empty$"),
    ("top-list.yml", r"top level must be a mapping .*not a list$"),
    ("no-services.yml", r"services is missing$"),
    ("services-list.yml", r"services must be a mapping, not a list$"),
    ("service-string.yml", r"services\.app: must be a mapping, not a string$"),
    ("volume-number.yml", r"services\.kbox\.volumes\[1\]: must be a string or a mapping"),
    ("volumes-not-list.yml", r"services\.kbox\.volumes: must be a list, not a string$"),
    (
        "undeclared-volume.yml",
        r"services\.database\.volumes\[0\]: named volume 'dbdata' is not declared",
    ),
    ("relative-target.yml", r"services\.kbox\.volumes\[0\]: container path 'relative'"),
    ("long-no-type.yml", r"services\.kbox\.volumes\[0\]: type: missing"),
    ("too-many-colons.yml", r"services\.kbox\.volumes\[0\]: '\./a:/a:ro:extra' has too many"),
    ("bad-dollar.yml", r"services\.kbox\.environment\[0\]: '\$' not followed by a variable"),
]


@pytest.mark.parametrize(("fixture", "message"), BAD_CASES)
def test_malformed_compose_file(tmp_path: Path, fixture: str, message: str) -> None:
    folder = bad(tmp_path, fixture)
    with pytest.raises(UsageError) as caught:
        load_deployment(folder)

    text = str(caught.value)
    assert text.startswith(f"{folder / 'docker-compose.yml'}: ")
    assert "\n" not in text
    assert re.search(message, text), text
    assert "ssword" not in text  # bad-dollar.yml: the value itself is never quoted
    assert caught.value.exit_code == 2


def test_error_in_the_override_file_names_that_file(tmp_path: Path) -> None:
    folder = setup_folder(tmp_path, "override")
    override = folder / "docker-compose.override.yml"
    override.write_text("services:\n  kbox:\n    volumes:\n      - [1, 2]\n")

    with pytest.raises(UsageError, match=rf"^{override}: services\.kbox\.volumes\[0\]: "):
        load_deployment(folder)


def test_bad_dotenv_line_names_the_line_without_its_content(tmp_path: Path) -> None:
    folder = setup_folder(tmp_path, "project-name")
    (folder / ".env").write_text("OK=1\nthis is not=an env line secretvalue\n")

    with pytest.raises(UsageError) as caught:
        load_deployment(folder)
    assert str(caught.value) == f"{folder / '.env'}: line 2: expected KEY=VALUE"


def test_yaml_error_does_not_quote_the_file(tmp_path: Path) -> None:
    folder = tmp_path / "leak"
    folder.mkdir()
    (folder / "docker-compose.yml").write_text(
        'services:\n  db:\n    environment:\n      MYSQL_PASSWORD: "hunter2secret\n'
    )
    with pytest.raises(UsageError) as caught:
        load_deployment(folder)
    assert "hunter2secret" not in str(caught.value)


def test_dotenv_escapes_read_as_compose_reads_them(tmp_path: Path) -> None:
    """What `docker compose config` gives for each line: a password klink-sync reads
    otherwise is a live backup refused with 'Access denied', and a secret left unmasked."""
    from klink_sync.compose import _read_env_file

    env = tmp_path / ".env"
    env.write_text('E="a\\$b"\n'  # \$ in double quotes: a literal $, no interpolation
                   "C='abc\\'def'\n"  # an escaped single quote inside single quotes
                   'B="x\\\\y\\"z"\n'  # \\ and \" in double quotes
                   'N="one\\ntwo"\n'
                   "P='lit$eral\\n'\n"
                   'Q="q\\wz"\n')  # an unknown escape stays as written
    assert _read_env_file(env, {"b": "interpolated"}) == {
        "E": "a$b", "C": "abc'def", "B": 'x\\y"z', "N": "one\ntwo", "P": "lit$eral\\n",
        "Q": "q\\wz"}


def test_dotenv_comments_bom_and_dashed_keys_read_as_compose_reads_them(tmp_path: Path) -> None:
    """Checked against `docker compose config`: only " #" starts a comment in an unquoted
    value (a tab before # is part of it), a UTF-8 byte order mark is not part of the first
    key, and a key may hold a dash."""
    from klink_sync.compose import _read_env_file

    env = tmp_path / ".env"
    env.write_bytes("\ufeffPW=abc\t#def\nSOME-FLAG=1\nX=y # a comment\n".encode())
    assert _read_env_file(env, {}) == {"PW": "abc\t#def", "SOME-FLAG": "1", "X": "y"}


def test_dotenv_lines_end_at_newlines_only(tmp_path: Path) -> None:
    """A form feed, a vertical tab or U+2028 inside a value is part of it (Compose splits
    lines at \\n, and \\r\\n), not the start of another line."""
    from klink_sync.compose import _read_env_file

    env = tmp_path / ".env"
    env.write_bytes("PW=ab\x0ccd\u2028ef\r\nNEXT=1\n".encode())
    assert _read_env_file(env, {}) == {"PW": "ab\x0ccd\u2028ef", "NEXT": "1"}


def test_a_secret_is_also_known_as_written_before_interpolation(tmp_path: Path) -> None:
    """Compose names a value it cannot interpolate as written in the file: that text is
    masked too (it holds the password), a bare reference is not."""
    folder = tmp_path / "site"
    folder.mkdir()
    (folder / "docker-compose.yml").write_text(
        "services:\n  db:\n    image: mariadb\n    environment:\n"
        "      MYSQL_ROOT_PASSWORD: ${DB_ROOT_PASSWORD}\n    volumes: [./db:/var/lib/mysql]\n")
    (folder / "db").mkdir()
    (folder / ".env").write_text("DB_ROOT_PASSWORD=Sup3rS3cret${oops}x\nDB_PASSWORD=${X}\n")
    deployment = load_deployment(folder)
    assert "Sup3rS3cret${oops}x" in deployment.secrets
    assert "Sup3rS3cretx" in deployment.secrets and "${X}" not in deployment.secrets


def test_dotenv_carriage_returns_read_as_compose_reads_them(tmp_path: Path) -> None:
    """Checked against `docker compose config`: a lone CR does not end a line, and a
    quoted value spanning CRLF lines keeps them."""
    from klink_sync.compose import _read_env_file

    env = tmp_path / ".env"
    env.write_bytes(b'A1=one\rA2=two\nA7="multi\r\nline"\r\nA8=x\r\n')
    assert _read_env_file(env, {}) == {"A1": "one\rA2=two", "A7": "multi\r\nline", "A8": "x"}


def _site_with_env(tmp_path: Path, compose_env: str, dotenv: str) -> Path:
    folder = tmp_path / "site"
    (folder / "db").mkdir(parents=True)
    (folder / "docker-compose.yml").write_text(
        "services:\n  db:\n    image: mariadb\n    environment:\n"
        f"      {compose_env}\n    volumes: [./db:/var/lib/mysql]\n")  # fmt: skip
    (folder / ".env").write_text(dotenv)
    return folder


@pytest.mark.parametrize("compose_env, dotenv", [
    ("MYSQL_ROOT_PASSWORD: ${DB_ROOT_PASSWORD}", 'DB_ROOT_PASSWORD="Zq9${NOPE:?Lm4PwXk7Vb2}"\n'),
    ("MYSQL_ROOT_PASSWORD: Zq9${NOPE:?Lm4PwXk7Vb2}", ""),
    ("- MYSQL_ROOT_PASSWORD=Zq9${NOPE:?Lm4PwXk7Vb2}", ""),
])  # fmt: skip
def test_a_required_variable_s_message_is_not_shown_where_a_secret_is_written(
    tmp_path: Path, compose_env: str, dotenv: str
) -> None:
    """Review: `${NOPE:?text}` inside a password printed the text, a piece of it."""
    folder = _site_with_env(tmp_path, compose_env, dotenv)
    with pytest.raises(UsageError, match="required variable NOPE is missing a value") as caught:
        load_deployment(folder)
    assert "Lm4PwX" not in str(caught.value)


def test_a_secret_written_with_doubled_dollars_is_known_as_written(tmp_path: Path) -> None:
    """Review: a `$$` in the .env value of a key that does not look secret (the secret is
    named so in the compose file): Compose prints the value as written."""
    folder = _site_with_env(tmp_path, "MYSQL_ROOT_PASSWORD: ${DB_ROOT}", "DB_ROOT=Zq9$$Lm4PwX${x\n")
    assert "Zq9$$Lm4PwX${x" in load_deployment(folder).secrets


@pytest.mark.parametrize("compose, dotenv", [
    ("x-db-root: &dbroot \"Qm7-${DB_SALT:?vR2-kP9x}-Lw4\"\n", ""),
    ("", "DB_ROOT=Qm7-${DB_SALT:?vR2-kP9x}-Lw4\n"),
    ("", "DB_ROOT=Qm7-${DB_SALT?vR2-kP9x}-Lw4\n"),
])  # fmt: skip
def test_a_required_variable_s_message_is_shown_only_for_a_path(tmp_path, compose, dotenv):
    """Review: the text of `${X:?text}` is shown for a volume's path only: a value under a
    plain name (an anchor, a .env line) may become a password."""
    folder = _site_with_env(tmp_path, "MYSQL_ROOT_PASSWORD: ${DB_ROOT:-x}", dotenv)
    text = (folder / "docker-compose.yml").read_text()
    (folder / "docker-compose.yml").write_text(compose + text)
    with pytest.raises(UsageError, match="required variable DB_SALT is missing a value") as caught:
        load_deployment(folder)
    assert "vR2-kP9x" not in str(caught.value)


def test_a_compose_secret_taken_from_a_variable_is_a_secret(tmp_path: Path) -> None:
    """Review: top-level `secrets: {db_root: {environment: DB_ROOT}}` made DB_ROOT a
    secret whatever its name; Compose printed its value as written."""
    folder = _site_with_env(tmp_path, "MYSQL_ROOT_PASSWORD_FILE: /run/secrets/db_root",
                            "DB_ROOT=Hq4$${Zt9-mW2x\n")  # fmt: skip
    compose = folder / "docker-compose.yml"
    compose.write_text(compose.read_text() + "secrets:\n  db_root:\n    environment: DB_ROOT\n")
    secrets = load_deployment(folder).secrets
    assert "Hq4${Zt9-mW2x" in secrets and "Hq4$${Zt9-mW2x" in secrets
