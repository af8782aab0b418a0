"""Train the tiny world's AutoencoderKL on texture crops and two-region composites; export to dualsampler/models/weights/vae/.

A `--composites` fraction of each batch is two-region composites (random half-plane, rectangle or
ellipse masks): GroupNorm statistics span the whole image, so a VAE that only saw single textures
merges the colors of two regions (blue | red came back purple).

loss = MSE(x, D(z)) + 0.1 L1(x, D(z)) + kl_weight * mean KL(q(z|x) || N(0, I)),  z ~ q(z|x);
scaling_factor = 1 / std(latent means) over held-out textures.
`--decoder-only` fine-tunes only the decoder of the exported VAE (the encoder, hence the UNet's
latents and the scaling factor, stay fixed), so it can run after or alongside UNet training;
`--init-from-weights` starts the whole VAE from the exported one (a fine-tune).
Resumable: re-running the same command continues from checkpoints/vae/last.pt
(checkpoints/vae_decoder/last.pt with --decoder-only).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL

from dualsampler.models.architectures import build_vae
from world_training import (
    CHECKPOINTS, Checkpoint, Logger, base_parser, composite_batch, cosine_lr, eval_composites, eval_textures, export, psnr,
    step_generator,
)


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0], steps=1500, batch_size=32, lr=1e-3)
    parser.add_argument("--crop", type=int, default=32)
    parser.add_argument("--kl-weight", type=float, default=1e-5)
    parser.add_argument("--composites", type=float, default=0.5, help="fraction of two-region composites per batch")
    parser.add_argument("--decoder-only", action="store_true", help="fine-tune the exported VAE's decoder")
    parser.add_argument("--init-from-weights", action="store_true", help="fine-tune the exported VAE (encoder too)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ckdir = args.checkpoint_dir or CHECKPOINTS / ("vae_decoder" if args.decoder_only else "vae")
    torch.manual_seed(args.seed)
    if args.decoder_only or args.init_from_weights:
        vae = AutoencoderKL.from_pretrained(args.weights_dir / "vae", torch_dtype=torch.float32, low_cpu_mem_usage=False)
    else:
        vae = build_vae()
    if args.decoder_only:
        vae.encoder.requires_grad_(False)
        vae.quant_conv.requires_grad_(False)
    opt = torch.optim.AdamW([p for p in vae.parameters() if p.requires_grad], lr=args.lr, weight_decay=0.0)
    ckpt, log = Checkpoint(ckdir), Logger(ckdir)
    step = ckpt.load(model=vae, opt=opt)
    log(f"vae: start at step {step}/{args.steps}, {sum(p.numel() for p in vae.parameters())} params")
    held_out, _ = eval_textures(2, 64)
    held_out_composites = eval_composites(72, 64)
    vae.train()
    while step < args.steps:
        for group in opt.param_groups:
            group["lr"] = cosine_lr(step, args.steps, args.lr)
        x, _, _ = composite_batch(step_generator(args.seed, step), args.batch_size, args.crop, args.composites)
        x = x * 2 - 1
        posterior = vae.encode(x).latent_dist
        recon = vae.decode(posterior.sample()).sample
        kl = 0.5 * (posterior.mean.pow(2) + posterior.var - 1 - posterior.logvar).mean()
        loss = F.mse_loss(recon, x) + 0.1 * F.l1_loss(recon, x) + args.kl_weight * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in vae.parameters() if p.requires_grad], 1.0)
        opt.step()
        step += 1
        if step % 50 == 0:
            log(f"step {step} loss {loss.item():.5f} kl {kl.item():.3f} train_psnr {psnr((recon.detach() + 1) / 2, (x + 1) / 2):.2f}")
        if step % args.checkpoint_every == 0 or step == args.steps:
            ckpt.save(step, model=vae, opt=opt)
            vae.eval()
            with torch.no_grad():
                z = vae.encode(held_out * 2 - 1).latent_dist.mean
                rec = ((vae.decode(z).sample + 1) / 2).clamp(0, 1)
                rec_composites = ((vae.decode(vae.encode(held_out_composites * 2 - 1).latent_dist.mean).sample + 1) / 2).clamp(0, 1)
            log(f"step {step} held-out psnr {psnr(rec, held_out):.2f} dB (composites {psnr(rec_composites, held_out_composites):.2f} dB), "
                f"latent std {z.std().item():.3f}")
            vae.train()
    vae.eval()
    if not args.decoder_only:
        with torch.no_grad():
            z = vae.encode(held_out * 2 - 1).latent_dist.mean
        vae.register_to_config(scaling_factor=float(1.0 / z.std()))
    scaling = vae.config.scaling_factor
    export(vae, args.weights_dir / "vae")
    log(f"vae: exported to {args.weights_dir / 'vae'} with scaling_factor {scaling:.4f}")


if __name__ == "__main__":
    main()
