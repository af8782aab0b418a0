"""Data sets shipped with the package: `world_regions/world_regions.jsonl`, a manifest of the world's prompts and
region masks (`dualsampler.runner.manifest.WORLD_MANIFEST`)."""
