"""What a job is: the settings that change its images and metrics, and nothing else.

One owner for the job's identity. Its folder name (the command-line overrides that act on it), the config that
resume compares and result.json records, and the keys a sweep may vary without changing the job all come from
here. A key is left out when it is

- neutral: it changes where or how fast a job runs, or how it is reported, never what it computes
  (`NEUTRAL_KEYS`, matched on the first part of a dotted key, so `logger.init_timeout` is neutral as `logger` is);
- inert for this job: a setting the job's region algorithm does not consume (`RegionSampler.consumes`), e.g.
  `overlap_factor` for `whole_run`, or the mask sampler's sampler and scheduler for the algorithms that integrate
  one trajectory with the base sampler's; the samplers' `steps`/`denoise` act only on the upscaler's passes; an
  algorithm's own hyper-parameter that its other settings switch off (`RegionSampler.inert`: `regional`'s
  `second_seed` without a second-seed mode, `mixture_of_diffusers`' `sigma_scale` with flat weights);
- replaced by the job's items (`item_inert_keys`): `mask` and the prompts a manifest or a `regions` list gives.
  What the items read from files (manifest masks, input images) enters the identity as their fingerprint
  (`runner/items.inputs_fingerprint`, added by the runner).

`experiment` is not neutral: it names the job's folder and is recorded, so jobs of two experiments never share a
folder. A sweep over an inert key gives the same folder and identity for each of its values, so the first job
computes and the others find its result (the runner logs why).
"""

from __future__ import annotations

import copy
import hashlib
from typing import Any, Iterable, Mapping, Sequence

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.utils import get_class

NEUTRAL_KEYS = ("name", "device", "threads", "models_kept", "batch_size", "logger", "figures", "objective", "hparams_search",
                "hydra")
BASE_JOB_DIR = "base"  # the folder of a job with no acting overrides
SAMPLER_GROUPS = ("base_sampler", "mask_sampler")
# Job keys that act only through a consumer: the region algorithm (`RegionSampler.consumes`) or the upscaler,
# whose passes read every one of them (`UpscaleSpec.consumes`).
CONSUMABLE = ("overlap_factor",) + tuple(f"{group}.{key}" for group in SAMPLER_GROUPS
                                         for key in ("sampler", "scheduler", "steps", "denoise"))
# Sampler keys added after results were recorded, with the value that leaves a job as it was: unset, they are not
# part of its identity, so earlier results stay this configuration's.
UNSET_SAMPLER_KEYS = {"loras": [], "guidance": None}
EXPERIMENT = "experiment"
MAX_OVERRIDE_NAME = 64  # characters of one override in a folder name; longer ones are named by their hash
MISSING = object()  # a key one of two compared identities lacks


def inert_keys(dual_consumes: Iterable[str], upscaler_consumes: Iterable[str] = ()) -> frozenset[str]:
    """The consumable job keys (`CONSUMABLE`) that neither the region algorithm nor the upscaler consumes."""
    return frozenset(CONSUMABLE) - frozenset(dual_consumes) - frozenset(upscaler_consumes)


def config_inert_keys(config: Mapping[str, Any]) -> frozenset[str]:
    """The keys of a job config (composed or resolved) that do not act on its job: `inert_keys` of the classes its
    `dual` and `upscaler` groups name, and `dual.<field>` for each of the region algorithm's own hyper-parameters
    that does not act given the others (`RegionSampler.inert`). Nothing is instantiated; none when a group names no
    importable class (the job then fails on its own, naming it)."""
    try:
        dual = get_class(config["dual"]["_target_"])
        upscaler = config.get("upscaler")
        upscaling = get_class(upscaler["_target_"]).consumes if upscaler else ()
        own = {f"dual.{name}" for name in dual.inert(config["dual"])}
    except Exception:  # noqa: BLE001 - any unreadable group: name every key, the job's own checks report it
        return frozenset()
    return inert_keys(dual.consumes, upscaling) | own | item_inert_keys(config)


def item_inert_keys(config: Mapping[str, Any]) -> frozenset[str]:
    """The keys the job's items replace (runner/items.py): those its data group declares (`replaces`: a manifest
    gives each item its prompts and regions), `mask` and the mask sampler's prompt under a `regions` list, and the
    region-sampler settings when its input group's images are upscaled as they are (`upscaled_as_given`)."""
    data, given = config.get("data"), config.get("input")
    inert = set(get_class(data["_target_"]).replaces) if data else set()
    if not inert and config.get("regions"):
        inert |= {"mask", "mask_sampler.prompt"}
    if given and get_class(given["_target_"]).upscaled_as_given and config.get("upscaler"):
        inert |= {"dual", "steps", "denoise", "overlap_factor"}
    return frozenset(inert)


def _path(override: Override) -> str:
    """The config path an override sets: `mask_sampler` for `sampler@mask_sampler=...`, else its key."""
    return override.package if override.package else override.key_or_group


def override_acts(override: Override, inert: frozenset[str]) -> bool:
    """Whether an override can change the job: its key is not neutral and not inert. A sampler option
    (`sampler@mask_sampler=euler`, which sets `sampler` and keeps the shared `_spec` keys) acts when that
    sampler's `sampler` or `scheduler` does."""
    path = _path(override)
    if path.split(".")[0] in NEUTRAL_KEYS or path in inert:
        return False
    if override.package in SAMPLER_GROUPS:
        return not {f"{path}.sampler", f"{path}.scheduler"} <= inert
    return True


def short_override(override: Override) -> str:
    """An override as it names a folder: as typed, or `key=#<hash>` (12 hex digits of its sha256) when it is
    longer than MAX_OVERRIDE_NAME characters (a `regions=[...]` list would exceed the file system's 255 bytes)."""
    line = override.input_line
    if len(line) <= MAX_OVERRIDE_NAME:
        return line
    key = line.split("=", 1)[0]
    return f"{key}=#{hashlib.sha256(line.encode()).hexdigest()[:12]}"


def job_name(overrides: Sequence[str], config: Mapping[str, Any]) -> tuple[str, list[str]]:
    """The job's folder name, its acting overrides sorted and joined by `,` (Hydra's `override_dirname` of them;
    BASE_JOB_DIR when none acts), and the overrides left out because they do not act on this job (neutral ones
    aside)."""
    inert = config_inert_keys(config)
    parsed = OverridesParser.create().parse_overrides(list(overrides))
    acting = sorted(short_override(o) for o in parsed if override_acts(o, inert))
    unused = [o.input_line for o in parsed if _path(o).split(".")[0] not in NEUTRAL_KEYS and not override_acts(o, inert)]
    return ",".join(acting) or BASE_JOB_DIR, unused


def _drop(plain: dict[str, Any], dotted: str) -> None:
    *parents, leaf = dotted.split(".")
    node: Any = plain
    for part in parents:
        node = node.get(part) if isinstance(node, dict) else None
    if isinstance(node, dict):
        node.pop(leaf, None)


def job_identity(plain: Mapping[str, Any], inert: Iterable[str], experiment: str | None = None) -> dict[str, Any]:
    """The config that determines a job's images and metrics: the resolved config `plain` without its neutral
    keys, the `inert` ones and the samplers' `UNSET_SAMPLER_KEYS` at their unset value, plus `experiment` (the
    chosen experiment, when one is)."""
    identity = {k: copy.deepcopy(v) for k, v in plain.items() if k not in NEUTRAL_KEYS}
    for key in inert:
        _drop(identity, key)
    for group in SAMPLER_GROUPS:
        sampler = identity.get(group)
        for key, unset in UNSET_SAMPLER_KEYS.items():
            if isinstance(sampler, dict) and key in sampler and sampler[key] == unset:
                del sampler[key]
    if experiment is not None:
        identity[EXPERIMENT] = experiment
    return identity


def differing_keys(recorded: Any, identity: Any, prefix: str = "") -> list[str]:
    """The dotted keys whose values differ between two identities (a key present in one only differs)."""
    if isinstance(recorded, dict) and isinstance(identity, dict):
        keys = sorted(set(recorded) | set(identity))
        return [d for k in keys for d in differing_keys(recorded.get(k, MISSING), identity.get(k, MISSING),
                                                       f"{prefix}{k}.")]
    return [] if recorded == identity else [prefix.rstrip(".")]
