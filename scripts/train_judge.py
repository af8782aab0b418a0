"""Train the Judge (color and pattern classifier) on augmented textures; export to weights/judge/.

loss = CE(color) + CE(pattern) on textures of random size 32..64 px, degraded like generated
images (random blur, noise, brightness). Resumable from checkpoints/judge/last.pt.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from dualsampler.models.architectures import build_judge
from world_training import (
    CHECKPOINTS, Checkpoint, Logger, base_parser, cosine_lr, eval_textures, export, labels, step_generator, texture_batch,
)


def degrade(images: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random Gaussian blur (sigma 0..1.2 px), brightness x[0.9, 1.1] and noise (std 0..0.04) per image."""
    out = []
    for img in images:
        sigma = 1.2 * float(torch.rand((), generator=gen))
        if sigma > 0.3:
            r = torch.arange(-3, 4, dtype=torch.float32)
            k = torch.exp(-r.pow(2) / (2 * sigma**2))
            k = k / k.sum()
            img = F.conv2d(F.pad(img[None], (3, 3, 0, 0), mode="replicate"), k.view(1, 1, 1, 7).repeat(3, 1, 1, 1), groups=3)
            img = F.conv2d(F.pad(img, (0, 0, 3, 3), mode="replicate"), k.view(1, 1, 7, 1).repeat(3, 1, 1, 1), groups=3)[0]
        img = img * (0.9 + 0.2 * float(torch.rand((), generator=gen)))
        img = img + torch.randn(img.shape, generator=gen) * 0.04 * float(torch.rand((), generator=gen))
        out.append(img.clamp(0, 1))
    return torch.stack(out)


def accuracy(judge, images: torch.Tensor, prompts: list[str]) -> tuple[float, float]:
    """(color accuracy, pattern accuracy) of `judge` on `images`."""
    colors, patterns = labels(prompts)
    with torch.no_grad():
        color_logits, pattern_logits = judge(images)
    return float((color_logits.argmax(1) == colors).float().mean()), float((pattern_logits.argmax(1) == patterns).float().mean())


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0], steps=3000, batch_size=32, lr=1e-3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ckdir = args.checkpoint_dir or CHECKPOINTS / "judge"
    torch.manual_seed(args.seed)
    judge = build_judge()
    opt = torch.optim.AdamW(judge.parameters(), lr=args.lr, weight_decay=1e-4)
    ckpt, log = Checkpoint(ckdir), Logger(ckdir)
    step = ckpt.load(model=judge, opt=opt)
    log(f"judge: start at step {step}/{args.steps}, {sum(p.numel() for p in judge.parameters())} params")
    held_out, held_prompts = eval_textures(4, 64)
    judge.train()
    while step < args.steps:
        for group in opt.param_groups:
            group["lr"] = cosine_lr(step, args.steps, args.lr, floor=0.02)
        gen = step_generator(args.seed, step)
        size = int(torch.randint(32, 65, (), generator=gen))
        images, prompts = texture_batch(gen, args.batch_size, size)
        images = degrade(images, gen)
        colors, patterns = labels(prompts)
        color_logits, pattern_logits = judge(images)
        loss = F.cross_entropy(color_logits, colors) + F.cross_entropy(pattern_logits, patterns)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(judge.parameters(), 1.0)
        opt.step()
        step += 1
        if step % 50 == 0:
            log(f"step {step} loss {loss.item():.4f}")
        if step % args.checkpoint_every == 0 or step == args.steps:
            ckpt.save(step, model=judge, opt=opt)
            judge.eval()
            color_acc, pattern_acc = accuracy(judge, held_out, held_prompts)
            log(f"step {step} held-out accuracy color {color_acc:.4f} pattern {pattern_acc:.4f}")
            judge.train()
    judge.eval()
    export(judge, args.weights_dir / "judge")
    log(f"judge: exported to {args.weights_dir / 'judge'}")


if __name__ == "__main__":
    main()
