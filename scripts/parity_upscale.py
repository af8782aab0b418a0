"""The upscaler's parity cases (issue 18): the Impact Pack's IterativeLatentUpscale around its
TwoSamplersForMaskUpscaler against `dualsampler.upscale.iterative_upscale` around ours, driven by
scripts/upstream_parity.py (route `upscale`).

Both sides get the same analytic pieces, defined here: `LinearVAE` (a fixed linear map between a latent cell and
its 8x8 pixel block, encode the exact left inverse of decode), `TinyUpscaler` (2x nearest then a 3x3 box blur) and
a conditioning that shows cfg (the positive prompt shifts the Gaussian model's x0 by `SHIFT` per channel, so a
pass at cfg c predicts `x0 + c * SHIFT`). Upstream's noise injection hook needs BlenderNeko's ComfyUI_Noise nodes
(`--comfyui-noise DIR`); without them those cases are left out.

Every parameter of a case is in its `extra` dict, so tests/test_parity.py rebuilds it from the manifest:
`factor`, `iterations`, `step_mode`, `scale_method`, `schedule` (full_sample_schedule), `model` (TinyUpscaler on
or off), `cfg` (every sampler's), `mask_seed`, `mask_denoise`, `full` (`[sampler, scheduler]` of the full sampler,
or null), `hooks` (`{"base"|"mask"|"full": [spec, ...]}`, two specs combined in order; a spec is `["cfg", target]`,
`["denoise", target]`, `["steps", target]` or `["noise", seed, start, end]`), `mask_value` (a constant mask at image
resolution instead of the case's `mask`) and `noise_mask` (the case's mask handed to the iterations as the
latent's noise mask). A case's `flow` (`{"kind": "sd3" | "flux", "shift": ...}`, see upstream_parity.py) runs
every pass under that flow model sampling.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from dualsampler.sampling import KSampler
from dualsampler.upscale import (CfgScheduleHook, CombinedHook, DenoiseScheduleHook, NoiseInjectionHook,
                                 StepsScheduleHook, TwoSamplersForMaskUpscaler, UpscaleSampler, iterative_upscale)
from dualsampler.upscale.schedules import is_full_sample_time
from dualsampler.upscale.step_plan import upscale_plan

VAE_FACTOR = 8
VAE_SEED = 20240518
SHIFT = (0.1, -0.1, 0.05, -0.05)

# Deviations of the upscaler (README "Deviations from upstream"); keys become the harness's DEVIATIONS.
DEVIATIONS = {
    "upscale_schedule": "full_sample_schedule names (upstream: last1 never, last2 = last only, +last1 = interleave1)",
    "upscale_cfg_int": "cfg schedule keeps the float (upstream truncates with int())",
    "upscale_noise_strength": "noise injection strength reaches end_strength (upstream's i/n never does)",
    "upscale_pixel_hook": "pixel-stage hooks are hook_base's (upstream: hook_mask's when an upscale model is given)",
    "upscale_lanczos": "lanczos in float (ComfyUI resizes through 8-bit images)",
    "upscale_bicubic": "bicubic clamped to [0, 1] (ComfyUI does not clamp)",
    "upscale_crop": "target size resized to the VAE multiple (upstream resizes to the floor, its encoder crops)",
    "upscale_mask_row": "masked iterations resize the mask (upstream's core uses the mask's first row)",
    "upscale_noise_mask": "the latent's noise mask masks the injected noise (upstream's hook never sees it)",
}


# --------------------------------------------------------------------------------------------------------------
# The analytic pieces both sides share
# --------------------------------------------------------------------------------------------------------------

class LinearVAE(torch.nn.Module):
    """decode: `x[c, 8y+i, 8x+j] = sum_k W[k, c, i, j] z[k, y, x]`; encode: the left inverse `pinv(W^T)` per block,
    so `encode(decode(z)) = z`. `W` ~ 0.05 N(0, 1), fixed by VAE_SEED (decoded images stay well inside [-1, 1])."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(VAE_SEED)
        w = torch.randn(4, 3 * VAE_FACTOR**2, generator=g, dtype=torch.float64) * 0.05
        shape = (4, 3, VAE_FACTOR, VAE_FACTOR)
        self.weight = torch.nn.Parameter(w.reshape(shape).float(), requires_grad=False)
        self.inverse = torch.nn.Parameter(torch.linalg.pinv(w.T).reshape(shape).float(), requires_grad=False)

    def decode(self, z: Tensor) -> Tensor:
        return F.conv_transpose2d(z.float(), self.weight, stride=VAE_FACTOR)

    def encode(self, x: Tensor) -> Tensor:
        return F.conv2d(x.float(), self.inverse, stride=VAE_FACTOR)


class OurVAE(torch.nn.Module):
    """LinearVAE as a diffusers AutoencoderKL looks to dualsampler (config, `.sample`, `.latent_dist.mode()`)."""

    def __init__(self, codec: LinearVAE) -> None:
        super().__init__()
        self.codec = codec
        self.config = types.SimpleNamespace(block_out_channels=(1, 1, 1, 1), scaling_factor=1.0, shift_factor=None)

    def decode(self, z: Tensor) -> types.SimpleNamespace:
        return types.SimpleNamespace(sample=self.codec.decode(z))

    def encode(self, x: Tensor) -> types.SimpleNamespace:
        z = self.codec.encode(x)
        return types.SimpleNamespace(latent_dist=types.SimpleNamespace(mode=lambda: z))


class TinyUpscaler(torch.nn.Module):
    """A 2x upscale model: nearest-neighbour doubling, then a 3x3 box blur with replicated edges."""

    scale = 2

    def __init__(self) -> None:
        super().__init__()
        self.kernel = torch.nn.Parameter(torch.full((3, 1, 3, 3), 1 / 9), requires_grad=False)

    def forward(self, images: Tensor) -> Tensor:
        doubled = F.interpolate(images, scale_factor=2, mode="nearest")
        return F.conv2d(F.pad(doubled, (1, 1, 1, 1), mode="replicate"), self.kernel, groups=3)


def shift(like: Tensor) -> Tensor:
    """SHIFT as `[1, 4, 1, 1]` in `like`'s dtype and device."""
    return torch.tensor(SHIFT, dtype=like.dtype, device=like.device).reshape(1, -1, 1, 1)


class GuidedDenoiser:
    """Our side of the cfg-visible model: `D(x, sigma) + cfg * SHIFT`, every model call through `denoiser`."""

    def __init__(self, denoiser: Any, cfg: float) -> None:
        self.denoiser = denoiser
        self.cfg = cfg

    def __call__(self, x: Tensor, sigma: Tensor) -> Tensor:
        return self.denoiser(x, sigma) + self.cfg * shift(x)


# --------------------------------------------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------------------------------------------

def _extra(**changes: Any) -> dict[str, Any]:
    """A case's parameters: the defaults below with `changes`."""
    extra = {"factor": 2.0, "iterations": 2, "step_mode": "simple", "scale_method": "bilinear", "schedule": "none",
             "model": False, "cfg": 2.0, "mask_seed": 7, "mask_denoise": 0.6, "full": None,
             "hooks": {"base": [], "mask": [], "full": []}, "mask_value": 0.5, "noise_mask": False}
    extra.update(changes)
    return extra


def _hooks(**specs: list) -> dict[str, list]:
    """`extra["hooks"]`: each role's list of hook specs (empty: no hook)."""
    return {"base": specs.get("base", []), "mask": specs.get("mask", []), "full": specs.get("full", [])}


def schedule_deviates(schedule: str, iterations: int) -> bool:
    """Whether the names' meaning and upstream's arithmetic pick different full-sample iterations."""
    infos = [(i, iterations) for i in range(iterations)]
    return any(is_full_sample_time(s, schedule, False) != is_full_sample_time(s, schedule, True) for s in infos)


def cfg_deviates(start: float, target: float, iterations: int) -> bool:
    """Whether the float cfg schedule and upstream's int() differ at some iteration."""
    values = [start + (target - start) * (i / (iterations - 1) if iterations > 1 else 1.0) for i in range(iterations)]
    return any(v != int(v) for v in values)


def build_cases(case_type: type, samplers: list[str], noise_nodes: bool) -> list:
    """The upscaler's case families: 119 cases (109 without `noise_nodes`), 4-step passes on an 8x8 latent."""
    make = _case_maker(case_type)
    cases = []
    for schedule in ("none", "interleave1", "interleave2", "interleave3", "last1", "last2", "interleave1+last1",
                     "interleave2+last1", "interleave3+last1"):
        dev = "upscale_schedule" if schedule_deviates(schedule, 4) else None
        cases.append(make(f"up/schedule/{schedule}", extra=_extra(schedule=schedule, iterations=4, factor=1.5,
                                                                  full=["dpmpp_2m", "karras"]), deviation=dev))
    hooked = {"schedule": "interleave1", "iterations": 3, "factor": 2.5, "full": ["euler", "normal"]}
    for role in ("base", "mask", "full"):
        for tag, spec in (("cfg", ["cfg", 4.0]), ("cfg_frac", ["cfg", 3.5]), ("denoise", ["denoise", 0.3]),
                          ("steps", ["steps", 7]), ("steps_down", ["steps", 2])):
            dev = "upscale_cfg_int" if spec[0] == "cfg" and cfg_deviates(2.0, spec[1], 3) else None
            cases.append(make(f"up/hook/{role}/{tag}", extra=_extra(**hooked, hooks=_hooks(**{role: [spec]})),
                              deviation=dev))
    combined = _hooks(base=[["denoise", 0.35], ["steps", 6]], mask=[["cfg", 3.0], ["denoise", 0.4]])
    cases.append(make("up/hook/combined", extra=_extra(schedule="interleave1", iterations=3, factor=2.5,
                                                      hooks=combined)))
    if noise_nodes:
        noise = [["noise", 5, 0.2, 0.6]]
        cases.append(make("up/hook/noise/base", extra=_extra(iterations=3, factor=2.5, hooks=_hooks(base=noise)),
                          deviation="upscale_noise_strength"))
        cases.append(make("up/hook/noise/flat", extra=_extra(iterations=3, factor=2.5,
                                                             hooks=_hooks(base=[["noise", 5, 0.4, 0.4]]))))
        cases.append(make("up/hook/noise/mask+model", extra=_extra(iterations=3, factor=2.5, model=True,
                                                                   hooks=_hooks(mask=noise)),
                          deviation="upscale_pixel_hook"))
        cases.append(make("up/hook/noise/combined", extra=_extra(iterations=2, hooks=_hooks(
            base=[["noise", 9, 0.3, 0.3], ["cfg", 3.0]]))))
        cases.append(make("up/hook/noise/noise_mask", mask="soft/image",
                          extra=_extra(iterations=2, noise_mask=True,
                                       hooks=_hooks(base=[["noise", 9, 0.3, 0.3]])),
                          deviation="upscale_noise_mask"))
    for method in ("nearest-exact", "bilinear", "area", "bicubic", "lanczos"):
        dev = {"lanczos": "upscale_lanczos", "bicubic": "upscale_bicubic"}.get(method)
        for model in (False, True):
            tag = f"{method}/model" if model else method
            cases.append(make(f"up/scale/{tag}", extra=_extra(scale_method=method, model=model),
                              deviation="upscale_lanczos" if method == "lanczos" else None))
            # 64 px -> 86.4: resized to 86, the centre 80 encoded (torch's nearest-exact picks other pixels in float32
            # and float64 at 83, which the sensitivity probe would take for ill-conditioning)
            cases.append(make(f"up/scale/{tag}/x1.35", extra=_extra(scale_method=method, model=model, factor=1.35,
                                                                    iterations=1)))
        cases.append(make(f"up/scale/{method}/geometric", extra=_extra(scale_method=method, step_mode="geometric",
                                                                       factor=2.5, iterations=3)))
        if noise_nodes:  # strong injected noise: decoded images reach 0 and 1, where bicubic and lanczos overshoot
            cases.append(make(f"up/scale/{method}/noisy", extra=_extra(scale_method=method, hooks=_hooks(
                base=[["noise", 3, 6.0, 6.0]])), deviation=dev))
    for mode in ("simple", "geometric"):
        for iterations, factor in ((1, 2.0), (3, 2.0), (4, 1.75)):
            cases.append(make(f"up/plan/{mode}/{iterations}x{factor}",
                              extra=_extra(step_mode=mode, iterations=iterations, factor=factor)))
    for value in (0.0, 0.3, 1.0):
        cases.append(make(f"up/mask/const{value}", extra=_extra(mask_value=value)))
    for mask in ("binary/image", "soft/image", "soft/latent", "binary/latent"):
        cases.append(make(f"up/mask/{mask}", mask=mask, extra=_extra(mask_value=None), deviation="upscale_mask_row"))
    cases.append(make("up/mask/wide", width=12, extra=_extra(factor=1.5)))
    cases.append(make("up/mask/wide/soft/image", width=12, mask="soft/image",
                      extra=_extra(factor=1.5, mask_value=None), deviation="upscale_mask_row"))
    for sampler in ("euler", "euler_ancestral", "heun", "dpm_2", "dpm_2_ancestral", "lms", "dpmpp_2s_ancestral",
                    "dpmpp_2m", "ddim", "ipndm", "deis", "res_multistep", "dpmpp_sde", "dpmpp_2m_sde",
                    "dpmpp_3m_sde", "dpmpp_2m_sde_heun", "dpmpp_sde_gpu", "dpmpp_2m_sde_gpu", "dpm_fast",
                    "dpm_adaptive", "uni_pc", "uni_pc_bh2"):
        if sampler not in samplers:
            continue
        full = {"schedule": "interleave1", "full": [sampler, "karras"]}
        cases.append(make(f"up/sampler/{sampler}/full", sampler=sampler, extra=_extra(**full)))
        cases.append(make(f"up/sampler/{sampler}/masked", sampler=sampler, mask_sampler=sampler,
                          extra=_extra(iterations=1)))
    return cases + flow_cases(make, samplers, noise_nodes)


FLOW_SD3 = {"kind": "sd3", "shift": 3.0}


def flow_cases(make: Callable[..., Any], samplers: list[str], noise_nodes: bool) -> list:
    """Issue 22: the upscaler under SD3's flow model sampling: masked passes of samplers with rectified-flow
    variants, an interleaved full-sample schedule, the mask's own noise mask and (with the noise nodes) noise
    injection."""
    cases = []
    for sampler in ("euler", "euler_ancestral", "dpmpp_2s_ancestral", "dpmpp_sde", "dpmpp_2m_sde", "er_sde"):
        if sampler in samplers:
            cases.append(make(f"up/flow/sampler/{sampler}/masked", sampler=sampler, mask_sampler=sampler,
                              extra=_extra(iterations=2, flow=FLOW_SD3)))
    cases.append(make("up/flow/schedule/interleave1", extra=_extra(schedule="interleave1", iterations=3, factor=1.5,
                                                                   full=["dpmpp_2m", "simple"], flow=FLOW_SD3)))
    cases.append(make("up/flow/mask/soft/image", mask="soft/image", extra=_extra(mask_value=None, flow=FLOW_SD3),
                      deviation="upscale_mask_row"))
    if noise_nodes:
        cases.append(make("up/flow/hook/noise/flat", extra=_extra(iterations=3, factor=2.5, flow=FLOW_SD3,
                                                                  hooks=_hooks(base=[["noise", 5, 0.4, 0.4]]))))
    return cases


def _crops(extra: dict[str, Any], height: int = 64) -> bool:
    """Whether some iteration of the case's plan asks for a size off the VAE multiple (on a `height`-px input)."""
    plan = upscale_plan(extra["factor"], extra["iterations"], extra["step_mode"])
    return any(int(height * scale) % VAE_FACTOR for _, scale in plan)


def _case_maker(case_type: type) -> Callable[..., Any]:
    def make(name: str, *, sampler: str = "euler", mask_sampler: str = "dpmpp_2m", extra: dict,
             deviation: str | None = None, mask: str | None = None, width: int = 8) -> Any:
        """A case; its deviation is `deviation`, else `upscale_crop` when its plan asks for sizes off the VAE
        multiple (a case showing several deviations names one: upstream_compat reproduces them all)."""
        deviation = deviation or ("upscale_crop" if _crops(extra) else None)
        return case_type(name, "upscale", sampler, "karras", 4, seed=42, denoise=0.5, img2img=True, mask=mask,
                         mask_sampler=mask_sampler, mask_scheduler="normal", deviation=deviation, width=width,
                         extra=extra)

    return make


def upscale_mask(case: Any) -> Tensor:
    """The upscaler's mask: a constant `mask_value` at image resolution, else the case's own mask."""
    value = case.extra["mask_value"]
    if value is None:
        return case.mask_tensor()
    h, w = case.shape[-2:]
    return torch.full((1, h * VAE_FACTOR, w * VAE_FACTOR), float(value))


# --------------------------------------------------------------------------------------------------------------
# Ours
# --------------------------------------------------------------------------------------------------------------

def _our_hook(specs: list, upstream_compat: bool) -> Any:
    def one(spec: list) -> Any:
        kind, *args = spec
        if kind == "cfg":
            return CfgScheduleHook(args[0], round_down=upstream_compat)
        if kind == "denoise":
            return DenoiseScheduleHook(args[0])
        if kind == "steps":
            return StepsScheduleHook(args[0])
        return NoiseInjectionHook(*args, upstream_compat=upstream_compat)

    hooks = [one(spec) for spec in specs]
    if not hooks:
        return None
    return hooks[0] if len(hooks) == 1 else CombinedHook(*hooks)


def run_ours(case: Any, upstream_compat: bool, denoiser: Any) -> Tensor:
    """The case through `iterative_upscale` with a `TwoSamplersForMaskUpscaler`; every model call through
    `denoiser` (wrapped as `GuidedDenoiser`)."""
    x = case.extra
    den = GuidedDenoiser(denoiser, x["cfg"])

    model_sampling = case.model_sampling()

    def spec(sampler: str, scheduler: str, seed: int, denoise: float) -> UpscaleSampler:
        ks = KSampler(den, sampler, scheduler, model_sampling, upstream_compat=upstream_compat)
        return UpscaleSampler(ks, seed, case.steps, denoise)

    full = spec(*x["full"], case.seed, case.denoise) if x["full"] else None
    hooks = {role: _our_hook(x["hooks"][role], upstream_compat) for role in ("base", "mask", "full")}
    upscaler = TwoSamplersForMaskUpscaler(
        x["scale_method"], x["schedule"], False, spec(case.sampler, case.scheduler, case.seed, case.denoise),
        spec(case.mask_sampler, case.mask_scheduler, x["mask_seed"], x["mask_denoise"]), upscale_mask(case),
        OurVAE(LinearVAE()), full, TinyUpscaler() if x["model"] else None, hooks["base"], hooks["mask"],
        hooks["full"], upstream_compat=upstream_compat)
    noise_mask = case.mask_tensor() if x["noise_mask"] else None
    return iterative_upscale(case.latent(), x["factor"], x["iterations"], upscaler, x["step_mode"], noise_mask)


# --------------------------------------------------------------------------------------------------------------
# Upstream
# --------------------------------------------------------------------------------------------------------------

class UpstreamSide:
    """What the Impact Pack's upscaler needs from ComfyUI, built once per harness `Upstream`: the cfg-visible
    model, a real `comfy.sd.VAE` around LinearVAE, the upscale model, the Impact modules and the noise nodes."""

    def __init__(self, up: Any, noise_dir: Path | None) -> None:
        import comfy.conds
        import comfy.model_patcher
        import comfy.sd

        cpu = torch.device("cpu")
        inner = type(up.model.model)()
        analytic = inner.apply_model

        def apply_model(x: Tensor, t: Tensor, c_crossattn: Tensor, **kwargs: Any) -> Tensor:
            return analytic(x, t) + c_crossattn[:, 0, 0].reshape(-1, 1, 1, 1).to(x) * shift(x)

        inner.apply_model = apply_model
        inner.extra_conds = lambda **kwargs: {"c_crossattn": comfy.conds.CONDCrossAttn(kwargs["cross_attn"])}
        self.up = up
        self.plain = self.model = comfy.model_patcher.ModelPatcher(inner, load_device=cpu, offload_device=cpu)
        self.positive = [[torch.ones(1, 1, 8), {}]]
        self.negative = [[torch.zeros(1, 1, 8), {}]]
        self.vae = _comfy_vae(comfy.sd.VAE, comfy.model_patcher.ModelPatcher, LinearVAE())
        self.upscale_model = _UpstreamUpscaleModel(TinyUpscaler())
        modules = str(Path(sys.modules["impact"].__path__[0]).parent)
        sys.path.insert(0, modules)
        try:
            self.core = importlib.import_module("impact.core")
            self.hooks = importlib.import_module("impact.hooks")
            self.impact_sampling = importlib.import_module("impact.impact_sampling")
            self.impact_pack = importlib.import_module("impact.impact_pack")
        finally:
            sys.path.remove(modules)
        server = self.core.PromptServer
        if getattr(server, "instance", None) is None:  # no web server: the nodes' status updates go nowhere
            server.instance = types.SimpleNamespace(client_id=None)
        if noise_dir is not None:
            spec = importlib.util.spec_from_file_location("comfyui_noise_nodes", noise_dir / "nodes.py")
            nodes_module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(nodes_module)
            up.nodes.NODE_CLASS_MAPPINGS.update(nodes_module.NODE_CLASS_MAPPINGS)

    def sampler(self, sampler: str, scheduler: str, seed: int, steps: int, cfg: float, denoise: float) -> Any:
        return self.impact_sampling.KSamplerWrapper(self.model, seed, steps, cfg, sampler, scheduler, self.positive,
                                                    self.negative, denoise)

    def hook(self, specs: list) -> Any:
        def one(spec: list) -> Any:
            kind, *args = spec
            if kind == "cfg":
                return self.hooks.SimpleCfgScheduleHook(args[0])
            if kind == "denoise":
                return self.hooks.SimpleDenoiseScheduleHook(args[0])
            if kind == "steps":
                return self.hooks.SimpleStepsScheduleHook(args[0])
            return self.hooks.InjectNoiseHook("CPU", *args)

        hooks = [one(spec) for spec in specs]
        if not hooks:
            return None
        return hooks[0] if len(hooks) == 1 else self.hooks.PixelKSampleHookCombine(*hooks)

    def run(self, case: Any) -> Tensor:
        """The case; under the harness model's patched model sampling (a flow case's) when it has one."""
        patched = self.up.model.object_patches.get("model_sampling")
        self.model = self.plain
        if patched is not None:
            self.model = self.plain.clone()
            self.model.add_object_patch("model_sampling", patched)
        x = case.extra
        full = self.sampler(*x["full"], case.seed, case.steps, x["cfg"], case.denoise) if x["full"] else None
        upscaler = self.core.TwoSamplersForMaskUpscaler(
            x["scale_method"], x["schedule"], False,
            self.sampler(case.sampler, case.scheduler, case.seed, case.steps, x["cfg"], case.denoise),
            self.sampler(case.mask_sampler, case.mask_scheduler, x["mask_seed"], case.steps, x["cfg"],
                         x["mask_denoise"]),
            upscale_mask(case), self.vae, full, self.upscale_model if x["model"] else None,
            self.hook(x["hooks"]["base"]), self.hook(x["hooks"]["mask"]), self.hook(x["hooks"]["full"]))
        latent = {"samples": case.latent()}
        if x["noise_mask"]:
            latent["noise_mask"] = case.mask_tensor()
        out = self.impact_pack.IterativeLatentUpscale().doit(latent, x["factor"], x["iterations"], "", upscaler,
                                                              x["step_mode"])[0]
        return out["samples"]


class _UpstreamUpscaleModel:
    """What ComfyUI's ImageUpscaleWithModel asks of a spandrel descriptor: `scale`, `model`, `to`, a call."""

    def __init__(self, model: TinyUpscaler) -> None:
        self.model = model
        self.scale = model.scale

    def to(self, device: Any) -> _UpstreamUpscaleModel:
        self.model.to(device)
        return self

    def __call__(self, images: Tensor) -> Tensor:
        return self.model(images)


def _comfy_vae(vae_type: type, patcher_type: type, codec: LinearVAE) -> Any:
    """A `comfy.sd.VAE` whose first stage is `codec` (its loader only builds real autoencoders from weights):
    upstream's own decode, encode (with its crop) and tiling run around it. Pixels in [0, 1] are the codec's
    `(x + 1) / 2`, clamped, as for any 8x autoencoder."""
    cpu = torch.device("cpu")
    vae = vae_type.__new__(vae_type)
    vae.__dict__.update(
        first_stage_model=codec, device=cpu, output_device=cpu, vae_dtype=torch.float32,
        patcher=patcher_type(codec, load_device=cpu, offload_device=cpu),
        memory_used_encode=lambda shape, dtype: 1, memory_used_decode=lambda shape, dtype: 1,
        downscale_ratio=VAE_FACTOR, upscale_ratio=VAE_FACTOR, latent_channels=4, latent_dim=2, output_channels=3,
        process_input=lambda image: image * 2.0 - 1.0,
        process_output=lambda image: torch.clamp((image + 1.0) / 2.0, min=0.0, max=1.0),
        working_dtypes=[torch.float32], disable_offload=False, not_video=False, downscale_index_formula=None,
        upscale_index_formula=None, extra_1d_channel=None, crop_input=True)
    return vae


_SIDES: dict[int, UpstreamSide] = {}


def run_upstream(up: Any, case: Any, noise_dir: Path | None) -> Tensor:
    """The case through the Impact Pack's IterativeLatentUpscale (one `UpstreamSide` per harness `Upstream`)."""
    if id(up) not in _SIDES:
        _SIDES[id(up)] = UpstreamSide(up, noise_dir)
    return _SIDES[id(up)].run(case)


def has_noise_nodes(noise_dir: Path | None) -> bool:
    """Whether `noise_dir` holds ComfyUI_Noise's nodes.py (upstream's noise injection hook needs them)."""
    return noise_dir is not None and (noise_dir / "nodes.py").is_file()
