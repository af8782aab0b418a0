#!/usr/bin/env bash
# Train the embedded tiny world in order (VAE first: the UNet trains on its latents) and export
# the weights into dualsampler/models/weights/. Every script resumes from checkpoints/<name>/last.pt,
# so re-running this script after an interruption continues where it stopped.
# Usage: bash scripts/train_world.sh   (logs: checkpoints/<name>/train.log)
set -euo pipefail
cd "$(dirname "$0")/.."
python scripts/train_vae.py
python scripts/train_judge.py
python scripts/train_upscaler.py
python scripts/train_unet.py
python scripts/evaluate_world.py
