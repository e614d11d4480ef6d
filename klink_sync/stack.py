"""The Compose stack: which services run, stopping it, and always starting it again."""

from __future__ import annotations

import logging
import os
import shlex
import signal
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from . import docker, process, state
from .errors import KlinkSyncError, RestartFailed, RunFailed, UsageError

log = logging.getLogger(__name__)

CANDIDATES = docker.COMPOSE_COMMANDS


class Interrupted(KlinkSyncError):
    """A signal asked the run to stop; the stack is started again before exiting."""

    exit_code = 1


def detect_compose_command(configured: str | None = None) -> tuple[str, ...]:
    """The configured compose command, else the first of v2 and v1 that answers."""
    if configured:
        return tuple(shlex.split(configured))
    for candidate in CANDIDATES:
        try:
            process.run(docker.compose_version_argv(candidate))
            return candidate
        except process.CommandFailed:
            continue
    raise UsageError("no compose command works: tried 'docker compose' and 'docker-compose'")


@dataclass(frozen=True)
class Survey:
    """The services running, and their running containers (empty: Docker was not asked)."""

    running: tuple[str, ...]
    containers: Mapping[str, tuple[str, ...]]

    def ids(self, services: Sequence[str]) -> list[str]:
        return [cid for s in services for cid in self.containers.get(s, ())]


@dataclass(frozen=True)
class Stack:
    """One Compose project, addressed exactly as its admin addresses it: from its folder."""

    compose: tuple[str, ...]
    folder: Path
    compose_files: tuple[Path, ...]

    def argv(self, *args: str) -> tuple[str, ...]:
        """Any compose command of this project (for dry runs and advice to the admin)."""
        return docker.compose_argv(self.compose, self.compose_files, *args)

    def _run(self, argv: Sequence[str]) -> process.Result:
        """From the project's folder: compose finds its .env and project name there."""
        return process.run(argv, cwd=self.folder)

    def running_services(self) -> tuple[str, ...]:
        """The services with a container of their own running (see survey)."""
        return self.survey().running

    def _compose_running(self) -> tuple[str, ...]:
        """Compose's own answer, for a stand-in compose without Docker: it would count a
        one-off `compose run` container as its service running."""
        out = self._run(docker.compose_running_argv(self.compose, self.compose_files)).stdout
        return tuple(sorted({line.strip() for line in out.splitlines() if line.strip()}))

    def stop(self, timeout: int) -> None:
        self._run(docker.compose_stop_argv(self.compose, self.compose_files, timeout))

    def pause(self, ids: Sequence[str]) -> tuple[list[str], str]:
        """Freeze `ids` in one call: the ones frozen, and the error ('' if none). A container
        the daemon names in its error (already paused by someone, gone) is not ours to thaw."""
        if not ids:
            return [], ""
        try:
            process.run(docker.pause_argv(ids))
            return list(ids), ""
        except process.CommandFailed as exc:
            said = exc.result.stderr if exc.result is not None else str(exc)
            return [cid for cid in ids if cid not in said], str(exc)

    def unpause(self, ids: Sequence[str]) -> None:
        if ids:
            process.run(docker.unpause_argv(ids))

    @staticmethod
    def still_frozen(ids: Sequence[str]) -> list[str]:
        """Those of `ids` that are paused now, or that Docker could not tell about (a daemon
        that does not answer is no proof of a thaw); a container gone since is not."""
        frozen = []
        for cid in ids:
            try:
                out = process.run(docker.inspect_argv("{{.State.Paused}}", cid)).stdout
            except process.CommandFailed as exc:
                said = exc.result.stderr if exc.result is not None else str(exc)
                if "No such" not in said:
                    frozen.append(cid)
                continue
            if out.strip() != "false":
                frozen.append(cid)
        return frozen

    def project(self, ids: Sequence[str] = ()) -> str:
        """The Compose project (as Compose labelled its containers): of `ids`, else of any
        container of the stack, stopped ones too ('' when it has none: nothing to watch)."""
        ids = list(ids) or self._ids(())
        if not ids:
            return ""
        labels = process.run(docker.project_of_argv(ids[:1])).stdout.split()
        if not labels:
            raise UsageError(f"container {ids[0][:12]} has no Compose project label")
        return labels[0]

    @staticmethod
    def project_states(project: str) -> dict[str, tuple[str, str]]:
        """id -> (state, service) of every container of the project, one-off ones too."""
        out = process.run(docker.project_containers_argv(project)).stdout
        found = {}
        for line in out.splitlines():
            cid, state_, service = (line.split(None, 2) + ["", ""])[:3]
            if cid:
                found[cid] = (state_, service)
        return found

    @classmethod
    def running_in(cls, project: str, services: Collection[str] | None = None) -> list[str]:
        """The project's running containers (of `services`, when given), one-offs too."""
        states = cls.project_states(project) if project else {}
        return sorted(cid for cid, (st, service) in states.items()
                      if st == "running" and (services is None or service in services))  # fmt: skip

    def all_container_ids(self) -> set[str]:
        return set(self._ids(()))

    def start(self, services: Sequence[str]) -> None:
        if services:
            self._run(docker.compose_start_argv(self.compose, self.compose_files, services))

    def up(self, services: Sequence[str] = ()) -> None:
        """Create (if needed) and start: a restored or new folder may have no containers."""
        self._run(docker.compose_up_argv(self.compose, self.compose_files, services))

    def survey(self) -> Survey:
        """What runs now: one compose call (it also checks the compose files) and one docker
        call, where compose's own answers would take two (~0.1 s of CPU each)."""
        ids = self._ids(())
        try:
            found = self._containers(ids) if ids else None
        except process.CommandFailed:  # a container went meanwhile
            found = None
        if found is None:  # or a stand-in compose without Docker: ask compose itself
            return Survey(self._compose_running(), {})
        running: dict[str, list[str]] = {}
        for service, cid, status, _ in found:
            if status == "running":
                running.setdefault(service, []).append(cid)
        return Survey(tuple(sorted(running)), {k: tuple(v) for k, v in running.items()})

    def health(
        self, services: Sequence[str], known: Sequence[str] = ()
    ) -> tuple[list[str], tuple[str, ...]]:
        """Services not running, or with a healthcheck that does not yet say healthy;
        and every service that runs now. `known`: the containers to ask (else compose's)."""
        ids = list(known) or self._ids((), stopped=False)  # the running containers
        if not ids:  # none, or a stand-in compose without Docker: ask compose itself
            running = self._compose_running()
            return [s for s in services if s not in running], running
        try:
            found = self._containers(ids)
        except process.CommandFailed:
            if not known:
                raise
            return self.health(services)  # a known container is gone: ask compose
        ok: dict[str, bool] = {}
        runs: set[str] = set()
        for service, _, status, health in found:
            good = status == "running" and health in ("", "healthy")
            ok[service] = ok.get(service, True) and good
            if status == "running":
                runs.add(service)
        return [s for s in services if not ok.get(s, False)], tuple(sorted(runs))

    @staticmethod
    def _containers(ids: Sequence[str]) -> list[tuple[str, str, str, str]]:
        """(service, id, status, health) of each container, one-off `compose run` ones aside:
        they are not the service (it may be stopped while one runs)."""
        out = process.run(docker.states_argv(ids)).stdout
        found = []
        for line in out.splitlines():
            service, oneoff, cid, status, health = (line.split("\t") + [""] * 5)[:5]
            if line and oneoff != "True":
                found.append((service, cid, status, health))
        return found

    def _ids(self, services: Sequence[str], stopped: bool = True) -> list[str]:
        argv = docker.compose_ids_argv(self.compose, self.compose_files, services, stopped)
        return self._run(argv).stdout.split()

    def container_ids(self, services: Sequence[str]) -> list[str]:
        """The services' containers, stopped ones too (none asked: none, not all)."""
        return self._ids(services) if services else []

    def killed(self, services: Sequence[str], ids: Sequence[str] = ()) -> list[str]:
        """Services whose container was killed (SIGKILL, OOM) rather than exiting by itself.

        `ids`, taken before the stop, are asked in one docker call (compose calls cost
        ~0.1 s each, inside the downtime); if they are gone, compose is asked again.
        """
        try:
            ids = list(ids) or self.container_ids(services)
            out = process.run(docker.exits_argv(ids)).stdout if ids else ""
        except process.CommandFailed:
            if not ids:
                raise
            return self.killed(services)  # a container was replaced since: ask compose
        found = []
        for service, code, oom in (line.split() for line in out.splitlines() if line.strip()):
            if service in services and (code == "137" or oom == "true"):
                found.append(service)
        return sorted(set(found))

    def wait_running(
        self, services: Sequence[str], timeout: float, known: Sequence[str] = ()
    ) -> tuple[list[str], tuple[str, ...]]:
        """Wait until every service runs (and is healthy); return those that never did,
        and every service running at the end. `known`: see health."""
        deadline = time.monotonic() + timeout
        while True:
            waiting, running = self.health(services, known)
            if not waiting or time.monotonic() > deadline:
                return waiting, running
            time.sleep(0.1)

    def start_command(self, services: Sequence[str], recreate: bool = False) -> str:
        build = docker.compose_up_argv if recreate else docker.compose_start_argv
        return f"cd {shlex.quote(str(self.folder))} && " + process.show(
            build(self.compose, self.compose_files, services)
        )


_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class _SignalGuard:
    """Signals raise Interrupted while copying; during the restart they are only noted."""

    def __init__(self) -> None:
        self.deferring = False
        self.received: list[str] = []
        self.until = "the stack is started again"  # what a noted signal waits for

    def __call__(self, signum: int, _frame: object) -> None:
        """Noted even when it raises: Python swallows an exception raised while a weakref
        callback or a __del__ runs ("Exception ignored in"), and the end of the hold then
        still sees the signal and fails the run."""
        name = signal.Signals(signum).name
        self.received.append(name)
        if not self.deferring:
            raise Interrupted(f"interrupted by {name}")
        log.warning("signal %s received: ending once %s", name, self.until)

    @contextmanager
    def noting(self) -> Iterator[None]:
        """Signals are only noted while the block runs, and raised at its end: a command
        Docker goes on carrying out after its client is killed (a stop) is let finish, or a
        start sent after it would find the containers still stopping, and they end down."""
        self.deferring, self.until = True, "the stop under way has finished"
        yield
        self.deferring, self.until = False, "the stack is started again"
        if self.received:
            raise Interrupted(f"interrupted by {self.received[0]}")


@contextmanager
def signals_raise() -> Iterator[_SignalGuard]:
    """SIGTERM, SIGINT and SIGHUP raise Interrupted, so every `finally` cleans up."""
    guard = _SignalGuard()
    previous = {s: signal.signal(s, guard) for s in _SIGNALS}
    try:
        yield guard
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


@dataclass
class StopWindow:
    """What a stopped_stack block shares with its caller: times, and how to leave."""

    times: dict[str, float] = field(default_factory=dict)
    restart_on_error: bool = True  # a restore half done must not be started
    on_start: Callable[[], None] | None = None  # called as the start begins, if all went well
    running_after: tuple[str, ...] | None = None  # seen by the wait after the start
    hold: state.Hold | None = None  # as recorded on disk

    def restoring(self, snapshot: str) -> None:
        """From here on the data is being replaced: on disk first, then no restart on error
        (and none by a later run) until a restore finishes."""
        assert self.hold is not None
        self.hold = replace(self.hold, how=state.RESTORING, snapshot=snapshot)
        state.record(self.hold)
        self.restart_on_error = False

    def restored(self) -> None:
        assert self.hold is not None
        self.hold = replace(self.hold, how=state.STOPPED, snapshot="")
        state.record(self.hold)
        self.restart_on_error = True


@contextmanager
def stopped_stack(
    stack: Stack,
    running: Sequence[str],
    stop_timeout: int,
    start_timeout: float = 300,
    recreate: bool = False,
    known: Sequence[str] = (),
) -> Iterator[StopWindow]:
    """Stop the whole project; on leaving, by any path, start exactly `running` again.

    One signal handler covers both halves, so no signal can slip between them.
    `recreate` starts with `up -d` (a restore may have changed the compose file);
    else `known`, the containers running before, are the ones the wait asks about.
    """
    window = StopWindow()
    times = window.times
    failed = False
    window.hold = state.Hold(str(stack.folder), tuple(stack.compose),
                             tuple(map(str, stack.compose_files)), tuple(running), state.STOPPED,
                             os.getpid(), state.now(), stop_timeout=stop_timeout)  # fmt: skip
    state.record(window.hold)  # before the stop: a killed run's successor starts them
    with signals_raise() as guard:
        try:
            times["stop_begin"] = time.time()
            log.info("stopping the stack (timeout %ss)", stop_timeout)
            with guard.noting():
                stack.stop(stop_timeout)
                times["stop_end"] = time.time()  # a signal noted now: the stop did end
                window.hold = replace(window.hold, stop_ended=True)  # for a later record
                state.note_stop_ended(stack.folder)
            yield window
        except BaseException:
            failed = True
            raise
        finally:
            guard.deferring = True
            times["start_begin"] = time.time()
            if failed and not window.restart_on_error:
                log.error("leaving the stack stopped: its data is half restored")
            else:
                if "stop_end" not in times:
                    finish_stop(stack, stop_timeout)
                if not failed and window.on_start is not None:
                    window.on_start()
                window.running_after = _start_again(
                    stack, running, start_timeout, recreate, () if recreate else known
                )
                state.clear(stack.folder)  # started (or nothing to start): nothing held
            times["start_end"] = time.time()
        if guard.received:
            raise Interrupted(f"interrupted by {guard.received[0]} (the stack is back up)")


def finish_stop(stack: Stack, stop_timeout: int) -> None:
    """A stop whose client died (systemd's SIGTERM reaches it too) or failed goes on in
    Docker: a start sent now finds the containers still running, and they go down after
    it. A stop of our own waits for the one under way; its failure is only logged (the
    start that follows says what is down)."""
    log.warning("the stop did not finish: letting Docker finish it before the start")
    try:
        stack.stop(stop_timeout)
    except KlinkSyncError as exc:
        log.warning("%s", exc)


def _start_again(
    stack: Stack, running: Sequence[str], timeout: float, recreate: bool, known: Sequence[str]
) -> tuple[str, ...] | None:
    """Start `running` again and wait for it; the services running then (None: not asked)."""
    if not running:
        log.info("the stack was not running before: leaving it stopped")
        return None
    log.info("starting again: %s", ", ".join(running))
    error, after = "", None
    try:
        stack.up(running) if recreate else stack.start(running)
        down, after = stack.wait_running(running, timeout, known)
    except KlinkSyncError as exc:
        error, down = str(exc), list(running)
    if down:
        raise RestartFailed(
            f"services still down: {', '.join(sorted(set(down)))}"
            f"{' (' + error + ')' if error else ''}; start them now with: "
            f"{stack.start_command(running, recreate)}"
        )
    return after


@dataclass
class FreezeWindow:
    """What a paused_stack block shares with its caller."""

    times: dict[str, float] = field(default_factory=dict)
    frozen: list[str] = field(default_factory=list)  # the containers this run paused
    events: process.Watch | None = None  # Docker's events of the project, from the pause


@contextmanager
def paused_stack(stack: Stack, running: Sequence[str], ids: Sequence[str], project: str
                 ) -> Iterator[FreezeWindow]:  # fmt: skip
    """Freeze the containers `ids` of `project` (docker pause); on leaving, by any path,
    thaw the ones this run froze, and only those.

    Recorded on disk first (inside the signal handler: a signal from the record on reaches
    the thaw), so the next klink-sync command thaws a stack a killed run left frozen.
    Docker's events of the project are watched from just before the pause: check_frozen
    reads in them what a look at the end cannot see (a container that ran and went).
    """
    window = FreezeWindow()
    times = window.times
    hold = state.Hold(str(stack.folder), tuple(stack.compose),
                      tuple(map(str, stack.compose_files)), tuple(running), state.PAUSED,
                      os.getpid(), state.now(), containers=tuple(ids))  # fmt: skip
    with signals_raise() as guard, ExitStack() as watched:
        window.frozen = list(ids)  # until the pause says otherwise: thaw errs on the safe side
        try:
            state.record(hold)
            if project:
                window.events = watched.enter_context(
                    process.watching(docker.events_argv(project, time.time())))
            if ids:
                times["pause_begin"] = time.time()
                log.info("freezing the stack (docker pause): %s",
                         ", ".join(running) or f"{len(ids)} containers")  # fmt: skip
            else:  # the snapshot is of the copy's start
                times["copy_begin"] = time.time()
                watched_for = ("the copy watches for a start" if project else
                               "the project has no containers: a start is not watched")
                log.info("nothing of %s runs: nothing to freeze, %s",
                         ", ".join(running) or "the stack", watched_for)  # fmt: skip
            window.frozen, error = stack.pause(ids)
            if error:
                state.record(replace(hold, containers=tuple(window.frozen)))
                raise RunFailed(f"{error}; nothing copied, the containers this run froze are "
                                "thawed")  # fmt: skip
            if ids:
                times["pause_end"] = time.time()
            yield window
        finally:
            guard.deferring = True
            began = time.time()
            thaw(stack, window.frozen)
            if "pause_begin" in times:  # a freeze's length: only what was paused
                times.update(unpause_begin=began, unpause_end=time.time())
        if guard.received:
            raise Interrupted(f"interrupted by {guard.received[0]} (the stack is thawed)")


# Docker's container events that say a container ran, or came or went, during a freeze
# (extract-to-dir: `docker cp` into a container, paused or not, writes into its volumes)
MOVES = frozenset({"create", "start", "restart", "unpause", "die", "kill", "stop", "destroy",
                   "oom", "extract-to-dir"})  # fmt: skip
EVENTS_WAIT = 10.0  # seconds the event stream may take to show the pause itself


def moved_in_events(lines: Sequence[str], services: Collection[str] | None) -> list[str]:
    """The containers Docker's events (docker.events_argv lines) show running, created,
    stopped or removed; only those of `services` unless None (the whole project)."""
    moved = []
    for line in lines:
        action, _, rest = line.partition("\t")
        cid, _, service = rest.partition("\t")
        if action.split(":")[0].strip() in MOVES and (services is None or service in services):
            moved.append(cid)
    return moved


def _stream_shows_pause(window: FreezeWindow) -> bool:
    """The event stream is alive and has shown the pause of every frozen container: it
    was listening from before the freeze, so it has seen what happened since."""
    events = window.events
    assert events is not None
    paused = {ln.split("\t")[1] for ln in events.lines if ln.startswith("pause\t")}
    return events.alive() and set(window.frozen) <= paused


def check_frozen(stack: Stack, project: str, window: FreezeWindow,
                 services: Collection[str] | None = None) -> None:  # fmt: skip
    """At the end of the frozen copy, proof that the freeze held: every container frozen
    still is (none thawed or removed meanwhile) and Docker's events since the pause show no
    container of the project (of `services`, when only they were frozen) starting, stopping,
    created or removed, and none of them (one-offs too) runs now: with nothing running at
    the freeze, nothing was frozen, and a service started meanwhile ran through the copy."""
    assert window.events is not None, "check_frozen needs paused_stack's event stream"
    deadline = time.monotonic() + EVENTS_WAIT
    while not _stream_shows_pause(window) and time.monotonic() < deadline:
        time.sleep(0.02)
    if not _stream_shows_pause(window):
        raise RunFailed(f"cannot prove the freeze of project {project} held: Docker's event "
                        "stream stopped or never showed the pause; nothing promoted")  # fmt: skip
    states = stack.project_states(project)
    moved = [cid[:12] for cid, (st, service) in states.items()
             if st == "running" and (services is None or service in services)]  # fmt: skip
    moved += [cid[:12] for cid in window.frozen if states.get(cid, ("",))[0] != "paused"]
    moved += [cid[:12] for cid in moved_in_events(window.events.lines, services)]
    if not window.events.alive():
        raise RunFailed(f"cannot prove the freeze of project {project} held: Docker's event "
                        "stream stopped during the copy; nothing promoted")  # fmt: skip
    if moved:
        raise RunFailed(f"container {', '.join(sorted(set(moved)))} of project {project} ran "
                        "during the frozen copy (started or thawed meanwhile): the copy is not "
                        "of one instant; nothing promoted")  # fmt: skip


def thaw(stack: Stack, ids: Sequence[str]) -> list[str]:
    """Unpause `ids`, then forget the hold; the ones thawed. RestartFailed (70), the hold
    kept, when one stays frozen or Docker cannot tell: its users wait until someone
    unpauses it."""
    error, thawed = "", list(ids)
    try:
        stack.unpause(ids)  # the usual path: one call, every one of them paused
        still: list[str] = []
    except process.CommandFailed as exc:  # some were not paused, are gone, or Docker is away
        error = str(exc)
        paused = stack.still_frozen(ids)
        try:
            stack.unpause(paused)
        except process.CommandFailed as again:
            error = str(again)
        still = stack.still_frozen(paused)
        thawed = [cid for cid in ids if cid not in still]
    if still:
        raise RestartFailed(f"containers still frozen: {', '.join(c[:12] for c in still)}"
                            f"{' (' + error + ')' if error else ''}; thaw them now with: "
                            f"{process.show(docker.unpause_argv(still))}")  # fmt: skip
    if thawed:
        log.info("thawed (docker unpause): %d container(s)", len(thawed))
    state.clear(stack.folder)
    return thawed
