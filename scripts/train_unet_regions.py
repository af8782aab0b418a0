"""Fine-tune the world's UNet for regions: half of each batch are two-texture composites, conditioned on the
prompt of one region and trained only on that region, so a prompt's colour and pattern hold inside a mask
whatever the context outside it (the single-texture UNet blends the two regions' colours: blue + red -> purple).

    python scripts/train_unet_regions.py            # starts from the exported unet/ and prompt_encoder/

Composite latents: `z = z_a (1 - m) + z_b m` with a random half / rectangle / ellipse mask m at latent
resolution; the prompt of a or b is taken at random and the loss of that sample is averaged over its region
eroded by one latent pixel (the unconditional "" keeps the whole image). Same eps loss weighting, CFG dropout
and EMA as train_unet.py. Resumable from checkpoints/unet_regions/last.pt.
"""
from __future__ import annotations

import copy
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import UNet2DConditionModel

from dualsampler.masks import ellipse_mask, half_mask, rectangle_mask
from dualsampler.models.architectures import build_scheduler
from dualsampler.models.prompt_encoder import PromptEncoder
from dualsampler.world import PROMPTS
from train_unet import BORDER, CROP_LATENT, conditioning_prompts
from world_training import CHECKPOINTS, Checkpoint, Logger, base_parser, cosine_lr, export, step_generator


def random_region_mask(gen: torch.Generator, size: int) -> torch.Tensor:
    """A half split, a rectangle or an ellipse at random, `[1, size, size]` in {0, 1}."""
    u = torch.rand(5, generator=gen).tolist()
    kind = int(u[0] * 3)
    if kind == 0:
        return half_mask(size, size, ("left", "right", "top", "bottom")[int(u[1] * 4)])[0]
    if kind == 1:
        top, left = 0.5 * u[1], 0.5 * u[2]
        return rectangle_mask(size, size, top, left, top + 0.3 + 0.2 * u[3], left + 0.3 + 0.2 * u[4])[0]
    return ellipse_mask(size, size, 0.3 + 0.4 * u[1], 0.3 + 0.4 * u[2], 0.2 + 0.2 * u[3], 0.2 + 0.2 * u[4])[0]


def erode(mask: torch.Tensor) -> torch.Tensor:
    """Binary erosion by one pixel (3x3 min-pool)."""
    return -F.max_pool2d(-mask, 3, stride=1, padding=1)


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0], steps=1500, batch_size=32, lr=1.5e-4)
    parser.add_argument("--cfg-dropout", type=float, default=0.1)
    parser.add_argument("--ema", type=float, default=0.995)
    parser.add_argument("--composite-fraction", type=float, default=0.5)
    parser.add_argument("--init-dir", type=Path, default=None, help="weights to start from (default: --weights-dir)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ckdir = args.checkpoint_dir or CHECKPOINTS / "unet_regions"
    ckpt, log = Checkpoint(ckdir), Logger(ckdir)
    data = torch.load(CHECKPOINTS / "unet" / "latents.pt", weights_only=True)
    latents, index = data["latents"], data["index"]
    init = args.init_dir or args.weights_dir
    unet = UNet2DConditionModel.from_pretrained(init / "unet", torch_dtype=torch.float32)
    encoder = PromptEncoder.from_pretrained(init / "prompt_encoder", torch_dtype=torch.float32)
    params = list(unet.parameters()) + list(encoder.parameters())
    ema_unet, ema_encoder = copy.deepcopy(unet).requires_grad_(False), copy.deepcopy(encoder).requires_grad_(False)
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=1e-2)
    step = ckpt.load(unet=unet, encoder=encoder, ema_unet=ema_unet, ema_encoder=ema_encoder, opt=opt)
    log(f"unet_regions: start at step {step}/{args.steps}")
    scheduler = build_scheduler()
    snr = scheduler.alphas_cumprod / (1 - scheduler.alphas_cumprod)
    loss_weights = (1 + 1 / snr) * snr.clamp(max=5.0) / snr
    loss_weights = loss_weights / loss_weights.mean()
    span = latents.shape[-1] - 2 * BORDER - CROP_LATENT + 1
    n_comp = int(args.batch_size * args.composite_fraction)
    unet.train()
    while step < args.steps:
        for group in opt.param_groups:
            group["lr"] = cosine_lr(step, args.steps, args.lr, warmup=50)
        gen = step_generator(args.seed + 7, step)
        rows = torch.randint(len(latents), (args.batch_size,), generator=gen)
        others = torch.randint(len(latents), (args.batch_size,), generator=gen)
        oy, ox = (BORDER + torch.randint(span, (2,), generator=gen)).tolist()
        crop = (slice(None), slice(None), slice(oy, oy + CROP_LATENT), slice(ox, ox + CROP_LATENT))
        z_a, z_b = latents[rows][crop], latents[others][crop]
        masks = torch.ones(args.batch_size, 1, CROP_LATENT, CROP_LATENT)
        masks[:n_comp] = torch.stack([random_region_mask(gen, CROP_LATENT) for _ in range(n_comp)])
        x0 = z_a * masks + z_b * (1 - masks)  # region of z_a (the prompt's) is where masks == 1
        prompts = conditioning_prompts(index[rows], gen, args.cfg_dropout)
        region = torch.stack([erode(m[None])[0] if p else torch.ones_like(m) for m, p in zip(masks, prompts)])
        region = torch.where(region.sum((1, 2, 3), keepdim=True) > 0, region, masks)
        noise = torch.randn(x0.shape, generator=gen)
        t = torch.randint(scheduler.config.num_train_timesteps, (args.batch_size,), generator=gen)
        xt = scheduler.add_noise(x0, noise, t)
        eps = unet(xt, t, encoder.encode(prompts)).sample
        per_sample = ((eps - noise).pow(2) * region).sum((1, 2, 3)) / (region.sum((1, 2, 3)) * eps.shape[1])
        loss = (loss_weights[t] * per_sample).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        with torch.no_grad():
            for ema, model in ((ema_unet, unet), (ema_encoder, encoder)):
                for pe, pm in zip(ema.parameters(), model.parameters()):
                    pe.lerp_(pm, 1 - args.ema)
        if step % 25 == 0:
            log(f"step {step} loss {loss.item():.4f} lr {opt.param_groups[0]['lr']:.2e}")
        if step % args.checkpoint_every == 0 or step == args.steps:
            ckpt.save(step, unet=unet, encoder=encoder, ema_unet=ema_unet, ema_encoder=ema_encoder, opt=opt)
    export(ema_unet.eval(), args.weights_dir / "unet")
    export(ema_encoder.eval(), args.weights_dir / "prompt_encoder")
    log(f"unet_regions: exported unet/ and prompt_encoder/ to {args.weights_dir}")


if __name__ == "__main__":
    main()
