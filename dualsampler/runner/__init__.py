"""The pieces of `dualsampler-run`: config validation, one job, results on disk, images, devices, sweep report."""
