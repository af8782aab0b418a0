"""Train the 2x upscaler on (area-downsampled, original) texture pairs; export to weights/upscaler/.

loss = L1(U(down2(x)), x) on 64-px crops. Resumable from checkpoints/upscaler/last.pt.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from dualsampler.models.architectures import build_upscaler
from world_training import (
    CHECKPOINTS, Checkpoint, Logger, base_parser, cosine_lr, downsample2x, eval_textures, export, psnr, step_generator,
    texture_batch,
)


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0], steps=1000, batch_size=32, lr=2e-3)
    parser.add_argument("--crop", type=int, default=64)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ckdir = args.checkpoint_dir or CHECKPOINTS / "upscaler"
    torch.manual_seed(args.seed)
    model = build_upscaler()
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)
    ckpt, log = Checkpoint(ckdir), Logger(ckdir)
    step = ckpt.load(model=model, opt=opt)
    log(f"upscaler: start at step {step}/{args.steps}, {sum(p.numel() for p in model.parameters())} params")
    held_out, _ = eval_textures(2, 64)
    low = downsample2x(held_out)
    bicubic = F.interpolate(low, scale_factor=2, mode="bicubic", align_corners=False).clamp(0, 1)
    log(f"bicubic held-out psnr {psnr(bicubic, held_out):.2f} dB")
    model.train()
    while step < args.steps:
        for group in opt.param_groups:
            group["lr"] = cosine_lr(step, args.steps, args.lr, floor=0.02)
        x, _ = texture_batch(step_generator(args.seed, step), args.batch_size, args.crop)
        loss = F.l1_loss(model(downsample2x(x)), x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        if step % 50 == 0:
            log(f"step {step} loss {loss.item():.5f}")
        if step % args.checkpoint_every == 0 or step == args.steps:
            ckpt.save(step, model=model, opt=opt)
            model.eval()
            with torch.no_grad():
                log(f"step {step} held-out psnr {psnr(model(low), held_out):.2f} dB")
            model.train()
    model.eval()
    export(model, args.weights_dir / "upscaler")
    log(f"upscaler: exported to {args.weights_dir / 'upscaler'}")


if __name__ == "__main__":
    main()
