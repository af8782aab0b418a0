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

import numpy as np
import pytest
import torch
from helpers import offline_table, read_offline_run
from PIL import Image

from dualsampler.runner.results import write_json_atomic
from dualsampler.tracking import (
    NullTracker,
    WandbTracker,
    image_table,
    log_sweep_summary,
    mask_overlay,
    model_kind,
    reference_file,
    region_label_map,
    run_tags,
    sweep_table,
)

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
    import numpy as np
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
    for trace in kwargs.pop("traces", []):
        (out / "trace").mkdir(exist_ok=True)
        Image.new("RGB", (4, 4), "blue").save(out / "trace" / trace)
    reference = kwargs.pop("reference", None)
    if reference is not None:
        (out / reference).write_bytes(b"statistics")
    masks = {None if item == "null" else item: np.array(labels, dtype=np.uint8)
             for item, labels in kwargs.pop("masks", {}).items()}
    config = kwargs.pop("config", {"overlap_factor": 2, "dual": {"mode": "seed"}})
    status = WandbTracker(group="sweep", **kwargs).log_job(
        "overlap_factor=2", config, {"seam/color_jump": 0.25}, rows, grid, out, masks=masks)
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


def inspect_run(run_file, env) -> list[dict]:
    """Every record of an offline W&B run file as wandb's own reader prints it (`wandb leet inspect --json`)."""
    out = subprocess.run([sys.executable, "-m", "wandb", "leet", "inspect", "--json", str(run_file)],
                         capture_output=True, text=True, check=True, env=env, timeout=120)
    return [json.loads(line) for line in out.stdout.splitlines()]


def artifact_files(records: list[dict], kind: str) -> dict[str, str]:
    """{path in the artifact: local copy} of the run's artifacts of type `kind`."""
    return {entry["path"]: entry["local_path"] for record in records if record.get("type") == "artifact"
            and record["artifact"]["type"] == kind for entry in record["artifact"]["manifest"]["contents"]}


REGIONS_CONFIG = {"dual": {"_target_": "dualsampler.dual.Regional", "overlap_factor": 4},
                  "model": {"_target_": "dualsampler.models.source.ModelSource", "dtype": "float32", "path": None},
                  "experiment": "region_sets", "seeds": 2}


@pytest.mark.slow  # a W&B run in a child process (seconds); the offline-socket one stays in the quick subset
def test_each_image_carries_its_items_region_masks_as_a_wandb_overlay(tmp_path):
    rows = [{"item": item, "seed": 0, "image": f"images/{item}/seed0.png", "seam/color_jump": 0.1}
            for item in ("cat", "dog")]
    labels = [[0, 0, 1, 1], [0, 2, 2, 1], [0, 2, 2, 0], [0, 0, 0, 0]]  # at a quarter of the 8 px images
    status, _, _ = log_in_subprocess(tmp_path, mode="offline", rows=rows, masks={"cat": labels})
    assert status["ok"], status
    table, files = logged_table(tmp_path)
    cat, dog = (row[2] for row in table["data"])
    assert "masks" not in dog
    assert set(cat["masks"]) == {"regions"} and cat["masks"]["regions"]["path"] in files
    records = inspect_run(next((tmp_path / "job" / "wandb").glob("offline-run-*/run-*.wandb")), child_env(tmp_path))
    local = artifact_files(records, "run_table")
    logged = np.asarray(Image.open(local[cat["masks"]["regions"]["path"]]))
    assert np.array_equal(logged, np.kron(np.array(labels), np.ones((2, 2), dtype=int)))  # resized to the image
    classes = json.load(open(local[cat["classes"]["path"]]))["class_set"]
    assert classes == [{"id": 0, "name": "base"}, {"id": 1, "name": "region0"}, {"id": 2, "name": "region1"}]


@pytest.mark.slow  # a W&B run in a child process (seconds); the offline-socket one stays in the quick subset
def test_a_run_is_tagged_from_its_config_and_holds_the_trace_maps_and_the_reference_statistics(tmp_path):
    status, _, _ = log_in_subprocess(tmp_path, mode="offline", config=REGIONS_CONFIG,
                                     traces=["trace_sigma.png", "trace_evals.png"], reference="reference_stats.npz")
    assert status["ok"], status
    run_file = next((tmp_path / "job" / "wandb").glob("offline-run-*/run-*.wandb"))
    records = inspect_run(run_file, child_env(tmp_path))
    run = next(record["run"] for record in records if record.get("type") == "run")
    assert run["tags"] == ["Regional", "world", "region_sets"] and run["job_type"] == "dual-sample"
    history = read_offline_run(run_file, env=child_env(tmp_path))["history"][0]
    assert history["trace/trace_sigma._type"] == history["trace/trace_evals._type"] == "image-file"
    reference = next(record["artifact"] for record in records if record.get("type") == "artifact"
                     and record["artifact"]["type"] == "reference-statistics")
    assert reference["name"] == "reference_stats.npz"
    [entry] = reference["manifest"]["contents"]
    assert entry["path"] == "reference_stats.npz" and open(entry["local_path"], "rb").read() == b"statistics"


SWEEP_CHILD = textwrap.dedent("""
    import json, sys
    from dualsampler.tracking import log_sweep_summary

    print("STATUS " + json.dumps(log_sweep_summary(sys.argv[1], group="overlap", mode="offline")), flush=True)
""")


def write_sweep(sweep_dir):
    """A sweep folder of two finished jobs (and a failed one, which has no result.json)."""
    for job, metrics in (("overlap_factor=2", {"seam/color_jump": 0.5, "region_accuracy/inside": 1.0}),
                         ("overlap_factor=4", {"seam/color_jump": 0.25})):
        write_json_atomic(sweep_dir / job / "result.json", {"metrics": metrics, "seeds": [0], "per_seed": []})
    (sweep_dir / "overlap_factor=8").mkdir()
    write_json_atomic(sweep_dir / "overlap_factor=8" / "failure.json", {"error": "boom"})


@pytest.mark.slow  # a W&B run in a child process (seconds); the offline-socket one stays in the quick subset
def test_the_sweep_summary_is_one_run_with_a_row_per_finished_job(tmp_path):
    sweep = tmp_path / "sweep"
    write_sweep(sweep)
    done = subprocess.run([sys.executable, "-c", SWEEP_CHILD, str(sweep)], capture_output=True, text=True,
                          env=child_env(tmp_path), timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    status = json.loads(next(line for line in done.stdout.splitlines() if line.startswith("STATUS "))[7:])
    assert status == {"tracker": "wandb", "ok": True, "mode": "offline", "jobs": 2}
    run_file = next((sweep / "wandb").glob("offline-run-*/run-*.wandb"))
    table, _ = offline_table(run_file, child_env(tmp_path), key="jobs")
    assert table["columns"] == ["job", "region_accuracy/inside", "seam/color_jump"]
    assert table["data"] == [["overlap_factor=2", 1.0, 0.5], ["overlap_factor=4", None, 0.25]]
    run = read_offline_run(run_file, env=child_env(tmp_path))
    assert (run["group"], run["name"]) == ("overlap", "overlap summary")
    run_record = next(r["run"] for r in inspect_run(run_file, child_env(tmp_path)) if r.get("type") == "run")
    assert run_record["job_type"] == "sweep-summary"


def test_the_sweep_table_reads_every_result_below_the_sweep_and_an_empty_sweep_logs_nothing(tmp_path):
    write_sweep(tmp_path / "sweep")
    (tmp_path / "sweep" / "data" / "item=cat").mkdir(parents=True)
    write_json_atomic(tmp_path / "sweep" / "data" / "item=cat" / "result.json",
                      {"metrics": {"seam/color_jump": 0.75}, "seeds": [0], "per_seed": []})
    columns, data = sweep_table(tmp_path / "sweep")
    assert columns == ["job", "region_accuracy/inside", "seam/color_jump"]
    assert [row[0] for row in data] == ["data/item=cat", "overlap_factor=2", "overlap_factor=4"]
    (tmp_path / "empty").mkdir()
    assert log_sweep_summary(tmp_path / "empty", mode="offline") == {"tracker": "wandb", "ok": True,
                                                                     "mode": "offline", "jobs": 0}
    assert not (tmp_path / "empty" / "wandb").exists()
    assert NullTracker().log_sweep_summary(tmp_path / "sweep") == {"tracker": "none", "ok": True}


def test_a_truncated_result_in_the_sweep_is_a_status_not_an_exception(tmp_path):
    write_sweep(tmp_path)
    (tmp_path / "overlap_factor=4" / "result.json").write_text('{"metrics": ')
    status = WandbTracker(mode="offline").log_sweep_summary(tmp_path)
    assert status["ok"] is False and "overlap_factor=4" in status["error"]


def test_the_tags_name_the_dual_algorithm_the_model_kind_and_the_experiment(tmp_path):
    assert run_tags(REGIONS_CONFIG) == ["Regional", "world", "region_sets"]
    random_world = {"dual": {"_target_": "dualsampler.dual.Alternate"}, "model": {"random_seed": 0, "dtype": "float32"}}
    assert run_tags(random_world) == ["Alternate", "random_world"]  # no experiment chosen: no tag
    assert run_tags({}) == []
    (tmp_path / "sd").mkdir()
    (tmp_path / "sd" / "model_index.json").write_text("{}")
    assert model_kind({"path": str(tmp_path / "sd")}) == "diffusers"
    assert model_kind({"path": str(tmp_path / "sd15.safetensors"), "config": str(tmp_path / "sd")}) == "diffusers"
    assert model_kind({"path": str(tmp_path / "world_folder")}) == "world"


def test_the_label_map_puts_later_regions_on_top():
    first, second = torch.zeros(4, 4), torch.zeros(1, 4, 4)
    first[:2] = 1
    second[0, 1:3, 2:] = 0.75
    assert region_label_map([first, second.numpy()]).tolist() == [[1, 1, 1, 1], [1, 1, 2, 2], [0, 0, 2, 2],
                                                                  [0, 0, 0, 0]]
    with pytest.raises(ValueError, match=r"masks\[1\] must be a 4x4 mask"):
        region_label_map([first, torch.zeros(8, 8)])


def test_the_image_table_draws_an_items_masks_over_its_images_only(tmp_path):
    (tmp_path / "images").mkdir()
    Image.new("RGB", (4, 2)).save(tmp_path / "images" / "a.png")
    rows = [{"item": "cat", "seed": 0, "image": "images/a.png"}, {"item": "dog", "seed": 0, "image": "images/a.png"}]
    labels = np.array([[0, 1], [2, 0]], dtype=np.uint8)
    _, data = image_table(rows, tmp_path, lambda path, **kwargs: kwargs, {"cat": labels})
    overlay = data[0][2]["masks"]["regions"]
    assert overlay["class_labels"] == {0: "base", 1: "region0", 2: "region1"}
    assert overlay["mask_data"].tolist() == [[0, 0, 1, 1], [2, 2, 0, 0]]  # 2x2 labels stretched to the 4x2 image
    assert "masks" not in data[1][2]
    assert mask_overlay(np.zeros((2, 2), np.uint8), (2, 2))["regions"]["class_labels"] == {0: "base"}


def test_bad_masks_are_a_status_before_any_run_starts(tmp_path):
    status = WandbTracker(mode="offline").log_job("job", {}, {}, [], tmp_path / "grid.png", tmp_path,
                                                  masks={None: np.full((2, 2), 17)})
    assert status["ok"] is False and "labels must lie in [0, 16]" in status["error"]
    assert not (tmp_path / "wandb").exists()


def test_the_reference_is_the_path_given_else_the_jobs_reference_stats_file(tmp_path):
    assert reference_file(tmp_path, None) is None
    (tmp_path / "reference_stats.npz").write_bytes(b"")
    (tmp_path / "given.pt").write_bytes(b"")
    assert reference_file(tmp_path, None) == tmp_path / "reference_stats.npz"
    assert reference_file(tmp_path, tmp_path / "given.pt") == tmp_path / "given.pt"
    assert reference_file(tmp_path, tmp_path / "absent.pt") is None
