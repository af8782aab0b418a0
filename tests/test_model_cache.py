"""One loaded model per process for the jobs of a sweep: loaded once, reused while its key matches, safe to share."""

from __future__ import annotations

import logging

import pytest
import torch

from dualsampler.models.source import ModelSource
from dualsampler.runner.model_cache import clear_models, load_model_cached

CPU = torch.device("cpu")
WORLD = ModelSource(random_seed=0)  # the world's architectures with random weights: loads in a fraction of a second


@pytest.fixture(autouse=True)
def no_kept_models():
    clear_models()
    yield
    clear_models()


@pytest.fixture
def loads(monkeypatch) -> list[ModelSource]:
    """Every ModelSource.load call from here on, by source."""
    calls: list[ModelSource] = []
    load = ModelSource.load

    def counting(self, device="cpu"):
        calls.append(self)
        return load(self, device)

    monkeypatch.setattr(ModelSource, "load", counting)
    return calls


def images(model) -> torch.Tensor:
    """Two images of a 2-step KSampler on `model`."""
    return model.generate("blue stripes", seeds=[0, 1], height=32, width=32, steps=2, cfg=3.0)


def test_six_jobs_on_one_source_load_it_once(loads):
    runs = [load_model_cached(WORLD, "random-0", CPU) for _ in range(6)]
    assert [reused for _, reused in runs] == [False, True, True, True, True, True]
    assert all(model is runs[0][0] for model, _ in runs)
    assert len(loads) == 1


@pytest.mark.parametrize("other, fingerprint", [(WORLD, "random-1"), (ModelSource(random_seed=0, dtype="bfloat16"), "random-0")])
def test_other_weights_or_another_dtype_load_again(loads, other, fingerprint):
    first, _ = load_model_cached(WORLD, "random-0", CPU, keep=2)
    second, reused = load_model_cached(other, fingerprint, CPU, keep=2)
    assert not reused and second is not first and len(loads) == 2
    assert load_model_cached(WORLD, "random-0", CPU, keep=2) == (first, True)  # both kept


def test_keeping_one_model_drops_the_older(loads):
    first, _ = load_model_cached(WORLD, "random-0", CPU, keep=1)
    load_model_cached(WORLD, "random-1", CPU, keep=1)
    again, reused = load_model_cached(WORLD, "random-0", CPU, keep=1)
    assert not reused and again is not first and len(loads) == 3


def test_keeping_none_loads_every_time(loads):
    load_model_cached(WORLD, "random-0", CPU)
    runs = [load_model_cached(WORLD, "random-0", CPU, keep=0) for _ in range(3)]
    assert [reused for _, reused in runs] == [False, False, False] and len(loads) == 4
    assert load_model_cached(WORLD, "random-0", CPU)[1] is False  # the model kept before was dropped too


def test_a_smaller_keep_drops_the_least_recently_used(loads):
    first, _ = load_model_cached(WORLD, "random-0", CPU, keep=2)
    load_model_cached(WORLD, "random-1", CPU, keep=2)
    assert load_model_cached(WORLD, "random-0", CPU, keep=1) == (first, True)
    assert load_model_cached(WORLD, "random-1", CPU, keep=1)[1] is False and len(loads) == 3


def test_a_failing_load_leaves_the_kept_model(loads):
    kept, _ = load_model_cached(WORLD, "random-0", CPU)
    broken = ModelSource(random_seed=0, dtype="float16")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ModelSource, "load", lambda self, device="cpu": (_ for _ in ()).throw(OSError("disk gone")))
        with pytest.raises(OSError, match="disk gone"):
            load_model_cached(broken, "random-0", CPU)
    assert load_model_cached(WORLD, "random-0", CPU) == (kept, True)
    assert load_model_cached(broken, "random-0", CPU)[1] is False  # the failed key was not kept either


def test_a_reused_model_samples_the_images_of_a_fresh_one(loads):
    fresh = images(WORLD.load(CPU))
    load_model_cached(WORLD, "random-0", CPU)
    images(load_model_cached(WORLD, "random-0", CPU)[0])  # a job before the one compared
    model, reused = load_model_cached(WORLD, "random-0", CPU)
    assert reused and torch.equal(images(model), fresh)


def test_flags_a_job_flipped_are_restored_on_reuse(loads):
    model, _ = load_model_cached(WORLD, "random-0", CPU)
    model.judge.train()
    model.unet.requires_grad_(True)
    again, reused = load_model_cached(WORLD, "random-0", CPU)
    assert reused and again is model
    assert not any(module.training for module in model.judge.modules())
    assert not any(parameter.requires_grad for parameter in model.unet.parameters())


@pytest.mark.parametrize("change, what", [
    (lambda model: model.judge.register_forward_hook(lambda *_: None), "hooks"),
    (lambda model: model.upscaler.to(torch.float64), "device or dtype"),
])
def test_a_model_a_job_changed_for_good_loads_again(loads, caplog, change, what):
    model, _ = load_model_cached(WORLD, "random-0", CPU)
    change(model)
    with caplog.at_level(logging.WARNING, logger="dualsampler.runner.model_cache"):
        again, reused = load_model_cached(WORLD, "random-0", CPU)
    assert not reused and again is not model and len(loads) == 2
    assert what in caplog.text
    assert load_model_cached(WORLD, "random-0", CPU) == (again, True)


@pytest.mark.parametrize("keep", [-1, 9, 1.5, True, "1"])
def test_a_bad_keep_is_refused_before_any_load(loads, keep):
    with pytest.raises(ValueError, match=r"models_kept must be an integer in \[0, 8\]"):
        load_model_cached(WORLD, "random-0", CPU, keep=keep)
    assert loads == []
