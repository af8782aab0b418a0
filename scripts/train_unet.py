"""Train the tiny world's UNet (eps-prediction, SD betas) on VAE latents of textures and composites; export unet/ and prompt_encoder/.

Latent datasets are encoded once with the exported VAE: 104-px renders -> 26x26 latents, cropped to
16x16 (64 px, batch `--batch-size`), and with `--large-every N` every N-th step a batch of a quarter
the size from 152-px renders cropped to 32x32 (128 px, the default canvas), so the attention and
GroupNorm statistics of a full canvas with two regions are seen too. `--composites-per-prompt`
two-region composites join the single textures. A composite is conditioned on the prompt of one of
its regions and its loss is masked to that region (r = the region's latent coverage; r = 1 for a
single texture and for the empty prompt): a dual sampler asks the UNet to denoise one region with its
prompt while the other region shows another texture. With p = `--empty-region` the other region of a
composite is zeroed (the empty latent TwoSamplersForMask's base pass holds there).
loss = w_t mean(r |eps - eps_theta(x_t, t, c)|^2) / mean_t(w_t) with
w_t = (1 + sigma_t^2) min(SNR_t, 5) / SNR_t, sigma_t^2 = 1 / SNR_t: min-SNR-5 weighting of the *v* loss
(flat weight on x0 errors), so the high-noise steps that fix each prompt's color are learned;
x_t from DDPMScheduler.add_noise; the prompt is dropped to "" with p=0.1 (and to a single
word with p=0.03 each) for classifier-free guidance. EMA weights are exported.
Resumable from <checkpoint dir>/last.pt (the latent datasets are cached next to it);
`--init-from-weights` starts from the exported UNet and prompt encoder (a fine-tune).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, UNet2DConditionModel

from dualsampler.models.architectures import build_prompt_encoder, build_scheduler, build_unet
from dualsampler.models.prompt_encoder import PromptEncoder
from dualsampler.world import PROMPTS, parse_prompt, random_region_mask, render_composite, render_texture
from world_training import CHECKPOINTS, TRAIN_SEEDS, Checkpoint, Logger, base_parser, cosine_lr, export, step_generator

BORDER = 2  # latent pixels kept off each edge of a render when cropping


@dataclass
class LatentSet:
    """Encoded renders: latents [N, 4, S, S] (scaled), base / inside prompt index [N] (equal for a single texture)
    and the inside region's latent coverage [N, 1, S, S] (4x4 average of the pixel mask; zeros for a texture)."""

    latents: torch.Tensor
    base: torch.Tensor
    inside: torch.Tensor
    masks: torch.Tensor
    crop: int

    def sample(self, gen: torch.Generator, batch_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Random rows, one random crop of `crop` latent pixels -> (x0, inside coverage, base index, inside index)."""
        rows = torch.randint(len(self.latents), (batch_size,), generator=gen)
        span = self.latents.shape[-1] - 2 * BORDER - self.crop + 1
        oy, ox = (BORDER + torch.randint(span, (2,), generator=gen)).tolist()
        window = (rows, slice(None), slice(oy, oy + self.crop), slice(ox, ox + self.crop))
        return self.latents[window], self.masks[window], self.base[rows], self.inside[rows]


def encode_latent_set(vae: AutoencoderKL, render: int, crop: int, per_prompt: int, composites_per_prompt: int, seed: int, log) -> LatentSet:
    """Encode `per_prompt` textures of every prompt and `composites_per_prompt` composites with it outside, at `render` px."""
    latents, base, inside, masks = [], [], [], []
    gen = torch.Generator().manual_seed(seed)
    for k, prompt in enumerate(PROMPTS):
        seeds = torch.randint(TRAIN_SEEDS, (per_prompt + composites_per_prompt,), generator=gen).tolist()
        others = [j + (j >= k) for j in torch.randint(len(PROMPTS) - 1, (composites_per_prompt,), generator=gen).tolist()]
        pixel_masks = [torch.zeros(render, render)] * per_prompt + [random_region_mask(render, render, s) for s in seeds[per_prompt:]]
        images = [render_texture(prompt, render, render, s) for s in seeds[:per_prompt]]
        images += [render_composite(prompt, PROMPTS[j], m, s) for j, m, s in zip(others, pixel_masks[per_prompt:], seeds[per_prompt:])]
        with torch.no_grad():
            z = torch.cat([vae.encode(torch.stack(images[i : i + 64]) * 2 - 1).latent_dist.mean for i in range(0, len(images), 64)])
        latents.append(z * vae.config.scaling_factor)
        masks.append(F.avg_pool2d(torch.stack(pixel_masks)[:, None], render // z.shape[-1]))
        base += [k] * len(images)
        inside += [k] * per_prompt + others
    log(f"latent dataset at {render} px: {len(base)} images, {len(base) - len(PROMPTS) * per_prompt} composites")
    return LatentSet(torch.cat(latents), torch.tensor(base), torch.tensor(inside), torch.cat(masks), crop)


def cached_latent_set(path: Path, weights_dir: Path, crop: int, **encode_args) -> LatentSet:
    """The latent set cached at `path`, encoded with the exported VAE on first use."""
    if path.exists():
        return LatentSet(**torch.load(path, weights_only=True), crop=crop)
    vae = AutoencoderKL.from_pretrained(weights_dir / "vae", torch_dtype=torch.float32, low_cpu_mem_usage=False).eval()
    data = encode_latent_set(vae, crop=crop, **encode_args)
    torch.save({"latents": data.latents, "base": data.base, "inside": data.inside, "masks": data.masks}, path)
    return data


def conditioning_prompts(index: torch.Tensor, gen: torch.Generator, drop: float) -> list[str]:
    """Prompts for a batch, with CFG dropout: "" with p=drop, color only / pattern only with p=0.03 each."""
    u = torch.rand(len(index), generator=gen).tolist()
    prompts = []
    for k, r in zip(index.tolist(), u):
        color, pattern = parse_prompt(PROMPTS[k])
        if r < drop:
            prompts.append("")
        elif r < drop + 0.03:
            prompts.append(color)
        elif r < drop + 0.06:
            prompts.append(pattern)
        else:
            prompts.append(PROMPTS[k])
    return prompts


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0], steps=8000, batch_size=32, lr=5e-4)
    parser.add_argument("--per-prompt", type=int, default=64, help="training textures per prompt in the latent dataset")
    parser.add_argument("--composites-per-prompt", type=int, default=64, help="composites per prompt (outside) in the dataset")
    parser.add_argument("--large-every", type=int, default=0, help="every N-th step a 128-px batch (0: never)")
    parser.add_argument("--empty-region", type=float, default=0.25, help="p of zeroing the other region of a composite")
    parser.add_argument("--init-from-weights", action="store_true", help="fine-tune the exported UNet and prompt encoder")
    parser.add_argument("--cfg-dropout", type=float, default=0.1)
    parser.add_argument("--ema", type=float, default=0.999)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ckdir = args.checkpoint_dir or CHECKPOINTS / "unet"
    ckpt, log = Checkpoint(ckdir), Logger(ckdir)
    counts = dict(per_prompt=args.per_prompt, composites_per_prompt=args.composites_per_prompt, log=log)
    small = cached_latent_set(ckdir / "latents.pt", args.weights_dir, crop=16, render=104, seed=12345, **counts)
    large = None
    if args.large_every:
        large = cached_latent_set(ckdir / "latents_large.pt", args.weights_dir, crop=32, render=152, seed=54321,
                                  per_prompt=args.per_prompt // 2, composites_per_prompt=args.composites_per_prompt, log=log)

    torch.manual_seed(args.seed)
    if args.init_from_weights:
        unet = UNet2DConditionModel.from_pretrained(args.weights_dir / "unet", torch_dtype=torch.float32, low_cpu_mem_usage=False)
        encoder = PromptEncoder.from_pretrained(args.weights_dir / "prompt_encoder", torch_dtype=torch.float32, low_cpu_mem_usage=False)
    else:
        unet, encoder = build_unet(), build_prompt_encoder()
    params = list(unet.parameters()) + list(encoder.parameters())
    ema_unet, ema_encoder = copy.deepcopy(unet).requires_grad_(False), copy.deepcopy(encoder).requires_grad_(False)
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=1e-2)
    step = ckpt.load(unet=unet, encoder=encoder, ema_unet=ema_unet, ema_encoder=ema_encoder, opt=opt)
    log(f"unet: start at step {step}/{args.steps}, {sum(p.numel() for p in unet.parameters())} params")
    scheduler = build_scheduler()
    snr = scheduler.alphas_cumprod / (1 - scheduler.alphas_cumprod)
    loss_weights = (1 + 1 / snr) * snr.clamp(max=5.0) / snr
    loss_weights = loss_weights / loss_weights.mean()
    unet.train()
    while step < args.steps:
        for group in opt.param_groups:
            group["lr"] = cosine_lr(step, args.steps, args.lr, warmup=200)
        gen = step_generator(args.seed, step)
        use_large = large is not None and step % args.large_every == args.large_every - 1
        batch_size = args.batch_size // 4 if use_large else args.batch_size
        x0, inside_mask, base, inside = (large if use_large else small).sample(gen, batch_size)
        use_inside = (torch.rand(batch_size, generator=gen) < 0.5) & (base != inside)
        prompts = conditioning_prompts(torch.where(use_inside, inside, base), gen, args.cfg_dropout)
        region = torch.where(use_inside[:, None, None, None], inside_mask, 1 - inside_mask)
        empty = (torch.rand(batch_size, generator=gen) < args.empty_region) & (base != inside)
        x0 = torch.where(empty[:, None, None, None] & (region < 0.5), 0.0, x0)
        region[torch.tensor([p == "" for p in prompts])] = 1.0
        noise = torch.randn(x0.shape, generator=gen)
        t = torch.randint(scheduler.config.num_train_timesteps, (batch_size,), generator=gen)
        xt = scheduler.add_noise(x0, noise, t)
        eps = unet(xt, t, encoder.encode(prompts)).sample
        loss = (loss_weights[t] * (region * (eps - noise).pow(2)).mean(dim=(1, 2, 3))).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        decay = min(args.ema, (1 + step) / (10 + step))
        with torch.no_grad():
            for ema, model in ((ema_unet, unet), (ema_encoder, encoder)):
                for pe, pm in zip(ema.parameters(), model.parameters()):
                    pe.lerp_(pm, 1 - decay)
        if step % 25 == 0:
            log(f"step {step} loss {loss.item():.4f} lr {opt.param_groups[0]['lr']:.2e}")
        if step % args.checkpoint_every == 0 or step == args.steps:
            ckpt.save(step, unet=unet, encoder=encoder, ema_unet=ema_unet, ema_encoder=ema_encoder, opt=opt)
            log(f"step {step} checkpoint saved")
    export(ema_unet.eval(), args.weights_dir / "unet")
    export(ema_encoder.eval(), args.weights_dir / "prompt_encoder")
    build_scheduler().save_pretrained(args.weights_dir / "scheduler")
    log(f"unet: exported unet/, prompt_encoder/, scheduler/ to {args.weights_dir}")


if __name__ == "__main__":
    main()
