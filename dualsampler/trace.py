"""What every latent pixel went through in a region-sampler run, built from the callback reports every algorithm
emits (`dualsampler.dual`): how many model evaluations touched it, the noise level it ended at, and which sampler
(role) wrote it last.

Each report is a dict with `step` (schedule step), `sampler` (role), `mask` (the latent-resolution weight
`[B|1,1,h,w]` the call may change, None = the whole latent), `sigma`, `sigma_next` and `evals` (model calls of
that step; sampling/sample.py adds the last two), `x` (its shape sizes the maps) and, for one trajectory over
several denoisers, `shares` (member role -> its share `[B,1,h,w]` of the x0 written). With `w` the report's weight
at a pixel (1 without a mask):

- evals:  `+= evals` where `w > 0` (a batched forward over several prompts counts once);
- writer: where `w >= 0.5` (the call writes the larger part of the pixel), the report's role, or, with `shares`,
          the member with the largest share there; -1 where no call ever did (a hole);
- sigma:  where `w >= 0.5`, `sigma_next`: the noise level the pixel's last writer left it at (every pixel starts at
          the first report's `sigma`). The share a masked call holds may keep its noise or, under a noise mask
          with added noise, follow the noised original down, which the report does not say: the majority writer's
          level is the one that holds either way.

Use: `trace = Trace(); algorithm(..., callback=trace)`, then `trace.summary()` (JSON-ready, for result.json) and
`trace.save_images(folder)` (PNG heatmaps). `Trace(callback)` passes every report on to `callback` too. One trace
per algorithm call (a batch of seeds); `Trace.stack(traces)` joins the calls of a job batch after batch.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import Tensor

from .validation import check_callback, check_int

ENDED_AT_ZERO = 1e-6  # a pixel whose noise level is at most this ended at sigma 0
IMAGE_NAMES = ("trace_evals", "trace_sigma", "trace_writer")


class Trace:
    """Per-pixel maps of one run (batch element b is `evals[b]`, `sigma[b]`, `writer[b]`, each `[h, w]`) and the
    per-step and per-role model-call counts; callable as the run's callback."""

    def __init__(self, callback: Callable[[dict[str, Any]], None] | None = None) -> None:
        check_callback(callback)
        self.forward = callback
        self.roles: list[str] = []
        self.evals: Tensor | None = None
        self.sigma: Tensor | None = None
        self.writer: Tensor | None = None
        self.evals_per_step: dict[int, int] = defaultdict(int)
        self.evals_per_role: dict[str, int] = defaultdict(int)
        self.evals_per_member: dict[str, int] = defaultdict(int)
        self.reports = 0
        self.runs = 1

    @classmethod
    def stack(cls, traces: Sequence[Trace]) -> Trace:
        """One trace of several calls (batches): the per-pixel maps concatenated along the batch, the counts (per
        step, role, member, reports) averaged over the calls, i.e. per call as in a single trace."""
        if not isinstance(traces, (list, tuple)) or not all(isinstance(t, Trace) for t in traces):
            raise ValueError(f"traces must be a list of Trace objects, got {traces!r}")
        traces = [t for t in traces if t.evals is not None]
        if not traces:
            raise ValueError("Trace.stack needs at least one trace with reports")
        out = cls()
        for t in traces:
            for role in t.roles:
                out._role(role)
        out.evals = torch.cat([t.evals for t in traces])  # type: ignore[misc]
        out.sigma = torch.cat([t.sigma for t in traces])  # type: ignore[misc]
        out.writer = torch.cat([torch.tensor([-1] + [out.roles.index(r) for r in t.roles])[t.writer + 1]
                                for t in traces])  # type: ignore[operator]
        out.runs = sum(t.runs for t in traces)
        for name in ("evals_per_step", "evals_per_role", "evals_per_member"):
            total: dict[Any, int] = defaultdict(int)
            for t in traces:
                for key, value in getattr(t, name).items():
                    total[key] += value * t.runs
            setattr(out, name, defaultdict(int, {k: v / out.runs for k, v in total.items()}))
        out.reports = sum(t.reports * t.runs for t in traces) / out.runs
        return out

    @property
    def callback(self) -> Callable[[dict[str, Any]], None]:
        return self

    def _role(self, role: str) -> int:
        if role not in self.roles:
            self.roles.append(role)
        return self.roles.index(role)

    def _start(self, info: dict[str, Any]) -> None:
        batch, _, height, width = info["x"].shape
        self.evals = torch.zeros(batch, height, width, dtype=torch.float64)
        self.sigma = torch.full((batch, height, width), float(info["sigma"]), dtype=torch.float64)
        self.writer = torch.full((batch, height, width), -1, dtype=torch.long)

    def _weight(self, mask: Tensor | None) -> Tensor:
        assert self.evals is not None
        if mask is None:
            return torch.ones_like(self.evals)
        return mask.detach().to("cpu", torch.float64)[:, 0].clamp(0, 1).expand_as(self.evals)

    def __call__(self, info: dict[str, Any]) -> None:
        if self.evals is None:
            self._start(info)
        assert self.evals is not None and self.sigma is not None and self.writer is not None
        role = str(info.get("sampler", "sampler"))
        evals = int(info.get("evals", 1))
        sigma_next = float(info.get("sigma_next", info["sigma"]))
        w = self._weight(info.get("mask"))
        self.evals += evals * (w > 0)
        self.sigma = torch.where(w >= 0.5, sigma_next, self.sigma)
        shares = info.get("shares")
        if shares:
            members = list(shares)
            stacked = torch.stack([self._weight(shares[m]) for m in members])
            best = torch.tensor([self._role(m) for m in members])[stacked.argmax(0)]
            self.writer = torch.where(w >= 0.5, best, self.writer)
            for m in members:
                if bool((stacked[members.index(m)] > 0).any()):
                    self.evals_per_member[m] += evals
        else:
            self.writer = torch.where(w >= 0.5, torch.tensor(self._role(role)), self.writer)
            self.evals_per_member[role] += evals
        self.evals_per_step[int(info.get("step", info.get("i", 0)))] += evals
        self.evals_per_role[role] += evals
        self.reports += 1
        if self.forward is not None:
            self.forward(info)

    def ended_at_zero(self) -> Tensor:
        """`[B, h, w]` bool: the pixels whose noise level ended at sigma 0."""
        self._require()
        return self.sigma <= ENDED_AT_ZERO  # type: ignore[operator]

    def skipped(self) -> Tensor:
        """`[B, h, w]` bool: the pixels no model evaluation touched."""
        self._require()
        return self.evals == 0  # type: ignore[operator]

    def _require(self) -> None:
        if self.evals is None:
            raise ValueError("the trace has no reports: pass it as the run's callback first")

    def summary(self) -> dict[str, Any]:
        """JSON-ready: model calls per algorithm call (a batch of seeds, evaluated together) in all, per step, per
        role (report) and per member (base/regions of a joint trajectory); per-pixel evaluations (min/mean/max),
        skipped pixels, the share of pixels ending at sigma 0, the largest final sigma, and each role's share of
        the pixels it wrote last (over every image)."""
        self._require()
        assert self.evals is not None and self.sigma is not None and self.writer is not None
        steps = sorted(self.evals_per_step)
        pixels = self.writer.numel()
        return {
            "runs": self.runs,
            "reports": self.reports,
            "evals_total": sum(self.evals_per_step.values()),
            "evals_per_step": [self.evals_per_step[s] for s in steps],
            "first_step": steps[0] if steps else 0,
            "evals_per_role": dict(self.evals_per_role),
            "evals_per_member": dict(self.evals_per_member),
            "pixel_evals": {"min": float(self.evals.min()), "mean": float(self.evals.mean()),
                            "max": float(self.evals.max())},
            "skipped_pixels": int(self.skipped().sum()),
            "share_at_sigma0": float(self.ended_at_zero().double().mean()),
            "max_final_sigma": float(self.sigma.max()),
            "last_writer": {role: float((self.writer == k).sum()) / pixels for k, role in enumerate(self.roles)},
        }

    def save_images(self, folder: str | Path, batch_index: int = 0) -> list[Path]:
        """`trace_evals.png` (model evaluations per pixel), `trace_sigma.png` (the sigma each pixel ended at) and
        `trace_writer.png` (the role that wrote each pixel last) of batch element `batch_index`; returns the paths."""
        self._require()
        assert self.evals is not None and self.sigma is not None and self.writer is not None
        check_int(batch_index, "batch_index", 0, self.evals.shape[0] - 1)
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.colors import BoundaryNorm, ListedColormap

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        maps = [(self.evals[batch_index], "model evaluations per latent pixel", "viridis"),
                (self.sigma[batch_index], "sigma each latent pixel ended at", "magma")]
        paths = []
        for (values, title, cmap), name in zip(maps, IMAGE_NAMES):
            fig, ax = plt.subplots(figsize=(4, 3.6))
            image = ax.imshow(values.numpy(), cmap=cmap, interpolation="nearest")
            fig.colorbar(image, ax=ax)
            ax.set_title(title, fontsize=9)
            ax.set_axis_off()
            paths.append(folder / f"{name}.png")
            fig.savefig(paths[-1], dpi=120, bbox_inches="tight")
            plt.close(fig)
        labels = ["none"] + self.roles
        colours = ListedColormap(["#000000"] + [plt.get_cmap("tab10")(k % 10) for k in range(len(self.roles))])
        fig, ax = plt.subplots(figsize=(4, 3.6))
        image = ax.imshow(self.writer[batch_index].numpy() + 1, cmap=colours, interpolation="nearest",
                          norm=BoundaryNorm(torch.arange(len(labels) + 1).double().sub(0.5).tolist(), len(labels)))
        bar = fig.colorbar(image, ax=ax, ticks=list(range(len(labels))))
        bar.ax.set_yticklabels(labels)
        ax.set_title("sampler that wrote each latent pixel last", fontsize=9)
        ax.set_axis_off()
        paths.append(folder / f"{IMAGE_NAMES[2]}.png")
        fig.savefig(paths[-1], dpi=120, bbox_inches="tight")
        plt.close(fig)
        return paths
