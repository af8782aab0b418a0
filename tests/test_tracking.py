"""W&B tracking: offline opens no network socket, a tracker failure never raises, auto falls back to offline fast.

Each W&B run happens in a subprocess (wandb keeps process-wide state) with HOME in tmp_path (no login) and an
audit hook recording every `socket.getaddrinfo` and `socket.connect` until the process exits (wandb's exporter
would flush at exit).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

import pytest
from helpers import offline_table, read_offline_run

from dualsampler.tracking import NullTracker, WandbTracker, image_table

LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1"}
CLOSED_LOCAL_PORT = "http://127.0.0.1:9"  # the discard port: nothing listens, connections are refused at once

CHILD = textwrap.dedent("""
    import atexit, json, sys
    seen = []

    def audit(event, args):
        if event == "socket.getaddrinfo":
            seen.append({"lookup": str(args[0])})
        elif event == "socket.connect":
            seen.append({"connect": args[1] if isinstance(args[1], str) else list(map(str, args[1][:2]))})

    sys.addaudithook(audit)
    atexit.register(lambda: print("SOCKETS " + json.dumps(seen), flush=True))  # registered first: runs last

    from pathlib import Path
    from PIL import Image
    from dualsampler.tracking import WandbTracker

    out, kwargs = Path(sys.argv[1]), json.loads(sys.argv[2])
    grid = out / "grid.png"
    if kwargs.pop("grid", True):
        Image.new("RGB", (8, 8), "red").save(grid)
    rows = kwargs.pop("rows", [{"seed": 0, "seam/color_jump": 0.25}])
    for index, row in enumerate(rows):
        if "image" in row:
            (out / row["image"]).parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (8, 8), (40 * index, 0, 255)).save(out / row["image"])
    status = WandbTracker(group="sweep", **kwargs).log_job(
        "overlap_factor=2", {"overlap_factor": 2, "dual": {"mode": "seed"}}, {"seam/color_jump": 0.25},
        rows, grid, out)
    print("STATUS " + json.dumps(status), flush=True)
""")


def child_env(tmp_path, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    return {**env, "HOME": str(tmp_path / "home"), "OMP_NUM_THREADS": "1", **extra}


def log_in_subprocess(tmp_path, env=None, **kwargs):
    """Run one WandbTracker.log_job in a fresh process: (status, sockets seen, seconds)."""
    out = tmp_path / "job"
    out.mkdir(exist_ok=True)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", CHILD, str(out), json.dumps(kwargs)], capture_output=True, text=True,
                          env=env or child_env(tmp_path), timeout=240)
    seconds = time.perf_counter() - started
    assert done.returncode == 0, done.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in done.stdout.splitlines() if line.startswith(("STATUS ", "SOCKETS ")))
    return json.loads(lines["STATUS"]), json.loads(lines["SOCKETS"]), seconds


def non_local(sockets):
    """The lookups and connections that leave the machine: any host name but localhost, any IP but loopback;
    a connect to a path is a Unix socket (wandb's own local service)."""
    bad = []
    for event in sockets:
        if "lookup" in event and event["lookup"] not in LOCAL_HOSTS:
            bad.append(event)
        if "connect" in event and not isinstance(event["connect"], str) and event["connect"][0] not in LOCAL_HOSTS:
            bad.append(event)
    return bad


def test_an_offline_run_opens_no_socket_but_wandbs_local_one(tmp_path):
    status, sockets, _ = log_in_subprocess(tmp_path, mode="offline")
    assert status == {"tracker": "wandb", "ok": True, "mode": "offline"}
    assert non_local(sockets) == []
    assert any(isinstance(event.get("connect"), str) for event in sockets)  # the hook saw wandb's local socket


@pytest.mark.slow  # a W&B run in a child process (seconds); the offline-socket one stays in the quick subset
def test_auto_without_credentials_logs_offline_without_network(tmp_path):
    status, sockets, _ = log_in_subprocess(tmp_path, mode="auto")
    assert status["ok"] and status["mode"] == "offline"
    assert non_local(sockets) == []


@pytest.mark.slow  # a W&B run in a child process (seconds); the offline-socket one stays in the quick subset
def test_the_offline_run_holds_the_logged_config_metrics_and_grid(tmp_path):
    log_in_subprocess(tmp_path, mode="offline")
    run = read_offline_run(next((tmp_path / "job" / "wandb").glob("offline-run-*")), env=child_env(tmp_path))
    assert (run["project"], run["group"], run["name"]) == ("dualsampler", "sweep", "overlap_factor=2")
    assert run["config"]["overlap_factor"] == 2 and run["config"]["dual"] == {"mode": "seed"}
    assert run["history"][0]["seam/color_jump"] == 0.25 and run["summary"]["seam/color_jump"] == 0.25
    assert run["history"][0]["grid._type"] == "image-file" and run["history"][0]["per_seed._type"] == "table-file"


def logged_table(tmp_path, key="per_seed") -> tuple[dict, set[str]]:
    """The table `key` of the job's offline run as W&B stored it (`helpers.offline_table`)."""
    run_file = next((tmp_path / "job" / "wandb").glob("offline-run-*/run-*.wandb"))
    return offline_table(run_file, child_env(tmp_path), key)


@pytest.mark.slow  # a W&B run in a child process (seconds); the offline-socket one stays in the quick subset
def test_the_table_has_one_row_per_image_with_the_image(tmp_path):
    rows = [{"item": item, "seed": seed, "image": f"images/{item}/seed{seed}.png", "seam/color_jump": 0.1 * seed}
            for item in ("cat", "dog") for seed in (0, 1)]
    status, _, _ = log_in_subprocess(tmp_path, mode="offline", rows=rows)
    assert status["ok"], status
    table, files = logged_table(tmp_path)
    assert table["columns"] == ["item", "seed", "image", "seam/color_jump"]
    assert [row[:2] + row[3:] for row in table["data"]] == [["cat", 0, 0.0], ["cat", 1, 0.1], ["dog", 0, 0.0],
                                                             ["dog", 1, 0.1]]
    images = [row[2] for row in table["data"]]
    assert [image["_type"] for image in images] == ["image-file"] * 4
    assert [image["caption"] for image in images] == ["cat seed 0", "cat seed 1", "dog seed 0", "dog seed 1"]
    assert len({image["path"] for image in images}) == 4 and {image["path"] for image in images} <= files


@pytest.mark.slow  # a W&B run in a child process (seconds); the offline-socket one stays in the quick subset
def test_rows_without_item_or_image_keep_the_seed_and_metric_columns(tmp_path):
    rows = [{"seed": 3, "image": "images/seed3.png", "seam/color_jump": 0.5}, {"seed": 4, "seam/color_jump": 0.25}]
    status, _, _ = log_in_subprocess(tmp_path, mode="offline", rows=rows)
    assert status["ok"], status
    table, _ = logged_table(tmp_path)
    assert table["columns"] == ["seed", "image", "seam/color_jump"]
    assert table["data"][0][1]["caption"] == "seed 3" and table["data"][1] == [4, None, 0.25]


def test_the_image_table_holds_one_row_per_image_metrics_last(tmp_path):
    rows = [{"seed": 0, "seam/b": 2.0, "item": "cat", "image": "images/cat/seed0.png", "seam/a": 1.0},
            {"seed": 0, "item": "dog", "seam/a": 3.0}]
    columns, data = image_table(rows, tmp_path, lambda path, caption: (path, caption))
    assert columns == ["item", "seed", "image", "seam/a", "seam/b"]
    assert data == [["cat", 0, (str(tmp_path / "images/cat/seed0.png"), "cat seed 0"), 1.0, 2.0],
                    ["dog", 0, None, 3.0, None]]
    assert image_table([{"seed": 1, "seam/a": 0.5}], tmp_path, None) == (["seed", "seam/a"], [[1, 0.5]])


@pytest.mark.slow  # a W&B run in a child process (seconds); the offline-socket one stays in the quick subset
def test_an_unreachable_server_in_online_mode_is_a_status_not_an_exception(tmp_path):
    env = child_env(tmp_path, WANDB_API_KEY="0" * 40, WANDB_BASE_URL=CLOSED_LOCAL_PORT)
    status, sockets, seconds = log_in_subprocess(tmp_path, env=env, mode="online", init_timeout=2)
    assert status["tracker"] == "wandb" and status["ok"] is False and status["mode"] == "online"
    assert status["error"]
    assert non_local(sockets) == []
    assert seconds < 60  # wandb's own init timeout would hold it 90 s


@pytest.mark.slow  # a W&B run in a child process (seconds); the offline-socket one stays in the quick subset
def test_auto_with_a_key_but_no_server_falls_back_to_an_offline_run(tmp_path):
    env = child_env(tmp_path, WANDB_API_KEY="0" * 40, WANDB_BASE_URL=CLOSED_LOCAL_PORT)
    status, _, seconds = log_in_subprocess(tmp_path, env=env, mode="auto", init_timeout=2)
    assert status["ok"] is True and status["mode"] == "offline" and status["fallback_from"] == "online"
    assert "error" in status
    assert list((tmp_path / "job" / "wandb").glob("offline-run-*/run-*.wandb"))
    assert seconds < 60


@pytest.mark.slow  # a W&B run in a child process (seconds); the offline-socket one stays in the quick subset
def test_a_failure_while_logging_is_a_status_not_an_exception(tmp_path):
    status, _, _ = log_in_subprocess(tmp_path, mode="offline", grid=False)  # the grid image is missing
    assert status["ok"] is False and status["mode"] == "offline"
    assert "grid.png" in status["error"]


def test_the_null_tracker_reports_success_and_writes_nothing(tmp_path):
    assert NullTracker().log_job("job", {}, {}, [], tmp_path / "grid.png", tmp_path) == {"tracker": "none", "ok": True}
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "kwargs, key",
    [(dict(mode="sometimes"), "logger.mode"), (dict(init_timeout=0), "logger.init_timeout"),
     (dict(init_timeout=float("nan")), "logger.init_timeout"), (dict(init_timeout=10_000), "logger.init_timeout"),
     (dict(project=""), "logger.project")],
)
def test_bad_tracker_settings_are_refused_when_the_config_group_is_built(kwargs, key):
    with pytest.raises(ValueError, match=key):
        WandbTracker(**kwargs)
