"""What every diffusers pipeline family shares around loading and prompting: library notices silenced, loading
bars off, a loaded pipeline made ready for sampling (`prepare_pipeline`), and prompt lists checked (`prompt_lists`)."""

from __future__ import annotations

import json
import logging
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import torch


# Library notices that tell a user of this toolkit nothing (logger name -> patterns matched at the start of each
# message dropped): the `low_cpu_mem_usage` fallback when accelerate is missing (every load), a single-file load's
# cast of modules of which none is to be kept in float32 (the list is empty), and transformers' note that its image
# processors fall back to PIL without torchvision (once per process, on importing the diffusers pipelines).
NO_ACCELERATE = re.escape("Cannot initialize model with low cpu memory usage because `accelerate` was not found")
QUIET_NOTICES = {
    "diffusers.pipelines.pipeline_utils": (NO_ACCELERATE,),
    "diffusers.models.modeling_utils": (NO_ACCELERATE,
                                        r"There are modules in \w+ that should be kept in float32: \[\]\."),
    "transformers.utils.import_utils": (r"`(CLIP|Siglip)ImageProcessor` requires torchvision \(not installed\); "
                                        r"falling back to",),
}


class DropNotices(logging.Filter):
    """Drops the records of one logger whose message matches one of `patterns` at its start."""

    def __init__(self, patterns: tuple[str, ...]) -> None:
        super().__init__()
        self.pattern = re.compile("|".join(f"(?:{p})" for p in patterns))

    def filter(self, record: logging.LogRecord) -> bool:
        return self.pattern.match(record.getMessage()) is None


def silence_library_notices() -> None:
    """Add a `DropNotices` filter for `QUIET_NOTICES` to each named logger, once per process (idempotent)."""
    for name, starts in QUIET_NOTICES.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, DropNotices) for f in logger.filters):
            logger.addFilter(DropNotices(starts))


@contextmanager
def no_loading_bars() -> Iterator[None]:
    """diffusers' and transformers' loading progress bars off while a pipeline loads, as they were afterwards."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    was = [(lib, lib.is_progress_bar_enabled()) for lib in (diffusers_logging, transformers_logging)]
    for lib, _ in was:
        lib.disable_progress_bar()
    try:
        yield
    finally:
        for lib, enabled in was:
            if enabled:
                lib.enable_progress_bar()


def text_list(value: str | list[str], name: str) -> list[str]:
    """A string, or a non-empty list or tuple of strings, as a list; else ValueError naming `name`."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
        return list(value)
    raise ValueError(f"{name} must be a string or a non-empty list of strings, got {value!r}")


def prompt_lists(prompt: str | list[str], negative_prompt: str | list[str]) -> tuple[list[str], list[str]]:
    """(prompts, one negative prompt per prompt); ValueError naming the parameter for anything but strings, or for
    a count of negative prompts that does not match."""
    prompts = text_list(prompt, "prompt")
    negatives = text_list(negative_prompt, "negative_prompt")
    if isinstance(negative_prompt, str):
        negatives = negatives * len(prompts)
    if len(negatives) != len(prompts):
        raise ValueError(f"negative_prompt must be one string or {len(prompts)} strings, got {len(negatives)}")
    return prompts, negatives


def prepare_pipeline(pipeline, network: str, dtype: torch.dtype, device: torch.device, compile: bool) -> None:
    """Every network of `pipeline` in eval mode without gradients, its VAE in float32 under float16 where its config
    says float16 overflows (`force_upcast`), progress bars off, moved to `device`, the denoising `network` (unet or
    transformer) optionally `torch.compile`d."""
    for module in pipeline.components.values():
        if isinstance(module, torch.nn.Module):
            module.eval().requires_grad_(False)
    if dtype == torch.float16 and getattr(pipeline.vae.config, "force_upcast", False):
        pipeline.vae.to(torch.float32)
    pipeline.set_progress_bar_config(disable=True)
    pipeline.to(device)
    if compile:
        getattr(pipeline, network).compile()


def absent_components(folder: Path) -> dict[str, None]:
    """The components a folder's model_index.json sets to [null, null] (left out by design, e.g. SD3 without T5),
    as the `name=None` arguments `from_pretrained` needs to load such a folder."""
    index = folder / "model_index.json"
    entries = json.loads(index.read_text()) if index.is_file() else {}
    return {name: None for name, value in entries.items() if value == [None, None]}


def load_network(folder: Path, component: str, network_classes: dict[str, tuple[str, str]],
                 dtype: torch.dtype, variant: str | None = None) -> torch.nn.Module:
    """One network component of a folder, offline, as the class `network_classes[component]` names
    ((library, class name), e.g. ("transformers", "T5EncoderModel"))."""
    import importlib

    library, name = network_classes[component]
    network_class = getattr(importlib.import_module(library), name)
    return network_class.from_pretrained(folder / component, dtype=dtype, local_files_only=True, variant=variant)


def pipeline_from_components(pipeline_class, folder: Path, components: dict,
                             network_classes: dict[str, tuple[str, str]], dtype: torch.dtype, variant: str | None,
                             **given):
    """The pipeline of a folder without model_index.json: each network of `network_classes` from its subfolder
    (or as `given`), each tokenizer folder of `components` through AutoTokenizer, the flow-matching scheduler."""
    from diffusers import FlowMatchEulerDiscreteScheduler
    from transformers import AutoTokenizer

    networks = {name: given[name] if name in given else load_network(folder, name, network_classes, dtype, variant)
                for name in network_classes}
    tokenizers = {name: AutoTokenizer.from_pretrained(folder / name, local_files_only=True)
                  for name, stems in components.items() if stems is None and not name.startswith("scheduler")}
    scheduler = FlowMatchEulerDiscreteScheduler.from_pretrained(folder / "scheduler", local_files_only=True)
    return pipeline_class(**networks, **tokenizers, scheduler=scheduler)
