"""What every metric key means and how it is measured: one declaration per metric family (a key pattern such as
`region_accuracy/<region>`) with its formula, direction, range, unit, what it needs (`needs` in words, `requires`
from REQUIREMENTS), how it aggregates, the sample it needs and its per-image function (per_image.py; None for
set-level and derived families). The Evaluator and `compute_metrics` run the families `measured` returns.

Figures label their axes from it, the objective takes its direction from it, SPEC §13 lists it (a test keeps the
two alike and checks that every key the evaluator can report has a family here). Derived keys
(`seam/gradient_ratio_error`) are computed from reported ones by `derived` / `derived_means`.
"""

from __future__ import annotations

import math
import re
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from numbers import Real

from ..validation import check_text
from . import per_image as fn
from .per_image import PerImage

DIRECTIONS = ("lower", "higher", "target", "none")  # none: a per-image reading (a string), not a score
MEAN = "mean over images"
REQUIREMENTS = {  # what a family may require (MetricInfo.requires); an evaluation knows which it has
    "prompts": "a base prompt and each region's prompt per image",
    "judge": "the embedded world's texture judge",
    "references": "one reference composite per image",
    "real_images": "a real image set read with the judge (fid/judge, kid/judge)",
    "reference_set": "a reference set of real images (metrics.reference) and local Inception weights",
    "clip": "a local CLIP folder",
    "lpips": "torchvision and local LPIPS weights",
    "input": "an input image per image (items that start from one)",
}
PLACEHOLDERS = {  # what a <placeholder> of a key pattern stands for
    "<region>": r"(?:inside|outside|region\d+)",  # region k counted from 0, items with 2+ regions
    "<side>": r"(?:inside|outside)",
    "<k>": r"\d+",
    "<net>": r"(?:alex|vgg|squeeze)",
    "<scope>": r"(?:image|inside|region\d+)",
    "<features>": r"(?:judge|inception)",
}
PER_IMAGE_SAMPLE = "1 image; an interval needs 2 or more (95% t-interval over images)"
ACCURACY_SAMPLE = ("1 image whose region holds a whole 32 px judge patch; a per-image share of at most 8 patches, "
                   "so intervals are wide below ~8 images")


@dataclass(frozen=True)
class MetricInfo:
    """One metric family: `pattern` (placeholders in PLACEHOLDERS), a one-line `meaning` with its formula,
    `direction` (lower | higher | target: healthy at `target` | none), `low`..`high` its range, `unit` ('' for a
    pure number), `needs` (what must be present for it to be reported), `aggregate` (how a job's value is formed),
    `sample` (the images it needs), `min_images` (fewest images that give a value), `source` (a derived family: the
    pattern of the `target` family it reads; per image |source - target|), `caveat` (how it misleads, or ''),
    `requires` (REQUIREMENTS an evaluation must have to measure it), `per_image` (its per-image function, None
    for set-level and derived families) and `empty` (the job's value when no image gave one, e.g. no seam;
    None: the key is then absent)."""

    pattern: str
    meaning: str
    direction: str
    low: float
    high: float
    unit: str
    needs: tuple[str, ...]
    aggregate: str
    sample: str
    min_images: int = 1
    target: float | None = None
    source: str | None = None
    caveat: str = ""
    requires: tuple[str, ...] = ()
    per_image: PerImage | None = field(default=None, compare=False, repr=False)
    empty: float | None = None

    def __post_init__(self) -> None:
        unknown = set(self.requires) - set(REQUIREMENTS)
        if unknown:
            raise ValueError(f"{self.pattern}: requires must name REQUIREMENTS ({', '.join(REQUIREMENTS)}), "
                             f"got {sorted(unknown)}")

    @property
    def range(self) -> str:
        """The range as text, e.g. `[0, 1]`, `[0, inf)`."""
        low = "(-inf" if math.isinf(self.low) else f"[{self.low:g}"
        high = "inf)" if math.isinf(self.high) else f"{self.high:g}]"
        return f"{low}, {high}"

    @property
    def arrow(self) -> str:
        """↓ for lower-is-better, ↑ for higher-is-better, '' otherwise."""
        return {"lower": "↓", "higher": "↑"}.get(self.direction, "")

    @property
    def better(self) -> str:
        """The direction in words, e.g. `lower is better`, `healthy at 1`."""
        if self.direction == "target":
            return f"healthy at {self.target:g}"
        return "a reading, not a score" if self.direction == "none" else f"{self.direction} is better"


def _regex(pattern: str) -> re.Pattern:
    """The key pattern as a regex, each placeholder a capture group."""
    text = re.escape(pattern)
    for placeholder, regex in PLACEHOLDERS.items():
        text = text.replace(re.escape(placeholder), f"({regex})")
    return re.compile(text)


def _fill(pattern: str, values: Sequence[str]) -> str:
    """`pattern` with its placeholders replaced, in order, by `values`."""
    parts = re.split("(" + "|".join(map(re.escape, PLACEHOLDERS)) + ")", pattern)
    filled = iter(values)
    return "".join(next(filled) if part in PLACEHOLDERS else part for part in parts)


SEAM_NEEDS = ("mask",)
JUDGE_REFS = ("judge", "references")
GRADIENT = ("G = (mean_band |grad x| + eps) / (mean over the inside and outside interiors of mean |grad x| + eps), "
            "eps = 1/255, band = pixels within band_width of the boundary of {of}: the seam band's gradient "
            "energy relative to the texture's")
GRADIENT_CAVEAT = ("healthy at 1 (the band as busy as the texture): a visible seam raises G, a band blurred "
                   "smoother than the texture lowers it, so neither min nor max of G is the goal; optimise "
                   "`seam/gradient_ratio_error`")
JUMP = ("J = |mu(inner ring) - mu(outer ring)|_2 / (RMS colour spread of the interiors + eps): the colour step "
        "across the boundary of {of} in units of the texture's own colour spread")
ERROR = "|G - 1| per image (G = `seam/gradient_ratio{of}`), then the mean over images: the distance from a healthy seam"
FID_SAMPLE = ("computed from 2 generated and 2 real images; biased upward at small n and comparable only at equal n; "
              "a full-rank covariance needs more images than feature dimensions ({dims}) in each set")
KID_SAMPLE = "2 generated and 2 real images; unbiased, so comparable across n, but its spread is wide below ~50"

FAMILIES: tuple[MetricInfo, ...] = (
    MetricInfo("seam/gradient_ratio", GRADIENT.format(of="the union of the regions"), "target", 0, math.inf,
               "", SEAM_NEEDS, MEAN + " with a seam (1 when none has one)", PER_IMAGE_SAMPLE, target=1.0,
               caveat=GRADIENT_CAVEAT,
               per_image=fn.seam_gradient, empty=1.0),
    MetricInfo("seam/gradient_ratio/region<k>", GRADIENT.format(of="region k's own mask"), "target", 0, math.inf,
               "", SEAM_NEEDS + ("an item with 2+ regions",), MEAN + " with region k and a seam", PER_IMAGE_SAMPLE,
               target=1.0, caveat=GRADIENT_CAVEAT,
               per_image=fn.seam_gradient_regions, empty=1.0),
    MetricInfo("seam/gradient_ratio_error", ERROR.format(of=""), "lower", 0, math.inf, "", SEAM_NEEDS,
               MEAN + " (derived: per image, then mean; not |mean G - 1|)", PER_IMAGE_SAMPLE,
               source="seam/gradient_ratio"),
    MetricInfo("seam/gradient_ratio_error/region<k>", ERROR.format(of="/region<k>"), "lower", 0, math.inf, "",
               SEAM_NEEDS + ("an item with 2+ regions",), MEAN + " (derived: per image, then mean)",
               PER_IMAGE_SAMPLE, source="seam/gradient_ratio/region<k>"),
    MetricInfo("seam/color_jump", JUMP.format(of="the union of the regions"), "lower", 0, math.inf,
               "colour spreads", SEAM_NEEDS, MEAN + " with a seam (0 when none has one)", PER_IMAGE_SAMPLE,
               per_image=fn.seam_jump, empty=0.0),
    MetricInfo("seam/color_jump/region<k>", JUMP.format(of="region k's own mask"), "lower", 0, math.inf,
               "colour spreads", SEAM_NEEDS + ("an item with 2+ regions",), MEAN + " with region k and a seam",
               PER_IMAGE_SAMPLE,
               per_image=fn.seam_jump_regions, empty=0.0),
    MetricInfo("seam/perceptual", "P = sum over judge layers of the band-weighted mean of d_l(x, r): the judge's "
               "perceptual distance, on the seam band only, between the image x and its hard-edged reference "
               "composite r (same seed)", "lower", 0, math.inf, "judge distance", SEAM_NEEDS + JUDGE_REFS,
               MEAN + " with a seam", PER_IMAGE_SAMPLE,
               caveat="measures how intact both textures stay up to the edge, not how smooth the seam is: the "
                      "reference has a hard cut, so it RISES as blending heals the seam; read it with "
                      "`seam/gradient_ratio_error` and `seam/color_jump`",
               requires=("judge", "references"), per_image=fn.seam_perceptual, empty=0.0),
    MetricInfo("region_accuracy/<region>", "A = share of the judge's 32 px patches (at most 8, wholly in the region "
               "eroded/dilated by band_width) read as the region's prompt (inside: each region on its own prompt, "
               "mean over regions; outside: the base prompt outside all regions; `region<k>`: region k's own part)",
               "higher", 0, 1, "share", ("judge",), MEAN + " whose region was read", ACCURACY_SAMPLE,
               requires=("judge", "prompts"), per_image=fn.region_shares("accuracy")),
    MetricInfo("region_color/<region>", "share of the region's judge patches whose colour word is the prompt's "
               "(pattern ignored), patches as region_accuracy", "higher", 0, 1, "share", ("judge",),
               MEAN + " whose region was read", ACCURACY_SAMPLE,
               requires=("judge", "prompts"), per_image=fn.region_shares("color")),
    MetricInfo("region_pattern/<region>", "share of the region's judge patches whose pattern word is the prompt's "
               "(colour ignored), patches as region_accuracy", "higher", 0, 1, "share", ("judge",),
               MEAN + " whose region was read", ACCURACY_SAMPLE,
               requires=("judge", "prompts"), per_image=fn.region_shares("pattern")),
    MetricInfo("judge/<region>", "the judge's most frequent reading (a prompt string) of the image's patches in the "
               "region, in result.json's per_seed rows only", "none", math.nan, math.nan, "prompt", ("judge",),
               "none (per image only)", "1 image whose region holds a whole 32 px judge patch",
               requires=("judge", "prompts"), per_image=fn.judge_readings),
    MetricInfo("region_clip/<side>", "share of the region's crops CLIP places closer to the region's own prompt than "
               "to the other side's (inside: each region against the base prompt; outside: the base prompt against "
               "each region's), mean over regions", "higher", 0, 1, "share", ("clip (a local CLIP folder)",),
               MEAN + " whose region was read", PER_IMAGE_SAMPLE,
               requires=("clip", "prompts"), per_image=fn.region_clip),
    MetricInfo("perceptual/judge", "d(x, r) = sum_l mean_hw |f_l(x)/|f_l(x)| - f_l(r)/|f_l(r)||^2 on the judge's "
               "feature layers (LPIPS-style, unweighted) between the image and its reference composite",
               "lower", 0, math.inf, "judge distance", JUDGE_REFS, MEAN, PER_IMAGE_SAMPLE,
               caveat="the reference composite has hard edges: a blended seam adds distance",
               requires=("judge", "references"), per_image=fn.perceptual_judge),
    MetricInfo("lpips/<net>", "LPIPS (Zhang et al. 2018, torchmetrics, net alex|vgg|squeeze) between the image and "
               "its reference composite", "lower", 0, 1, "LPIPS", JUDGE_REFS + ("torchvision and local LPIPS weights",),
               MEAN, PER_IMAGE_SAMPLE, caveat="the reference composite has hard edges: a blended seam adds distance",
               requires=("references", "lpips"), per_image=fn.perceptual_lpips),
    MetricInfo("fid/judge", "FID = |mu_r - mu_g|^2 + tr(S_r + S_g - 2 (S_r S_g)^1/2) over the judge's 128-d features "
               "of the job's images (g) and metrics.real_images rendered reference composites (r)", "lower", 0,
               math.inf, "judge-feature FID", ("judge", "real images (metrics.real_images > 0)"),
               "set-level: one value over all the job's images", FID_SAMPLE.format(dims=128), min_images=2,
               caveat="judge features, not Inception: not comparable with published FIDs",
               requires=("judge", "real_images")),
    MetricInfo("fid/inception", "FID over InceptionV3 pool3 features (2048-d, torch-fidelity's TF-ported network, "
               "as the FID literature) of the job's images against a reference set of real images", "lower", 0,
               math.inf, "Inception FID", ("a reference set (metrics.reference)", "local Inception weights"),
               "set-level: one value over all the job's images", FID_SAMPLE.format(dims=2048) + "; the runner asks "
               "for at least 50 generated images (metrics.reference's min_generated)", min_images=2,
               requires=("reference_set",)),
    MetricInfo("kid/judge", "KID = unbiased MMD^2 with kernel (x.y / d + 1)^3 over the judge's features, mean over "
               "random subsets (seeded)", "lower", -math.inf, math.inf, "judge-feature KID",
               ("judge", "real images (metrics.real_images > 0)"), "set-level: one value over all the job's images",
               KID_SAMPLE, min_images=2, caveat="unbiased: can be slightly negative when the sets match",
               requires=("judge", "real_images")),
    MetricInfo("kid/inception", "KID over InceptionV3 pool3 features against the reference set, as kid/judge",
               "lower", -math.inf, math.inf, "Inception KID", ("a reference set (metrics.reference)",
               "local Inception weights"), "set-level: one value over all the job's images", KID_SAMPLE,
               min_images=2,
               requires=("reference_set",)),
    MetricInfo("kid/<features>_std", "standard deviation of the KID over its random subsets: the KID's own "
               "uncertainty", "lower", 0, math.inf, "KID", ("as the KID",), "set-level: one value per job",
               KID_SAMPLE, min_images=2,
               caveat="a subset holds min(subset_size, n_real, n_generated) images of each set, so when a set is "
                      "smaller than `subset_size` (1000 by default) every subset holds all of the smaller set and "
                      "only the larger set's draw changes: the spread then reflects only which of its images "
                      "(usually references) were left out, not the sampling noise of the KID; 0 when both sets are "
                      "whole in every subset. It measures the estimate, not the images"),
    MetricInfo("clip_score/<scope>", "CLIPScore = 100 max(cos(E_image, E_text), 0) per image (Hessel et al. 2021): "
               "`image` the whole image against the item's full prompt (base and region prompts joined), "
               "`region<k>` the crop of region k's bounding box against its prompt, `inside` the mean over regions",
               "higher", 0, 100, "CLIPScore", ("clip (a local CLIP folder)",), MEAN, PER_IMAGE_SAMPLE,
               caveat="its scale depends on the CLIP model: compare within one; CLIP reads 77 tokens, so a long "
                      "full prompt is cut",
               requires=("clip", "prompts"), per_image=fn.clip_score),
    MetricInfo("background/psnr", "PSNR = 10 log10(1 / MSE) over the kept pixels (keep = outside every region's "
               "grown mask) between the image and its input image: how much of the input's background the job "
               "kept", "higher", 0, 100, "dB", ("an input image (items that start from one)",), MEAN + " with an input",
               PER_IMAGE_SAMPLE, caveat="capped at 100 dB: an unchanged background reads 100",
               requires=("input",), per_image=fn.background_psnr),
    MetricInfo("background/ssim", "SSIM (Wang et al. 2004, 11 px Gaussian window) map's mean over the kept pixels "
               "between the image and its input image", "higher", -1, 1, "", ("an input image (items that start "
               "from one)",), MEAN + " with an input", PER_IMAGE_SAMPLE,
               requires=("input",), per_image=fn.background_ssim),
    MetricInfo("background/lpips", "LPIPS between the input image and the image pasted on it where keep = 1 (so it "
               "sees only the kept pixels' changes)", "lower", 0, 1, "LPIPS",
               ("an input image (items that start from one)", "torchvision and local LPIPS weights"),
               MEAN + " with an input", PER_IMAGE_SAMPLE,
               requires=("input", "lpips"), per_image=fn.background_lpips),
)
_COMPILED = [(_regex(info.pattern), info) for info in FAMILIES]
_SOURCES = [(_regex(info.source), info) for info in FAMILIES if info.source is not None]  # derived families


def describe(key: str) -> MetricInfo:
    """The family of a concrete metric key (`region_accuracy/region2` -> `region_accuracy/<region>`); ValueError
    naming a key no family declares."""
    check_text(key, "metric key")
    for regex, info in _COMPILED:
        if regex.fullmatch(key):
            return info
    raise ValueError(f"metric {key!r} is not declared in dualsampler/metrics/registry.py (declared: "
                     f"{', '.join(info.pattern for info in FAMILIES)})")


def requirements(key: str) -> tuple[str, ...]:
    """What measuring `key` requires (REQUIREMENTS): its family's; a KID's standard deviation what its KID does."""
    info = describe(key)
    if info.pattern == "kid/<features>_std":
        return describe(key.removesuffix("_std")).requires
    return info.requires


def measured(available: Iterable[str]) -> list[MetricInfo]:
    """The families with a per-image function whose requirements are all in `available`, in declaration order."""
    have = set(available)
    return [info for info in FAMILIES if info.per_image is not None and set(info.requires) <= have]


def axis_label(key: str) -> str:
    """A figure axis label with the key's direction and unit, e.g. `fid/judge ↓ (judge-feature FID)`,
    `seam/gradient_ratio (healthy = 1)`, `region_accuracy/inside ↑ (share)`."""
    info = describe(key)
    notes = [info.unit] if info.unit else []
    if info.direction == "target":
        notes.append(f"healthy = {info.target:g}")
    arrow = f" {info.arrow}" if info.arrow else ""
    return f"{key}{arrow}" + (f" ({', '.join(notes)})" if notes else "")


def _derive(key: str) -> tuple[str, float] | None:
    """(the derived key, the target its source is healthy at) of a reported key that a derived family reads (the
    derived key keeps the key's placeholders: `seam/gradient_ratio/region1` -> `seam/gradient_ratio_error/region1`),
    else None."""
    for source, info in _SOURCES:
        match = source.fullmatch(key)
        if match is not None:
            return _fill(info.pattern, match.groups()), describe(key).target
    return None


def derived_keys(keys: Iterable[str]) -> list[str]:
    """The derived keys that reported `keys` give (`seam/gradient_ratio/region1` -> `.._error/region1`)."""
    found = (_derive(key) for key in keys)
    return [pair[0] for pair in found if pair is not None]


def derived(values: Mapping[str, object]) -> dict[str, float]:
    """The derived keys of one image's readings (a per_seed row: numeric values of their source keys; others are
    ignored), only the new keys: `{"seam/gradient_ratio": 0.8}` -> `{"seam/gradient_ratio_error": 0.2}`."""
    out = {}
    for key, value in values.items():
        found = _derive(key)
        if found is not None and isinstance(value, Real) and not isinstance(value, bool) and not math.isnan(value):
            out[found[0]] = abs(float(value) - found[1])
    return out


def derived_means(rows: Sequence[Mapping[str, object]]) -> dict[str, float]:
    """The job-level derived keys: each derived key's per-image value (`derived` of each row), averaged over the
    rows that have it; only the new keys (what result.json's `metrics` gets)."""
    totals: dict[str, list[float]] = {}
    for row in rows:
        for key, value in derived(row).items():
            totals.setdefault(key, []).append(value)
    return {key: math.fsum(values) / len(values) for key, values in totals.items()}


def spec_entry(info: MetricInfo, width: int = 115) -> str:
    """One family as a SPEC §13 list item wrapped at `width` (the same facts the figures and the objective read)."""
    caveat = f" *Caveat:* {info.caveat}." if info.caveat else ""
    derived_from = f" Derived from `{info.source}`." if info.source else ""
    text = (f"- `{info.pattern}` — {info.meaning}. Range {info.range if info.direction != 'none' else 'a string'}; "
            f"{info.better}; unit: {info.unit or 'none (a pure number)'}. Needs: {', '.join(info.needs)}. "
            f"Aggregate: {info.aggregate}. Sample: {info.sample}.{derived_from}{caveat}")
    return textwrap.fill(text, width, subsequent_indent="  ", break_long_words=False, break_on_hyphens=False)
