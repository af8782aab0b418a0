"""Two launches of one sweep into one folder: a per-job claim computes each job once (issue 14, item 9)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from dualsampler.runner.claim import CLAIM_FILE, JobClaimed, claim_job, read_claim

# One "job": inside the claim, return the finished result if there is one, else compute it (count the
# computation, take a while) and write it. Prints what this process did.
WORKER = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    from dualsampler.runner.claim import claim_job

    out = Path(sys.argv[1])
    Path(sys.argv[2]).touch()  # ready
    while not Path(sys.argv[3]).exists():  # start together
        time.sleep(0.01)
    with claim_job(out, poll=0.05) as claimed:
        result = out / "result.json"
        if result.exists():
            print("SKIPPED " + result.read_text(), flush=True)
        else:
            with open(out / "computations.log", "a") as log:
                log.write(f"{claimed}\\n")
            time.sleep(1.0)
            result.write_text(json.dumps({"value": 42}))
            print("COMPUTED " + result.read_text(), flush=True)
""")


def test_two_processes_on_one_job_compute_it_once_and_both_return_its_result(tmp_path):
    out, go = tmp_path / "job", tmp_path / "go"
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, str(out), str(tmp_path / f"ready{i}"), str(go)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    deadline = time.monotonic() + 120
    while not all((tmp_path / f"ready{i}").exists() for i in range(2)) and time.monotonic() < deadline:
        time.sleep(0.05)
    go.touch()
    outputs = [worker.communicate(timeout=120) for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0], [err[-2000:] for _, err in outputs]
    said = sorted(stdout.split(" ", 1)[0] for stdout, _ in outputs)
    assert said == ["COMPUTED", "SKIPPED"]
    assert [json.loads(stdout.split(" ", 1)[1]) for stdout, _ in outputs] == [{"value": 42}] * 2
    assert (out / "computations.log").read_text() == "True\n"
    assert not (out / CLAIM_FILE).exists()


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_claim_left_by_a_dead_process_is_taken_over(tmp_path):
    (tmp_path / CLAIM_FILE).write_text(json.dumps({"pid": dead_pid(), "host": socket.gethostname(), "token": "old"}))
    started = time.monotonic()
    with claim_job(tmp_path, timeout=5) as claimed:
        assert claimed and read_claim(tmp_path)["pid"] == os.getpid()
    assert time.monotonic() - started < 5
    assert not (tmp_path / CLAIM_FILE).exists()


def test_a_live_claim_is_waited_for_until_the_timeout(tmp_path):
    (tmp_path / CLAIM_FILE).write_text(json.dumps({"pid": os.getppid(), "host": socket.gethostname(), "token": "x"}))
    with pytest.raises(JobClaimed, match=f"claimed by pid {os.getppid()}"):
        with claim_job(tmp_path, timeout=0.3, poll=0.05):
            pytest.fail("the block must not run while another live process holds the claim")
    assert read_claim(tmp_path)["token"] == "x"  # never removed


def test_a_claim_from_another_host_is_trusted_and_skipped_without_waiting(tmp_path):
    (tmp_path / CLAIM_FILE).write_text(json.dumps({"pid": dead_pid(), "host": "elsewhere", "token": "x"}))
    with claim_job(tmp_path, wait=False) as claimed:
        assert claimed is False
    assert read_claim(tmp_path)["host"] == "elsewhere"


def test_the_claim_is_released_when_the_job_fails(tmp_path):
    with pytest.raises(RuntimeError, match="job failed"):
        with claim_job(tmp_path) as claimed:
            assert claimed and (tmp_path / CLAIM_FILE).exists()
            raise RuntimeError("job failed")
    assert not (tmp_path / CLAIM_FILE).exists()
    with claim_job(tmp_path, wait=False) as claimed:
        assert claimed is True


@pytest.mark.parametrize("kwargs, key", [(dict(timeout=-1), "timeout"), (dict(timeout=float("nan")), "timeout"),
                                         (dict(poll=0), "poll")])
def test_bad_claim_settings_are_refused(tmp_path, kwargs, key):
    with pytest.raises(ValueError, match=key):
        with claim_job(tmp_path, **kwargs):
            pass
