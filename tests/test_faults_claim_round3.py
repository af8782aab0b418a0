"""Claims that cannot strand a sweep (issue 19, part 3): written whole or not at all, an unreadable claim stale
after `UNREADABLE_GRACE_SECONDS`, and a finished job never waited on. Every wait here is bounded: a hang fails."""

from __future__ import annotations

import errno
import json
import os
import socket
import threading
import time

import pytest

from dualsampler.runner import claim as claims
from dualsampler.runner.claim import CLAIM_FILE, UNREADABLE_GRACE_SECONDS, JobClaimed, claim_job, read_claim

from run_app import run_app

TINY = ["model=random_world", "steps=2", "seeds=1", "batch_size=1", "height=64", "width=64", "metrics=seams",
        "logger=none"]


def live_claim(folder) -> None:
    """A claim held by a live process on this host (the test's parent), never stale."""
    (folder / CLAIM_FILE).write_text(json.dumps({"pid": os.getppid(), "host": socket.gethostname(), "token": "x"}))


def age(path, seconds: float) -> None:
    past = time.time() - seconds
    os.utime(path, (past, past))


def test_a_claim_whose_write_fails_is_not_left_behind(tmp_path, monkeypatch):
    def disk_full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(claims.os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space left"):
        with claim_job(tmp_path, timeout=1):
            pytest.fail("no claim was made")
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # neither the claim nor its temporary file
    monkeypatch.undo()
    with claim_job(tmp_path, timeout=1) as claimed:
        assert claimed and read_claim(tmp_path)["pid"] == os.getpid()


def test_a_claim_is_never_seen_half_written(tmp_path, monkeypatch):
    """While the claim's content is being written, no claim file exists yet."""
    seen = []
    real_fsync = os.fsync

    def look(fd: int) -> None:
        seen.append((tmp_path / CLAIM_FILE).exists())
        real_fsync(fd)

    monkeypatch.setattr(claims.os, "fsync", look)
    with claim_job(tmp_path, timeout=1):
        assert seen == [False] and read_claim(tmp_path)["token"]


@pytest.mark.parametrize("content", ["", "{\"pid\": 12", "[]", "{}"], ids=["empty", "truncated", "list", "no pid"])
def test_an_unreadable_claim_is_taken_over_after_the_grace(tmp_path, content):
    path = tmp_path / CLAIM_FILE
    path.write_text(content)
    with pytest.raises(JobClaimed):  # within the grace it may be a writer mid-write: wait
        with claim_job(tmp_path, timeout=0.3, poll=0.05):
            pytest.fail("a fresh unreadable claim is waited for")
    age(path, UNREADABLE_GRACE_SECONDS + 1)
    started = time.monotonic()
    with claim_job(tmp_path, timeout=5, poll=0.05) as claimed:
        assert claimed and read_claim(tmp_path)["pid"] == os.getpid()
    assert time.monotonic() - started < 2
    assert not path.exists()


def test_a_finished_job_is_not_waited_on_while_another_process_holds_its_claim(tmp_path):
    live_claim(tmp_path)
    started = time.monotonic()
    with claim_job(tmp_path, timeout=10, poll=0.05, finished=lambda: True) as claimed:
        assert claimed is False
    assert time.monotonic() - started < 2
    assert read_claim(tmp_path)["token"] == "x"  # the other process's claim is left alone


def launch_bounded(*args: str, seconds: float = 240):
    """`run_app(*args)` in a thread; fails the test instead of hanging when it has not returned after `seconds`."""
    done = []
    thread = threading.Thread(target=lambda: done.append(run_app(*args)), daemon=True)
    thread.start()
    thread.join(seconds)
    assert done, f"dualsampler-run {' '.join(args)} still waits after {seconds} s"
    return done[0]


@pytest.mark.slow
def test_a_relaunch_neither_waits_on_a_finished_job_nor_on_a_claim_left_empty(tmp_path):
    sweep = tmp_path / "sweep"
    args = [*TINY, "overlap_factor=1,2", f"hydra.sweep.dir={sweep}"]
    assert launch_bounded(*args).returncode == 0
    first, second = sorted(p.parent for p in sweep.rglob("result.json"))
    live_claim(first)  # its owner still logging, say: the result is there, so nothing waits for it
    (second / "result.json").unlink()
    (second / CLAIM_FILE).write_text("")  # a crash while writing the claim, long ago
    age(second / CLAIM_FILE, UNREADABLE_GRACE_SECONDS + 1)
    again = launch_bounded(*args)
    assert again.returncode == 0, again.stderr[-3000:]
    assert (second / "result.json").is_file() and not (second / CLAIM_FILE).exists()
    assert read_claim(first)["token"] == "x"


def test_the_temporary_file_of_a_writer_that_died_mid_write_is_removed_by_the_next_claim(tmp_path):
    left = tmp_path / f"{CLAIM_FILE}.abc123.tmp"
    left.write_text('{"pid": 1')
    fresh = tmp_path / f"{CLAIM_FILE}.def456.tmp"  # another writer's, being written now
    fresh.write_text("")
    age(left, UNREADABLE_GRACE_SECONDS + 1)
    with claim_job(tmp_path, timeout=1) as claimed:
        assert claimed and not left.exists() and fresh.exists()
