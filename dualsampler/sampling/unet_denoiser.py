"""Guided denoisers over a network's `Backbone` (SPEC §1, §9): conditioning and classifier-free guidance in one
batched forward, and several denoisers of one network evaluated in one forward (`JointDenoiser`).

The network runs in its own dtype (float16/bfloat16 on a GPU); everything around it (input scaling, x0, CFG) is
float32: the backbone casts at its boundary, so samplers always do their arithmetic in float32.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from ..validation import check_bounded
from .backbone import Backbone, UNetBackbone, run_backbone
from .conditioning import Cond, cond_signature, same_cond
from .model_sampling import ModelSampling


class ModelDenoiser:
    """`D(x, sigma)` over a `Backbone`: the network sees `x * c_in(sigma)` at `t = sigma_to_t(sigma)` and its output
    becomes x0 through `model_sampling.denoised`; with `uncond` and `cfg != 1` the result is
    `uncond + (cond - uncond) * cfg`, both in one forward. `cfg` may be changed between calls (hooks do)."""

    def __init__(
        self,
        backbone: Backbone,
        model_sampling: ModelSampling | None = None,
        cond: Cond = None,
        uncond: Cond = None,
        cfg: float = 1.0,
    ) -> None:
        self.backbone = backbone
        self.model_sampling = model_sampling or ModelSampling()
        self.cond = cond
        self.uncond = uncond
        self.cfg = check_bounded(cfg, "cfg")  # NaN or inf guidance would sample NaN images

    @property
    def latent_channels(self) -> int | None:
        """The channels of the latents the backbone denoises (None when it does not say)."""
        return getattr(self.backbone, "latent_channels", None)

    def conditionings(self, with_uncond: bool = False) -> list[Cond]:
        """The conditionings one call evaluates: `[cond]`, or `[cond, uncond]` when guidance is on (or when the
        unconditional prediction is asked for, whatever cfg)."""
        if self.uncond is None or (self.cfg == 1 and not with_uncond):
            return [self.cond]
        return [self.cond, self.uncond]

    def combine(self, outputs: Sequence[Tensor]) -> Tensor:
        """x0 from the per-conditioning x0 predictions: CFG `uncond + (cond - uncond) * cfg`."""
        if len(outputs) == 1 or self.cfg == 1:
            return outputs[0]
        cond, uncond = outputs
        return uncond + (cond - uncond) * self.cfg

    def split(self, outputs: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
        """(guided x0, unconditional x0) from the outputs of `conditionings(with_uncond=True)`; without an
        unconditional prompt both are the conditional prediction."""
        return self.combine(outputs), outputs[-1]

    def run(self, x: Tensor, sigma: Tensor, conds: Sequence[Cond]) -> list[Tensor]:
        return run_backbone(self.backbone, self.model_sampling, x, sigma, conds)

    def __call__(self, x: Tensor, sigma: Tensor) -> Tensor:
        return self.combine(self.run(x, sigma, self.conditionings()))

    def with_uncond(self, x: Tensor, sigma: Tensor) -> tuple[Tensor, Tensor]:
        """(x0 guided, x0 unconditional) from the same one batched forward (SPEC §9; the cfg_pp samplers)."""
        return self.split(self.run(x, sigma, self.conditionings(with_uncond=True)))


class UNetDenoiser(ModelDenoiser):
    """A `ModelDenoiser` over a diffusers `UNet2DConditionModel` (cond = encoder_hidden_states, or a `Conditioning`
    with SDXL's added conditioning) or `UNet2DModel` (cond = optional class labels): `UNetBackbone(unet,
    vae_scale_factor)`."""

    def __init__(
        self,
        unet: nn.Module,
        model_sampling: ModelSampling | None = None,
        cond: Cond = None,
        uncond: Cond = None,
        cfg: float = 1.0,
        vae_scale_factor: int = 8,
    ) -> None:
        super().__init__(UNetBackbone(unet, vae_scale_factor), model_sampling, cond, uncond, cfg)

    @property
    def unet(self) -> nn.Module:
        return self.backbone.unet

    @property
    def vae_scale_factor(self) -> int:
        return self.backbone.vae_scale_factor


def shares_one_forward(denoisers: Sequence[object]) -> bool:
    """True when all denoisers are `ModelDenoiser`s whose backbones have one key (one network, one adapter set)
    with equal model sampling (compared by value), and conditionings that stack into one batch (same kind and
    shapes past the batch)."""
    if not denoisers or not all(isinstance(d, ModelDenoiser) for d in denoisers):
        return False
    first = denoisers[0]
    same_model = all(d.backbone.key == first.backbone.key and d.model_sampling == first.model_sampling
                     for d in denoisers)
    signatures = {cond_signature(c) for d in denoisers for c in d.conditionings(with_uncond=True)}
    return same_model and len(signatures) == 1


class JointDenoiser:
    """Several denoisers evaluated at the same `(x, sigma)`: one batched forward when `shares_one_forward`, with
    equal conditionings (typically the shared negative prompt) evaluated once. The plan (which conditionings,
    which output feeds which denoiser) is remade only when a member's conditionings change (a hook setting cfg)."""

    def __init__(self, denoisers: Sequence[object]) -> None:
        self.denoisers = list(denoisers)
        self.shared = shares_one_forward(self.denoisers)
        self._plans: dict[tuple, tuple[list[Cond], list[list[int]]]] = {}

    def plan(self, with_uncond: bool = False) -> tuple[list[Cond], list[list[int]]]:
        """(unique conditionings, for each denoiser the indices of its conditionings among them)."""
        members = [d.conditionings(with_uncond) for d in self.denoisers]
        key = tuple(id(c) for conds in members for c in conds) + (len(members), with_uncond)
        if key not in self._plans:
            unique: list[Cond] = []
            slots = []
            for conds in members:
                row = []
                for cond in conds:
                    k = next((k for k, u in enumerate(unique) if same_cond(u, cond)), None)
                    if k is None:
                        unique.append(cond)
                        k = len(unique) - 1
                    row.append(k)
                slots.append(row)
            self._plans = {key: (unique, slots)}
        return self._plans[key]

    def _outputs(self, x: Tensor, sigma: Tensor, with_uncond: bool) -> list[list[Tensor]]:
        unique, slots = self.plan(with_uncond)
        outputs = self.denoisers[0].run(x, sigma, unique)
        return [[outputs[k] for k in row] for row in slots]

    def __call__(self, x: Tensor, sigma: Tensor) -> list[Tensor]:
        if not self.shared:
            return [d(x, sigma) for d in self.denoisers]
        return [d.combine(out) for d, out in zip(self.denoisers, self._outputs(x, sigma, False))]

    def with_uncond(self, x: Tensor, sigma: Tensor) -> list[tuple[Tensor, Tensor]]:
        """Each member's (x0 guided, x0 unconditional), from one forward when shared. A member without
        `with_uncond` (not a ModelDenoiser) gives its x0 twice."""
        if not self.shared:
            return [d.with_uncond(x, sigma) if callable(getattr(d, "with_uncond", None)) else (d(x, sigma),) * 2
                    for d in self.denoisers]
        return [d.split(out) for d, out in zip(self.denoisers, self._outputs(x, sigma, True))]


def denoise_together(denoisers: Sequence[object], x: Tensor, sigma: Tensor) -> list[Tensor]:
    """Each denoiser's x0 at the same `(x, sigma)` (one call of a `JointDenoiser`)."""
    return JointDenoiser(denoisers)(x, sigma)
