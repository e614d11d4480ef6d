"""systemd units for nightly runs: pure text builders, and writing them into a unit folder."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

SERVICE = "klink-sync.service"
TIMER = "klink-sync.timer"
RECOVER = "klink-sync-recover.service"
UNIT_DIR = "/etc/systemd/system"
DEFAULT_CONFIG = "/etc/klink-sync/config.yml"
DEFAULT_CALENDAR = "daily"
DEFAULT_DELAY = "30m"
START_TIMEOUT = "12h"  # a first backup of a large deployment copies everything
# stop_timeout (MariaDB's clean shutdown) + restarting the stack, after a `systemctl stop`
STOP_TIMEOUT = "15min"


class UnitValueError(ValueError):
    """A path systemd could not be given safely in a unit file."""


def _escape(value: str) -> str:
    """% starts a specifier and $ a variable in unit files: doubled, they are literal."""
    if any(c in value for c in "\"'\\") or not value.isprintable():
        raise UnitValueError(f"{value!r}: quotes, backslashes and control characters "
                             "cannot go into a systemd unit")  # fmt: skip
    return value.replace("%", "%%").replace("$", "$$")


def _quote(arg: str) -> str:
    """An ExecStart= word: quoted when it holds a space."""
    value = _escape(arg)
    return f'"{value}"' if any(c.isspace() for c in value) else value


def _path_setting(path: str) -> str:
    """A path for ReadWritePaths=: '-' ignores it when missing; spaces need quotes."""
    value = _escape(path)
    return f'"-{value}"' if any(c.isspace() for c in value) else f"-{value}"


# the command words of each mode (Mode's values): what the nightly service runs
MODE_WORDS = {"cold": ("cold",), "hot-cold": ("hot-cold",),
              "hot-cold-pause": ("hot-cold", "--pause"), "live": ("live",)}  # fmt: skip


def service_unit(
    exec_path: str,
    config: str = DEFAULT_CONFIG,
    writable: Sequence[str] = (),
    mode: str = "hot-cold",
) -> str:
    """The oneshot service: one run, low priority, hardened, as root (Docker, owners).

    Root is needed: the Docker socket, and copying files owned by containers' users with
    their numeric owners. Hardening keeps /usr, /boot, /etc and the home folders
    read-only; `writable` (the destination, the metrics file's folder) is let through.
    Not set, on purpose: RestrictSUIDSGID (rsync could not copy a setgid folder),
    PrivateDevices/PrivateNetwork/RestrictAddressFamilies (the Docker socket, pings),
    ProtectSystem=strict (/run/lock and the destination's parents), PrivateUsers.
    """
    command = " ".join(_quote(a) for a in (exec_path, *MODE_WORDS[mode], "--config", config))
    # after the run ends by any path (a SIGKILL at TimeoutStartSec too): nothing stays
    # stopped or frozen until the next run
    recover = " ".join(_quote(a) for a in (exec_path, "recover", "--config", config))
    lines = [
        "[Unit]",
        "Description=klink-sync: hot and cold backup of the K-Link deployment",
        "After=docker.service network-online.target local-fs.target remote-fs.target",
        "Wants=network-online.target",
        "",
        "[Service]",
        "Type=oneshot",
        f"ExecStart={command}",
        f"ExecStopPost={recover}",
        "SyslogIdentifier=klink-sync",
        "Nice=10",
        "IOSchedulingClass=idle",
        f"TimeoutStartSec={START_TIMEOUT}",
        f"TimeoutStopSec={STOP_TIMEOUT}",
        "UMask=0077",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "ProtectSystem=full",
        "ProtectHome=read-only",
        "ProtectKernelTunables=yes",
        "ProtectKernelModules=yes",
        "ProtectControlGroups=yes",
        "RestrictRealtime=yes",
        "LockPersonality=yes",
    ]
    lines += [f"ReadWritePaths={_path_setting(p)}" for p in dict.fromkeys(writable)]
    return "\n".join(lines) + "\n"


def timer_unit(on_calendar: str = DEFAULT_CALENDAR, delay: str = DEFAULT_DELAY) -> str:
    """The timer: `on_calendar` (systemd.time), runs missed while off, spread by `delay`."""
    return "\n".join([
        "[Unit]",
        "Description=klink-sync: nightly backup of the K-Link deployment",
        "",
        "[Timer]",
        f"OnCalendar={on_calendar}",
        "Persistent=true",
        f"RandomizedDelaySec={delay}",
        f"Unit={SERVICE}",
        "",
        "[Install]",
        "WantedBy=timers.target",
    ]) + "\n"  # fmt: skip


def writable_paths(dest: str | None, metrics_file: str | None,
                   offsite_repository: str | None = None) -> list[str]:  # fmt: skip
    """What the service must write: the destination, the metrics file's folder, and an
    offsite repository that is a folder of this host (`/path` or `local:/path`)."""
    far = bool(dest) and ":" in dest.split("/", 1)[0]  # [user@]host:/path: on another host
    paths = [os.path.abspath(dest)] if dest and not far else []
    if metrics_file:
        paths.append(os.path.dirname(os.path.abspath(metrics_file)))
    repository = (offsite_repository or "").removeprefix("local:")
    if repository.startswith("/"):
        paths.append(os.path.abspath(repository))
    return paths


def units(
    exec_path: str,
    config: str = DEFAULT_CONFIG,
    on_calendar: str = DEFAULT_CALENDAR,
    writable: Sequence[str] = (),
    mode: str = "hot-cold",
) -> dict[str, str]:
    """The units by file name: the nightly service and its timer, and the boot-time one."""
    return {SERVICE: service_unit(exec_path, config, writable, mode),
            TIMER: timer_unit(on_calendar),
            RECOVER: recover_unit(exec_path, config)}  # fmt: skip


def recover_unit(exec_path: str, config: str = DEFAULT_CONFIG) -> str:
    """At boot, once Docker runs: start again what a klink-sync run cut off by a power loss
    or a kill had stopped (its record is on disk, not in /run)."""
    command = " ".join(_quote(a) for a in (exec_path, "recover", "--config", config))
    return "\n".join([
        "[Unit]",
        "Description=klink-sync: start again what an interrupted backup left stopped",
        "After=docker.service local-fs.target",
        "Wants=docker.service",
        "",
        "[Service]",
        "Type=oneshot",
        f"ExecStart={command}",
        "SyslogIdentifier=klink-sync",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
    ]) + "\n"


def enable_commands() -> list[str]:
    return ["systemctl daemon-reload", f"systemctl enable --now {TIMER}",
            f"systemctl enable {RECOVER}"]  # fmt: skip


def write_units(unit_dir: Path, files: Mapping[str, str]) -> list[Path]:
    """Write each unit (0644) under a temporary name, then rename it into place."""
    unit_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in files.items():
        path = unit_dir / name
        tmp = unit_dir / f".{name}.tmp"
        tmp.write_text(text, encoding="utf-8")
        tmp.chmod(0o644)
        os.replace(tmp, path)
        written.append(path)
    return written
