"""Hydra's config tree: one YAML per choice. Ships in the wheel as `dualsampler.conf` (`pkg://dualsampler.conf`)."""
