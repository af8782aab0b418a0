"""Loaded models kept across the jobs of a sweep that run in one process (Hydra's basic launcher runs them all in
one process, the joblib launcher in reused workers), so a 100-job sweep loads its weights once, not 100 times.

Why sharing one loaded model between jobs is safe: a job only reads it. The runner builds denoisers (prompt
encodings, new per job), decodes, and wraps the world's judge in `metrics.features.frozen` (which calls
`judge.eval()` on an already frozen judge) and moves metrics to the job's device (the device the model was loaded
on, which is part of the key). Every model class loads its modules in eval mode with `requires_grad_(False)`;
`compile: true` compiles the UNet once at load, which reuse keeps. Nothing in the runner registers hooks on the
model's modules or changes their device or dtype. Because that is a property of today's code, not a guarantee,
each kept model's state is recorded at load (`ModelState`) and checked on reuse: training and requires_grad flags
flipped since are restored; a module moved to another device or dtype, or one carrying hooks it did not have,
makes the model load afresh. The weights' values are not compared (that would cost a pass over every tensor):
nothing writes to them, and a `random_seed` world's load no longer reseeds torch's global generator on reuse,
which nothing downstream reads (every image's noise comes from its own seed's generator).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..validation import check_int

log = logging.getLogger(__name__)

MAX_KEPT = 8
HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks",
              "_state_dict_hooks", "_load_state_dict_pre_hooks")

Key = tuple[str, str, str, bool]


def model_modules(model: Any) -> dict[str, nn.Module]:
    """The torch modules a loaded model holds: its own module attributes (the world's vae, unet, prompt_encoder,
    judge, upscaler) and its pipeline's components (Stable Diffusion)."""
    found = {name: value for name, value in vars(model).items() if isinstance(value, nn.Module)}
    components = getattr(getattr(model, "pipeline", None), "components", None) or {}
    found.update({f"pipeline.{name}": value for name, value in components.items() if isinstance(value, nn.Module)})
    return found


@dataclass(frozen=True)
class ModelState:
    """What a job must find unchanged in a kept model: per submodule its training flag and hooks, per tensor its
    requires_grad flag, device and dtype."""

    training: tuple[tuple[nn.Module, bool], ...]
    grads: tuple[tuple[torch.Tensor, bool], ...]
    placement: tuple[tuple[str, str, torch.dtype], ...]
    hooks: tuple[tuple[str, int], ...]

    @classmethod
    def of(cls, model: Any) -> ModelState:
        """The state of `model`'s modules now."""
        modules = [(f"{name}.{sub}", module) for name, top in model_modules(model).items()
                   for sub, module in top.named_modules()]
        tensors = [(f"{name}.{key}", tensor) for name, top in model_modules(model).items()
                   for key, tensor in (*top.named_parameters(), *top.named_buffers())]
        return cls(
            training=tuple((module, module.training) for _, module in modules),
            grads=tuple((tensor, tensor.requires_grad) for _, tensor in tensors if isinstance(tensor, nn.Parameter)),
            placement=tuple((name, str(tensor.device), tensor.dtype) for name, tensor in tensors),
            hooks=tuple((name, sum(len(getattr(module, attr, None) or ()) for attr in HOOK_DICTS))
                        for name, module in modules),
        )

    def restore(self, model: Any) -> str | None:
        """Put back the training and requires_grad flags; the reason `model` cannot be reused as it is (a tensor
        moved or cast, hooks added) or None."""
        now = ModelState.of(model)
        moved = _first_change(self.placement, now.placement)
        if moved is not None:
            return f"{moved} changed device or dtype"
        hooked = _first_change(self.hooks, now.hooks)
        if hooked is not None:
            return f"{hooked} has hooks it did not have when loaded"
        for module, training in self.training:
            module.training = training
        for tensor, requires_grad in self.grads:
            tensor.requires_grad_(requires_grad)
        return None


def _first_change(was: tuple[tuple, ...], now: tuple[tuple, ...]) -> str | None:
    """The name (first field) of the first entry that differs between two records of a model; None if none."""
    if len(was) != len(now):
        return "the model's modules"
    return next((old[0] for old, new in zip(was, now) if old != new), None)


_kept: OrderedDict[Key, tuple[Any, ModelState]] = OrderedDict()


def cache_key(source: Any, fingerprint: str, device: torch.device) -> Key:
    """What makes two loads the same model: the weights' fingerprint, the device, the dtype and compile."""
    return fingerprint, str(device), str(source.dtype), bool(source.compile)


def _drop(key: Key) -> None:
    model, _ = _kept.pop(key)
    on_cuda = torch.device(key[1]).type == "cuda"
    del model
    if on_cuda and torch.cuda.is_available():
        torch.cuda.empty_cache()


def load_model_cached(source: Any, fingerprint: str, device: torch.device, keep: int = 1) -> tuple[Any, bool]:
    """`source.load(device)`, or the model an earlier call with the same (fingerprint, device, dtype, compile)
    loaded in this process -> (model, reused). At most `keep` models (0 to 8; 0: always load, keep none) stay
    loaded, the least recently used dropped first; a load that raises leaves the kept models as they were."""
    keep = check_int(keep, "models_kept", 0, MAX_KEPT)
    key = cache_key(source, fingerprint, device)
    if keep == 0:
        clear_models()
        return source.load(device), False
    if key in _kept:
        model, state = _kept[key]
        problem = state.restore(model)
        if problem is None:
            _kept.move_to_end(key)
            _trim(keep)
            return model, True
        log.warning("kept model %s: %s since it was loaded; loading it again", key[0], problem)
        _drop(key)
    model = source.load(device)  # before any eviction: a load that raises leaves the kept models as they were
    _trim(keep - 1)
    _kept[key] = (model, ModelState.of(model))
    return model, False


def _trim(keep: int) -> None:
    """Drop the least recently used models until at most `keep` stay."""
    while len(_kept) > keep:
        _drop(next(iter(_kept)))


def clear_models() -> None:
    """Drop every kept model (tests; a process that is done with its sweep)."""
    while _kept:
        _drop(next(iter(_kept)))
