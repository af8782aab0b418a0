#!/usr/bin/env bash
# Train the embedded tiny world and export the weights into dualsampler/models/weights/.
# The recipe of the shipped weights, in the order they were trained (each line resumes from
# checkpoints/<name>/last.pt, so a line with a larger --steps continues the previous one; re-running
# after an interruption continues too). Same recipe, not bit-identical weights: the shipped runs
# were also stopped and resumed by hand.
# Usage: bash scripts/train_world.sh   (logs: checkpoints/<name>/train.log; about 2 h 30 min on 2 shared cores)
set -euo pipefail
cd "$(dirname "$0")/.."
# stage 1: single textures. Wall times on the 2 shared cores with jobs side by side (first session, with
# restarts): VAE ~25 min, decoder fine-tunes 4.5 + 11 min, judge 10 + 7 min, upscaler 10 min, UNet 26 + 29 min
python scripts/train_vae.py --composites 0                                # 1500 steps, 32-px crops
python scripts/train_vae.py --composites 0 --decoder-only --lr 5e-4       # decoder fine-tune, encoder frozen
python scripts/train_vae.py --composites 0 --decoder-only --lr 5e-4 --crop 48 --steps 2200
python scripts/train_judge.py --steps 1000
python scripts/train_judge.py                                             # resumes to 3000 steps
python scripts/train_upscaler.py                                          # 1000 steps
python scripts/train_unet.py --composites-per-prompt 0                    # 8000 steps on VAE latents
python scripts/train_unet.py --composites-per-prompt 0 --steps 12000      # resumed: lower-LR tail of 4000 steps
# stage 2: two-region composites (GroupNorm and attention span the whole image, so stage 1 merged two regions' colors)
python scripts/train_vae.py --init-from-weights --composites 0.5 --crop 48 --steps 1200 --lr 3e-4 --threads 2 \
    --checkpoint-dir checkpoints/vae_composites                           # whole VAE, half of each batch composites
# UNet fine-tunes (10.3, 9.8, 8.7, 8.5 and 8.5 min on 2 idle cores; the VAE line above 4.3 min): textures + composites
# with a region-masked loss; then also 128-px canvases; then more unconditional composites (CFG pushed each
# region's color away from its neighbour's)
python scripts/train_unet.py --init-from-weights --steps 4000 --lr 2.5e-4 --threads 2 --checkpoint-dir checkpoints/unet_composites
python scripts/train_unet.py --init-from-weights --steps 3000 --lr 2e-4 --threads 2 --large-every 2 --checkpoint-dir checkpoints/unet_large
python scripts/train_unet.py --init-from-weights --steps 3000 --lr 2e-4 --threads 2 --large-every 2 --cfg-dropout 0.25 \
    --checkpoint-dir checkpoints/unet_uncond
python scripts/train_unet.py --init-from-weights --steps 3000 --lr 2e-4 --threads 2 --large-every 2 --cfg-dropout 0.4 \
    --checkpoint-dir checkpoints/unet_uncond2
python scripts/train_unet.py --init-from-weights --steps 3000 --lr 2e-4 --threads 2 --large-every 2 --cfg-dropout 0.5 \
    --checkpoint-dir checkpoints/unet_uncond3
python scripts/evaluate_world.py
