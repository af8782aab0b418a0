"""LoRAs per sampler (issue 22): the LoRA files a sampler's config names, checked before any model loads and
fingerprinted by their bytes; each file loaded once into a model's pipeline under a name made from that fingerprint
(`pipeline.load_lora_weights`: the kohya/A1111 and diffusers/peft formats diffusers reads); and one adapter set
active on a network for the next forward (`activate_adapters`), so samplers with different LoRAs share one model."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from torch import nn

from ..validation import check_bounded, check_text
from .checks import check_safetensors
from .fingerprint import files_fingerprint

SUFFIXES = (".safetensors", ".bin")
LORA_KEYS = ("path", "scale")
ACTIVE = "_dualsampler_adapters"  # set on a network: the adapter set its LoRA layers have active (None: unknown)

Adapters = tuple[tuple[str, float], ...]


@dataclass(frozen=True)
class LoraSpec:
    """One LoRA file and its scale (the LoRA's delta is multiplied by `scale`; 0 leaves the model as it is).
    Checked when constructed: `path` an existing `.safetensors` (checked whole) or `.bin` file, `scale` finite in
    validation.BOUNDS["lora_scale"] ([-100, 100])."""

    path: str
    scale: float = 1.0

    def __post_init__(self) -> None:
        path = Path(check_text(self.path, "path"))
        if path.suffix.lower() not in SUFFIXES:
            raise ValueError(f"path must be a LoRA file ending in {' or '.join(SUFFIXES)}, got {self.path!r}")
        if not path.is_file():
            raise ValueError(f"path must be an existing LoRA file, got {self.path!r} (no such file)")
        if path.suffix.lower() == ".safetensors":
            try:
                check_safetensors(path)
            except ValueError as error:
                raise ValueError(f"path must be a whole LoRA file: {error}") from None
        object.__setattr__(self, "scale", check_bounded(self.scale, "lora_scale", "scale"))

    def fingerprint(self) -> str:
        """sha256 (16 hex digits) of the file's bytes (`files_fingerprint`), read once per spec: the job's inputs
        fingerprint, result.json's record and the adapter's name all ask for it."""
        if "_fingerprint" not in self.__dict__:
            object.__setattr__(self, "_fingerprint", files_fingerprint([("lora", Path(self.path))]))
        return self.__dict__["_fingerprint"]

    def adapter_name(self) -> str:
        """The name the file is loaded under: one per file content, whatever its path."""
        return f"lora_{self.fingerprint()}"


def check_loras(value: Any, name: str) -> tuple[LoraSpec, ...]:
    """A config's LoRA list -> LoraSpecs: None or a list of paths, `{path, scale}` mappings or LoraSpecs. Raises
    ValueError naming `name` (and the entry) for anything else, a missing file, a wrong suffix, a non-finite or
    out-of-range scale, or a file listed twice; reads no model."""
    if value is None:
        return ()
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence):
        raise ValueError(f"{name} must be a list of LoRA files (each a path or {{path, scale}}), got {value!r}")
    specs = tuple(_lora(entry, f"{name}[{k}]") for k, entry in enumerate(value))
    paths = [Path(spec.path).resolve() for spec in specs]
    for k, path in enumerate(paths):
        if path in paths[:k]:
            raise ValueError(f"{name}[{k}]: {specs[k].path!r} is listed twice; give it once with the summed scale")
    return specs


def _lora(entry: Any, name: str) -> LoraSpec:
    if isinstance(entry, LoraSpec):
        return entry
    if isinstance(entry, Mapping):
        unknown = sorted(set(map(str, entry)) - set(LORA_KEYS))
        if unknown or "path" not in entry:
            raise ValueError(f"{name} must be a path or a mapping with path and optionally scale; "
                             f"got {dict(entry)!r}")
        fields = {key: entry[key] for key in LORA_KEYS if key in entry}
    elif isinstance(entry, str):
        fields = {"path": entry}
    else:
        raise ValueError(f"{name} must be a path or a mapping with path and optionally scale; got {entry!r}")
    try:
        return LoraSpec(**fields)
    except ValueError as error:
        raise ValueError(f"{name}.{error}") from None


def describe(specs: Sequence[LoraSpec]) -> list[dict[str, Any]]:
    """What result.json records of a sampler's LoRAs: each one's path, scale and file fingerprint."""
    return [{"path": spec.path, "scale": spec.scale, "fingerprint": spec.fingerprint()} for spec in specs]


def loaded_adapters(pipeline: Any) -> set[str]:
    """Names of the adapters loaded into any network of `pipeline`."""
    return {name for names in pipeline.get_list_adapters().values() for name in names}


@contextmanager
def quiet_loading() -> Iterator[None]:
    """diffusers' and transformers' notices while a LoRA loads off (a text encoder's load report listing every base
    weight as missing, 'no LoRA keys for the text encoder' for a UNet-only LoRA, peft's 'multiple adapters')."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    levels = [(lib, lib.get_verbosity()) for lib in (diffusers_logging, transformers_logging)]
    for lib, _ in levels:
        lib.set_verbosity_error()
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Already found a `peft_config` attribute")
            yield
    finally:
        for lib, level in levels:
            lib.set_verbosity(level)


def load_loras(pipeline: Any, specs: Sequence[LoraSpec]) -> Adapters:
    """Every file of `specs` not yet in `pipeline` loaded into it once (`pipeline.load_lora_weights`, every network
    the file patches: UNet or transformer and text encoders), named by `LoraSpec.adapter_name`; returns the adapter
    set `((adapter_name, scale), ...)` in `specs` order, two files with the same bytes as one with their summed
    scale. ValueError naming the file when the pipeline takes no LoRA or the file fits none of its networks."""
    if not callable(getattr(pipeline, "load_lora_weights", None)):
        raise ValueError(f"{type(pipeline).__name__} loads no LoRA; LoRAs need a diffusers pipeline with "
                         "load_lora_weights")
    loaded = loaded_adapters(pipeline)
    scales: dict[str, float] = {}
    for spec in specs:
        name = spec.adapter_name()
        if name not in loaded:
            _load_file(pipeline, Path(spec.path), name)
            loaded.add(name)
        scales[name] = scales.get(name, 0.0) + spec.scale
    return tuple(scales.items())


def _load_file(pipeline: Any, path: Path, name: str) -> None:
    try:
        with quiet_loading():
            pipeline.load_lora_weights(str(path.parent), weight_name=path.name, adapter_name=name,
                                       local_files_only=True)
    except (ValueError, KeyError, RuntimeError, TypeError) as error:
        raise ValueError(f"LoRA file {str(path)!r} does not fit this {type(pipeline).__name__}: {error}") from None
    finally:
        for component in pipeline.components.values():
            if isinstance(component, nn.Module):
                setattr(component, ACTIVE, None)  # loading activates the new adapter: the next call sets the set
    if name not in loaded_adapters(pipeline):
        raise ValueError(f"LoRA file {str(path)!r} patches none of this {type(pipeline).__name__}'s networks: "
                         "its keys match no layer")


def activate_adapters(network: nn.Module, adapters: Adapters) -> None:
    """Exactly `adapters` (`(adapter_name, scale)` pairs from `load_loras`) active with their scales in `network`'s
    LoRA layers for its next forward; none for `()` (the network computes as without LoRAs). Free when that set
    is already active (it is kept on the network) or no LoRA was ever loaded into it."""
    adapters = tuple(adapters)
    if getattr(network, ACTIVE, ()) == adapters:
        return
    from peft.tuners.tuners_utils import BaseTunerLayer

    names = [name for name, _ in adapters]
    for module in network.modules():
        if isinstance(module, BaseTunerLayer):
            module.set_adapter(names, inference_mode=True)
            for name, scale in adapters:
                module.set_scale(name, scale)
    setattr(network, ACTIVE, adapters)


def activate_pipeline(pipeline: Any, adapters: Adapters) -> None:
    """`activate_adapters` on every network of `pipeline` (its text encoders before a prompt is encoded with a
    sampler's LoRAs)."""
    for component in pipeline.components.values():
        if isinstance(component, nn.Module):
            activate_adapters(component, adapters)
