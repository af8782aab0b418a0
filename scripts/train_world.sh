#!/usr/bin/env bash
# Train the embedded tiny world and export the weights into dualsampler/models/weights/.
# The recipe of the shipped weights (each line resumes from checkpoints/<name>/last.pt, so a line
# with a larger --steps continues the previous one; re-running after an interruption continues too).
# Same recipe, not bit-identical weights: the shipped runs were also stopped and resumed by hand.
# Usage: bash scripts/train_world.sh   (logs: checkpoints/<name>/train.log; about 90 min on 2 shared cores)
set -euo pipefail
cd "$(dirname "$0")/.."
python scripts/train_vae.py                                    # 1500 steps, 32-px crops
python scripts/train_vae.py --decoder-only --lr 5e-4           # decoder fine-tune, encoder frozen
python scripts/train_vae.py --decoder-only --lr 5e-4 --crop 48 --steps 2200
python scripts/train_judge.py --steps 1000
python scripts/train_judge.py                                  # resumes to 3000 steps
python scripts/train_upscaler.py                               # 1000 steps
python scripts/train_unet.py                                   # 8000 steps on VAE latents
python scripts/train_unet.py --steps 12000                     # resumed: lower-LR tail of 4000 steps
python scripts/evaluate_world.py
