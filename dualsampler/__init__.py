"""dualsampler: region-based dual-sampler diffusion in sigma space."""

__version__ = "0.1.0"
