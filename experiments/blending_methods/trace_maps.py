"""The trace of every algorithm on the experiment's mask and canvas:
`python experiments/blending_methods/trace_maps.py`.

For each algorithm at `overlap_factor` 4 (the config's default), 20 steps, base euler and mask dpmpp_2m as in
the sweep: model evaluations per latent pixel and the sampler that wrote each pixel last (blue base, red mask,
grey one fused trajectory), from a `Trace`. The
maps depend on the algorithm, the samplers and the mask, not on the model, so the analytic Gaussian denoisers
stand in for the world's UNet. Writes `trace_maps.png` next to this file."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from dualsampler.dual import ALGORITHMS  # noqa: E402
from dualsampler.masks import ellipse_mask  # noqa: E402
from dualsampler.sampling import KSampler  # noqa: E402
from dualsampler.trace import Trace  # noqa: E402

from report import Gaussian  # noqa: E402

HERE = Path(__file__).parent


def main() -> None:
    names = list(ALGORITHMS)
    fig, axes = plt.subplots(2, len(names), figsize=(2.6 * len(names), 5.6))
    for column, name in enumerate(names):
        cls = ALGORITHMS[name]
        algorithm = cls(overlap_factor=4) if "overlap_factor" in cls.__dataclass_fields__ else cls()
        trace = Trace()
        algorithm(torch.zeros(1, 4, 32, 32), base_sampler=KSampler(Gaussian(-1.0), "euler"),
                  mask_sampler=KSampler(Gaussian(1.0), "dpmpp_2m"), mask=ellipse_mask(128, 128, ry=0.3, rx=0.3),
                  seed=0, steps=20, callback=trace)
        summary = trace.summary()
        image = axes[0, column].imshow(trace.evals[0].numpy(), cmap="viridis", vmin=0, vmax=40)
        axes[0, column].set_title(f"{name}\nevals per pixel {summary['pixel_evals']['min']:.0f}-"
                                  f"{summary['pixel_evals']['max']:.0f}\nat sigma 0: {summary['share_at_sigma0']:.0%}",
                                  fontsize=8)
        colour = {"base": 0.0, "mask": 1.0}
        writer = [[colour.get(trace.roles[k], 0.5) if k >= 0 else float("nan") for k in row]
                  for row in trace.writer[0].tolist()]
        axes[1, column].imshow(torch.tensor(writer).numpy(), cmap="coolwarm", vmin=0, vmax=1)
        axes[1, column].set_title("last writer: " + ", ".join(trace.roles), fontsize=8)
        for ax in axes[:, column]:
            ax.set_axis_off()
    fig.colorbar(image, ax=axes[0, :].tolist(), shrink=0.8, label="model evaluations per latent pixel")
    fig.savefig(HERE / "trace_maps.png", dpi=100, bbox_inches="tight")
    plt.close(fig)


if __name__ == "__main__":
    main()
