"""Offsite copies with restic: the `offsite:` settings and restic's command lines (pure).

restic encrypts and deduplicates; klink-sync gives it each snapshot folder from inside
(`cd SNAPSHOT && restic backup .`), so every push has the same tree whatever the
snapshot's name, with the previous push as parent and ctime ignored: the hard links of a
new snapshot change the ctime of every file it shares with the one before, not its
content (snapshots are never written in place), and restic would read them all again.
Secrets reach restic through its environment only (password file, environment file),
never its command line; what it prints is masked before anyone sees it.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import unquote

from .errors import UsageError
from .retention import Retention, check_rules, name_time

TAG = "klink-sync"  # every snapshot klink-sync pushes carries it
OFFSITE_EXAMPLE = """\
# restic repository: a path, sftp:user@host:/path, s3:https://host/bucket/path, rest:, rclone:
# the password file (and the environment file with S3 keys) must be 0600 or stricter
#offsite:
#  repository: s3:https://s3.example.org/k-link-backups/site-a
#  password_file: /etc/klink-sync/restic-password
#  environment_file: /etc/klink-sync/offsite.env
#  after_backup: true
#  retention: {keep_daily: 7, keep_weekly: 4, keep_monthly: 12}
#  check_subset: 2%
#  limit_upload: 0
#  options: []"""
DEFAULT_RETENTION = Retention(keep_daily=7, keep_weekly=4, keep_monthly=12)
KEYS = ("repository", "password_file", "environment_file", "after_backup", "retention",
        "check_subset", "limit_upload", "options")  # fmt: skip
_SUBSET = re.compile(r"^(?:(\d+(?:\.\d+)?)%|(\d+)/(\d+))$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SECRET_NAME = re.compile(r"KEY|SECRET|TOKEN|PASS|CREDENTIAL|AUTH", re.IGNORECASE)
# restic's own variables from the caller's environment never reach it: the files decide
_AMBIENT = ("RESTIC_", "AWS_", "B2_", "AZURE_", "GOOGLE_", "OS_", "ST_", "RCLONE_")
# a snapshot name from the repository becomes a folder name: klink-sync's own shape only
_SAFE_NAME = re.compile(r"[0-9A-Za-z][0-9A-Za-z._-]{0,199}")
_TAG_UNSAFE = re.compile(r"[^0-9A-Za-z._@-]")  # restic splits tags at commas
MIN_PASSWORD = 8  # shorter: the mask would hide ordinary words, and the key is weak


@dataclass(frozen=True)
class Offsite:
    repository: str
    password_file: str
    environment_file: str | None = None
    after_backup: bool = True
    retention: Retention = DEFAULT_RETENTION
    check_subset: str = "2%"
    limit_upload: int = 0  # KiB/s, 0: unlimited
    options: tuple[str, ...] = field(default=())  # restic -o key=value

    @property
    def shown(self) -> str:
        """The repository for messages: a password in a URL (rest:https://u:p@...) left out."""
        split = _url_password(self.repository)
        return f"{split[0]}*****{split[2]}" if split else self.repository


def check_offsite(problems, entry: Mapping) -> Offsite | None:  # type: ignore[no-untyped-def]
    """`offsite:` of the config file; every problem added to `problems` (key: reason)."""
    before = len(problems)
    for key in sorted(set(map(str, entry)) - set(KEYS)):
        problems.add("offsite", f"unknown key '{key}' (offsite has {', '.join(KEYS)})")
    values = dict(entry)
    for key in ("repository", "password_file"):
        if not isinstance(values.get(key), str) or not values[key].strip():
            problems.add(f"offsite.{key}", "is required: a string")
    for key in ("password_file", "environment_file"):
        path = values.get(key)
        if path is not None and (not isinstance(path, str) or not path.startswith("/")):
            problems.add(f"offsite.{key}", "must be an absolute path")
    if any(c in str(values.get("repository", "")) for c in "\n\0"):
        problems.add("offsite.repository", "must be on one line")
    if not isinstance(values.get("after_backup", True), bool):
        problems.add("offsite.after_backup", "must be true or false")
    subset = values.get("check_subset", "2%")
    if not isinstance(subset, str) or not _subset_ok(subset):
        problems.add("offsite.check_subset", "must be a share like 2% (0-100) or 1/10")
    limit = values.get("limit_upload", 0)
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        problems.add("offsite.limit_upload", "must be a whole number of KiB/s >= 0")
    options = values.get("options", [])
    if not isinstance(options, list) or not all(
        isinstance(o, str) and "=" in o and "\n" not in o for o in options
    ):
        problems.add("offsite.options", "must be a list of restic options key=value")
    retention = _retention(problems, values.get("retention"))
    if len(problems) > before:
        return None
    values["options"] = tuple(options)
    values["retention"] = retention
    return Offsite(**values)


def _subset_ok(text: str) -> bool:
    match = _SUBSET.match(text.strip())
    if not match:
        return False
    if match[1] is not None:
        return 0 < float(match[1]) <= 100
    return 0 < int(match[2]) <= int(match[3])


def _retention(problems, entry: object) -> Retention:  # type: ignore[no-untyped-def]
    if entry is None:
        return DEFAULT_RETENTION
    if not isinstance(entry, Mapping):
        problems.add("offsite.retention", "must be a mapping like {keep_daily: 7}")
        return DEFAULT_RETENTION
    return check_rules(problems, entry, "offsite.retention") or DEFAULT_RETENTION


# --- the secret files ---------------------------------------------------------------------


def secret_file(path: str, key: str, section: str = "offsite") -> bytes:
    """A file only its owner (this user or root) can read: else a one-line refusal naming
    the option (`section.key`) that gave it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)  # a FIFO: no wait
    except OSError as exc:
        raise UsageError(f"{path}: {section}.{key}: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UsageError(f"{path}: {section}.{key}: not a regular file")
        if st.st_mode & 0o077:
            raise UsageError(f"{path}: {section}.{key}: mode {stat.S_IMODE(st.st_mode):04o} lets "
                             "others read it: chmod 600 it")  # fmt: skip
        if st.st_uid not in (0, os.geteuid()):
            raise UsageError(f"{path}: {section}.{key}: owned by uid {st.st_uid}, not by root or "
                             "this user")  # fmt: skip
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read()
    finally:
        os.close(fd)


def parse_environment(text: str, path: str) -> dict[str, str]:
    """KEY=VALUE lines (`export ` and quotes allowed, # comments) of the environment file."""
    found: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").strip()
        name, sep, value = line.partition("=")
        name = name.strip()
        if not sep or not _ENV_NAME.match(name):
            raise UsageError(f"{path}: line {number}: not NAME=value")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        found[name] = value
    return found


def restic_env(offsite: Offsite, base: Mapping[str, str], cache_dir: str
               ) -> tuple[dict[str, str], list[str]]:  # fmt: skip
    """restic's environment, and the secrets it holds (for masking): the password reaches
    restic as a file name, the environment file's values as variables."""
    password = secret_file(offsite.password_file, "password_file")
    if len(password.strip()) < MIN_PASSWORD:
        raise UsageError(f"{offsite.password_file}: offsite.password_file: shorter than "
                         f"{MIN_PASSWORD} characters")  # fmt: skip
    env = {k: v for k, v in base.items() if not k.startswith(_AMBIENT)}
    extra: dict[str, str] = {}
    if offsite.environment_file:
        raw = secret_file(offsite.environment_file, "environment_file")
        extra = parse_environment(raw.decode("utf-8", "replace"), offsite.environment_file)
    env.update(extra)
    env.update(RESTIC_REPOSITORY=offsite.repository, RESTIC_PASSWORD_FILE=offsite.password_file,
               RESTIC_CACHE_DIR=cache_dir)  # fmt: skip
    secrets = [password.decode("utf-8", "replace").strip(), *url_secrets(offsite.repository)]
    secrets += [v for k, v in extra.items() if _SECRET_NAME.search(k)]
    return env, secrets


def url_secrets(repository: str) -> list[str]:
    """A password in the repository's URL (rest:https://user:PASSWORD@host/), as written
    and decoded: restic quotes a URL it cannot parse (a raw `%`, a `/`) whole."""
    password = (_url_password(repository) or ("", "", ""))[1]
    return [p for p in {password, unquote(password)} if p]


def _url_password(repository: str) -> tuple[str, str, str] | None:
    """(before, password, after) of `...://user:password@host...`. Up to the last `@`, as
    written: no URL parser, which a `/`, `#` or `?` in the password would mislead."""
    head, scheme, rest = repository.partition("://")
    userinfo, at, host = rest.rpartition("@")
    user, colon, password = userinfo.partition(":")
    if not (scheme and at and colon and password):
        return None
    return f"{head}://{user}:", password, f"@{host}"


# --- command lines (pure) ------------------------------------------------------------------


def _base(offsite: Offsite) -> list[str]:
    argv = ["restic"]
    for option in offsite.options:
        argv += ["-o", option]
    if offsite.limit_upload:
        argv += ["--limit-upload", str(offsite.limit_upload)]
    return argv


def init_argv(offsite: Offsite) -> tuple[str, ...]:
    return (*_base(offsite), "init")


def unlock_argv(offsite: Offsite) -> tuple[str, ...]:
    """Removes only stale locks: those of restic processes that died (a killed push)."""
    return (*_base(offsite), "unlock")


def safe_name(name: str) -> bool:
    """A snapshot name klink-sync made (a UTC time, a suffix): never `..`, `/` or a
    comma, so a repository's tag cannot steer a pull outside the destination."""
    return bool(_SAFE_NAME.fullmatch(name)) and ".." not in name and name_time(name) is not None


def deployment_id(project: str, host: str) -> str:
    """restic's --host for a deployment: its Compose project on this Docker host (Compose
    allows one project of a name per host; two sites named k-link stay apart)."""
    return f"{_TAG_UNSAFE.sub('_', project) or 'klink-sync'}@{_TAG_UNSAFE.sub('_', host)}"


def push_tags(snapshot: str, mode: str, deployment: str) -> tuple[str, ...]:
    return (TAG, f"snapshot:{snapshot}", f"mode:{_TAG_UNSAFE.sub('_', mode)}",
            f"deployment:{deployment}")  # fmt: skip


def backup_argv(offsite: Offsite, tags: Sequence[str], host: str, parent: str | None
                ) -> tuple[str, ...]:  # fmt: skip
    """Run inside the snapshot folder: the tree restic stores is the same for every push."""
    argv = [*_base(offsite), "backup", "--json", "--host", host, "--ignore-ctime"]
    for tag in tags:
        argv += ["--tag", tag]
    if parent:
        argv += ["--parent", parent]
    return (*argv, ".")


def snapshots_argv(offsite: Offsite) -> tuple[str, ...]:
    return (*_base(offsite), "snapshots", "--json", "--tag", TAG)


def check_argv(offsite: Offsite) -> tuple[str, ...]:
    return (*_base(offsite), "check", f"--read-data-subset={offsite.check_subset.strip()}")


def restore_argv(offsite: Offsite, snapshot_id: str, target: str) -> tuple[str, ...]:
    return (*_base(offsite), "restore", snapshot_id, "--target", target)


def forget_argv(offsite: Offsite, dry_run: bool = False) -> tuple[str, ...]:
    """Each deployment (host) kept by the rules on its own; `--prune` frees the space."""
    argv = [*_base(offsite), "forget", "--json", "--tag", TAG, "--group-by", "host"]
    for rule, value in offsite.retention.to_dict().items():
        if value:
            argv += [f"--{rule.replace('_', '-')}", str(value)]
    argv.append("--dry-run" if dry_run else "--prune")
    return tuple(argv)


# --- what restic says ------------------------------------------------------------------------


@dataclass(frozen=True)
class Stored:
    """One klink-sync snapshot in the repository."""

    id: str
    name: str
    time: str
    host: str
    mode: str
    deployment: str

    def to_dict(self) -> dict[str, str]:
        return {"id": self.id, "snapshot": self.name, "time": self.time, "host": self.host,
                "mode": self.mode, "deployment": self.deployment}  # fmt: skip


def stored(listing: object) -> list[Stored]:
    """`restic snapshots --json`, klink-sync's only, oldest first."""
    found = []
    for item in listing if isinstance(listing, list) else []:
        tags = {t.partition(":")[0]: t.partition(":")[2] for t in item.get("tags") or ()}
        if TAG not in tags or not safe_name(tags.get("snapshot", "")):
            continue  # not klink-sync's, or a name that could lead out of a destination
        found.append(Stored(item.get("short_id") or item["id"][:8], tags["snapshot"],
                            item.get("time", ""), item.get("hostname", ""),
                            tags.get("mode", ""), tags.get("deployment", "")))  # fmt: skip
    return sorted(found, key=lambda s: s.time)


def summary(stdout: str) -> dict:
    """The last line of `restic backup --json`: files new/changed/unmodified, data_added."""
    import json

    for line in reversed(stdout.splitlines()):
        line = line.strip()
        if line.startswith("{") and '"summary"' in line:
            return json.loads(line)
    return {}
