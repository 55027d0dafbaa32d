"""Who writes into a run directory now: RUN/lock.json keeps a second writer out.

`vidcap train` holds the lock from its first file to its last (rank 0 alone under torchrun);
`vidcap evaluate` should hold it while it writes predictions and scores (`RunLock(run,
"evaluate")`). The file names the owner: pid, host, start time, purpose and command. It is made
complete under a temporary name and linked into place, which fails when a lock is there: two
processes cannot both take it.

A lock whose owner is gone is taken over: on this host, when its pid is not alive (or is another
process started after the lock), with a log line; a lock from another host only when asked
(`take_over=True`, the command line's `--take-over-lock`, or VIDCAP_TAKE_OVER_LOCK=1), since this
host cannot see that host's processes. Readers (`load_run`, `vidcap caption`) take no lock.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType

from vidcap.errors import RunError
from vidcap.runs.layout import RunLayout

log = logging.getLogger(__name__)

TAKE_OVER_ENV = "VIDCAP_TAKE_OVER_LOCK"
"""Set to 1 to take over a run's lock whatever holds it (like `--take-over-lock`)."""


@dataclass(frozen=True)
class LockOwner:
    """What lock.json says about the process holding a run."""

    pid: int
    host: str
    started: float
    """Seconds since the epoch."""
    purpose: str
    command: str
    token: str

    def describe(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.started))
        return f"pid {self.pid} on {self.host} ({self.purpose} since {when}: {self.command})"


def read_owner(file: Path) -> LockOwner | None:
    """The owner a lock file names; None when it is gone or unreadable."""
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
        return LockOwner(int(data["pid"]), str(data["host"]), float(data["started"]),
                         str(data["purpose"]), str(data["command"]), str(data["token"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def is_alive(pid: int, started: float) -> bool:
    """Whether process `pid` of this host runs and is not a newer process that reused the pid
    (checked with psutil when it is installed)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, another user's
    except OSError:
        return False
    try:
        import psutil
    except ImportError:
        return True
    try:
        return psutil.Process(pid).create_time() <= started + 1.0
    except psutil.Error:
        return False


class RunLock:
    """The lock of one run directory: `with RunLock(run, "train"):` or acquire/release."""

    def __init__(self, run_dir: str | Path | RunLayout, purpose: str, *,
                 take_over: bool = False) -> None:
        self.layout = run_dir if isinstance(run_dir, RunLayout) else RunLayout(Path(run_dir))
        self.purpose = purpose
        self.take_over = take_over or os.environ.get(TAKE_OVER_ENV, "") not in ("", "0")
        self.owner = LockOwner(os.getpid(), socket.gethostname(), time.time(), purpose,
                               " ".join(["vidcap", *sys.argv[1:]])[:300], uuid.uuid4().hex)
        self.held = False

    def acquire(self) -> "RunLock":
        """Take the lock (creating the run folder); RunError naming the owner when another
        process holds it, or when the folder cannot be written."""
        root, file = self.layout.root, self.layout.lock
        try:
            root.mkdir(parents=True, exist_ok=True)
            for _ in range(5):
                if self._create(file):
                    self.held = True
                    return self
                seen = read_owner(file)
                if seen is None and not file.exists():
                    continue  # released meanwhile
                self._check_may_take_over(seen)
                self._break(file, seen)
        except OSError as err:
            raise RunError(f"{root}: cannot write into the run folder "
                           f"({err.strerror or err})") from None
        raise RunError(f"{file}: other processes keep taking this run's lock; try again")

    def _create(self, file: Path) -> bool:
        """Whether the lock file was made (False: one is there). Written whole under a temporary
        name and hard-linked into place, which fails when the name is taken; where the file
        system has no hard links, created exclusively and then written."""
        text = json.dumps(asdict(self.owner))
        tmp = file.with_name(f".{file.name}.{os.getpid()}.tmp")
        try:
            tmp.write_text(text, encoding="utf-8")
            os.link(tmp, file)
            return True
        except FileExistsError:
            return False
        except OSError:  # no hard links here (FAT, some network shares)
            return self._create_exclusive(file, text)
        finally:
            tmp.unlink(missing_ok=True)

    @staticmethod
    def _create_exclusive(file: Path, text: str) -> bool:
        try:
            fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        return True

    def _check_may_take_over(self, seen: LockOwner | None) -> None:
        file = self.layout.lock
        if self.take_over:
            log.warning("%s: taking over the lock of %s, as asked", self.layout.root,
                        seen.describe() if seen else "an unknown process")
            return
        if seen is None:
            raise RunError(f"{file}: unreadable lock; if no other process uses this run, delete "
                           "it or pass --take-over-lock")
        if seen.host == self.owner.host and not is_alive(seen.pid, seen.started):
            log.warning("%s: taking over the lock of %s: that process is gone",
                        self.layout.root, seen.describe())
            return
        where = "" if seen.host == self.owner.host else (
            "; it is on another host, so vidcap cannot tell whether it still runs: if it does "
            "not, pass --take-over-lock")
        raise RunError(f"{self.layout.root}: in use by {seen.describe()}{where}")

    @staticmethod
    def _break(file: Path, seen: LockOwner | None) -> None:
        """Remove the lock judged stale; one taken meanwhile by a third process is put back."""
        aside = file.with_name(f".{file.name}.stale-{os.getpid()}")
        try:
            os.rename(file, aside)
        except FileNotFoundError:
            return
        if read_owner(aside) != seen:
            try:
                os.link(aside, file)
            except FileExistsError:
                pass
        aside.unlink(missing_ok=True)

    def release(self) -> None:
        """Give the lock back (only if this process still holds it)."""
        if not self.held:
            return
        self.held = False
        owner = read_owner(self.layout.lock)
        if owner is not None and owner.token == self.owner.token:
            self.layout.lock.unlink(missing_ok=True)

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()

