"""A per-job claim, so two launches of one sweep into the same folder never compute a job twice.

The claim is `<job folder>/.claim.json` holding the owner's pid, host, process start time and a random token. It
is written whole to a temporary file and then linked into place (`os.link` fails when a claim exists), so a claim
is never seen half-written and a failed write (disk full, a crash) leaves no claim behind (the temporary file of a
writer that died is removed by the next claim once older than the grace below). It is removed when the owner
leaves the `with` block (also on error).
A claim is stale, and taken over, when its owner is a dead process on this host (pid gone, or reused by a process
started later), or when it cannot be read and is older than `UNREADABLE_GRACE_SECONDS` (a claim left by a writer
that stopped mid-write; no claim this module writes is ever unreadable). A readable claim from another host is
trusted as live. Take-overs are serialised by an `flock` on `.claim.lock`, so two processes never both remove a
stale claim, and only they remove others' claims. A waiting process stops waiting as soon as `finished()` says
the job's result is there: a finished job is never waited on.

    with claim_job(out_dir, finished=has_result) as claimed:  # waits while another process computes the job
        done = finished_result(...)          # it may have finished meanwhile: re-check inside the claim
        ...
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import socket
import tempfile
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

log = logging.getLogger(__name__)

CLAIM_FILE = ".claim.json"
TAKEOVER_LOCK = ".claim.lock"
POLL_SECONDS = 0.5
NOTE_SECONDS = 60.0  # how often a waiting process repeats whom it waits for
# An unreadable claim older than this is stale: this module's claims are complete from the moment they exist, so
# only a writer that died mid-write (or an older version of this module, which wrote in place) leaves one, and
# 30 s is far longer than writing a hundred bytes takes.
UNREADABLE_GRACE_SECONDS = 30.0
UNREADABLE = {"pid": "?", "host": "?", "unreadable": True}


class JobClaimed(RuntimeError):
    """Raised by `claim_job(..., timeout=...)` when another live process still holds the claim at the deadline."""


def process_start(pid: int) -> int | None:
    """Start time of process `pid` in clock ticks since boot (Linux /proc/<pid>/stat field 22); None elsewhere."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def _alive(pid: int, started: int | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by another user
    now_started = process_start(pid)
    return started is None or now_started is None or now_started == started


def read_claim(out_dir: Path) -> dict[str, Any] | None:
    """The claim on `out_dir` (`pid`, `host`, `started`, `token`, `since`); None when there is none; `UNREADABLE`
    plus the file's age in seconds (`age`) when it exists but does not hold a claim (empty, truncated, not JSON)."""
    path = Path(out_dir) / CLAIM_FILE
    try:
        text = path.read_text()
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return None
    except OSError:
        return {**UNREADABLE, "age": 0.0}
    try:
        claim = json.loads(text)
        int(claim["pid"])
    except (ValueError, TypeError, KeyError):
        return {**UNREADABLE, "age": age}
    return claim if isinstance(claim, dict) else {**UNREADABLE, "age": age}


def is_stale(claim: dict[str, Any], grace: float = UNREADABLE_GRACE_SECONDS) -> bool:
    """True when the claim's owner is a dead process on this host, or the claim is unreadable and older than
    `grace` seconds."""
    if claim.get("unreadable"):
        return claim.get("age", 0.0) > grace
    return claim.get("host") == socket.gethostname() and not _alive(int(claim["pid"]), claim.get("started"))


def _create(path: Path, claim: dict[str, Any]) -> bool:
    """Write `claim` whole to a temporary file beside `path`, then link it to `path`: True when the link made it
    the claim, False when a claim was there. Any failure removes the temporary file and raises (no claim made)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f"{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(claim, f)
            f.flush()
            os.fsync(f.fileno())
        os.link(tmp, path)
    except FileExistsError:
        return False
    finally:
        Path(tmp).unlink(missing_ok=True)
    return True


def _take_over_stale(out_dir: Path) -> None:
    """Remove the claim if it is stale; under the take-over lock, so its content cannot change meanwhile."""
    with open(out_dir / TAKEOVER_LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        claim = read_claim(out_dir)
        if claim is not None and is_stale(claim):
            if claim.get("unreadable"):
                log.warning("%s: taking over an unreadable claim %.0f s old", out_dir, claim["age"])
            else:
                log.warning("%s: taking over the stale claim of dead pid %s on %s", out_dir, claim["pid"], claim["host"])
            (out_dir / CLAIM_FILE).unlink(missing_ok=True)


def remove_stale_temporaries(out_dir: Path, grace: float = UNREADABLE_GRACE_SECONDS) -> None:
    """Remove the temporary files of claims whose writer stopped before linking them (older than `grace` s)."""
    for tmp in out_dir.glob(f"{CLAIM_FILE}.*.tmp"):
        try:
            if time.time() - tmp.stat().st_mtime > grace:
                tmp.unlink()
        except FileNotFoundError:
            pass


def try_claim(out_dir: Path, claim: dict[str, Any]) -> dict[str, Any] | None:
    """Create the claim; None when it is ours now, else the claim that holds the job (a live other process's)."""
    path = Path(out_dir) / CLAIM_FILE
    if _create(path, claim):
        return None
    held = read_claim(out_dir)
    if held is not None and is_stale(held):
        _take_over_stale(Path(out_dir))
        if _create(path, claim):
            return None
        held = read_claim(out_dir)
    return held or {"pid": "?", "host": "?"}  # released meanwhile: the next try takes it


@contextmanager
def claim_job(out_dir: str | Path, wait: bool = True, timeout: float | None = None, poll: float = POLL_SECONDS,
              finished: Callable[[], bool] = lambda: False) -> Iterator[bool]:
    """Hold the claim on the job folder `out_dir` for the block; yields True when this process holds it.

    While another live process holds it: `wait=True` polls every `poll` s until it is released (then the caller
    re-checks for the result the other process wrote), raising JobClaimed after `timeout` s if given;
    `wait=False` yields False at once (the caller skips the job). Whenever `finished()` is true (the job's result
    is there) it yields False at once, without the claim: a finished job is never waited on. The claim is removed
    on leaving the block.
    """
    if timeout is not None and not timeout >= 0:
        raise ValueError(f"timeout must be None or a number of seconds >= 0; got {timeout!r}")
    if not poll > 0:
        raise ValueError(f"poll must be a number of seconds > 0; got {poll!r}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pid = os.getpid()
    mine = {"pid": pid, "host": socket.gethostname(), "started": process_start(pid), "token": uuid.uuid4().hex, "since": time.time()}
    deadline = None if timeout is None else time.monotonic() + timeout
    next_note = time.monotonic()
    while (held := try_claim(out_dir, mine)) is not None:
        if finished():
            log.info("%s: claimed by pid %s on %s, but its result is there: not waiting", out_dir, held.get("pid"),
                     held.get("host"))
            yield False
            return
        if not wait:
            log.info("%s: claimed by pid %s on %s, skipping", out_dir, held.get("pid"), held.get("host"))
            yield False
            return
        if deadline is not None and time.monotonic() >= deadline:
            raise JobClaimed(f"{out_dir} is still claimed by pid {held.get('pid')} on {held.get('host')} after {timeout} s")
        if time.monotonic() >= next_note:  # a claim from another host is never taken over: say how to release it
            log.info("%s: claimed by pid %s on %s, waiting (if that process is gone, remove %s)", out_dir,
                     held.get("pid"), held.get("host"), out_dir / CLAIM_FILE)
            next_note = time.monotonic() + NOTE_SECONDS
        time.sleep(poll)
    remove_stale_temporaries(out_dir)
    try:
        yield True
    finally:
        if (read_claim(out_dir) or {}).get("token") == mine["token"]:
            try:
                (out_dir / CLAIM_FILE).unlink()
            except OSError as error:
                if error.errno != errno.ENOENT:
                    raise
