"""The trace of a region-sampler run: per latent pixel the model evaluations that touched it, the sigma it ended at
and the sampler that wrote it last, for every algorithm; the regional route's overlap band stepped twice."""

import json

import pytest
import torch
from PIL import Image

from dualsampler.dual import ALGORITHMS, Alternate, Fused, MultiDiffusion, Region, Regional
from dualsampler.masks import ellipse_mask, rectangle_mask
from dualsampler.sampling import KSampler
from dualsampler.trace import Trace

from helpers import GaussianData

STEPS = 6
DISC = ellipse_mask(128, 128, 0.5, 0.5, 0.3, 0.3)  # image-resolution disc over a 32x32 latent (issue 12, cause 7)


def samplers(sampler: str = "euler") -> tuple[KSampler, KSampler]:
    return KSampler(GaussianData(mu=-1.0, std=0.1), sampler), KSampler(GaussianData(mu=1.0, std=0.1), sampler)


def traced(algorithm, mask=DISC, size=(32, 32), steps=STEPS, sampler="euler") -> Trace:
    trace = Trace()
    algorithm(torch.zeros(1, 4, *size), base_sampler=samplers(sampler)[0], mask_sampler=samplers(sampler)[1],
              mask=mask, seed=0, steps=steps, callback=trace)
    return trace


def radius() -> torch.Tensor:
    """Distance of each latent pixel centre from the disc's centre, in latent pixels (disc radius 9.6)."""
    c = torch.arange(32) + 0.5
    return ((c.reshape(-1, 1) - 16) ** 2 + (c.reshape(1, -1) - 16) ** 2).sqrt()


CASES = [(name, overlap) for name, cls in ALGORITHMS.items()
         for overlap in ((0, 1) if "overlap_factor" in cls.__dataclass_fields__ else (None,))]


@pytest.mark.parametrize("name, overlap", CASES)
@pytest.mark.parametrize("sampler", ["euler", "dpmpp_2m_sde"])
def test_every_pixel_is_denoised_and_ends_at_sigma_zero(name, overlap, sampler):
    cls = ALGORITHMS[name]
    trace = traced(cls() if overlap is None else cls(overlap_factor=overlap), sampler=sampler)
    assert not trace.skipped().any()
    assert (trace.writer >= 0).all()
    assert trace.ended_at_zero().all()
    summary = trace.summary()
    assert summary["skipped_pixels"] == 0 and summary["share_at_sigma0"] == 1.0


def test_the_regional_route_steps_its_overlap_band_twice_per_step():
    """After its base-only first step, each step runs the base where the ceiled mask is 0 and the region inside its
    grown mask: the ring where both reach gets 2 evaluations a step, everything else 1 (upstream's unit: 8 pixels
    of the image-size mask)."""
    trace = traced(Regional(overlap_factor=8, base_only_steps=1, overlap_at_mask_resolution=True))
    evals, r = trace.evals[0], radius()
    once, twice = STEPS, 1 + 2 * (STEPS - 1)
    assert set(evals.unique().tolist()) == {once, twice}
    ring = evals == twice
    assert ring.sum() > 30 and (r[ring] > 8).all() and (r[ring] < 12.5).all()
    assert (evals[r < 8] == once).all() and (evals[r > 12.5] == once).all()
    assert trace.summary()["evals_per_step"] == [1] + [2] * (STEPS - 1)


def test_one_trajectory_evaluates_every_pixel_once_per_model_call():
    for algorithm in (Fused(overlap_factor=8), MultiDiffusion(overlap_factor=8)):
        trace = traced(algorithm)
        assert (trace.evals == STEPS).all()
        assert trace.summary()["evals_total"] == STEPS


def test_alternation_counts_the_grown_band_twice_and_names_the_last_writer():
    mask = rectangle_mask(8, 16, 0, 0.5, 1, 1)
    trace = traced(Alternate(overlap_factor=3), mask=mask, size=(8, 16))
    evals = trace.evals[0]
    assert (evals[:, 7] == 2 * STEPS).all()  # grown by a 3-box: one column left of the mask
    assert (evals[:, :7] == STEPS).all() and (evals[:, 8:] == STEPS).all()
    writer = [trace.roles[k] for k in trace.writer[0, 0].tolist()]
    assert writer == ["base"] * 7 + ["mask"] * 9
    assert trace.summary()["evals_per_role"] == {"base": STEPS, "mask": STEPS}


def test_a_joint_trajectory_names_the_member_with_the_largest_share():
    trace = traced(MultiDiffusion(), mask=rectangle_mask(8, 16, 0, 0.5, 1, 1), size=(8, 16))
    writer = [trace.roles[k] for k in trace.writer[0, 0].tolist()]
    assert writer == ["base"] * 8 + ["mask"] * 8
    assert trace.summary()["evals_per_member"] == {"base": STEPS, "mask": STEPS}


def test_whole_runs_touch_only_their_own_side():
    trace = traced(ALGORITHMS["whole_run"](), mask=rectangle_mask(8, 16, 0, 0.5, 1, 1), size=(8, 16))
    assert (trace.evals == STEPS).all() and trace.summary()["evals_per_step"] == [2] * STEPS


def test_the_summary_is_json_and_its_counts_add_up():
    trace = traced(Regional(overlap_factor=4))
    summary = json.loads(json.dumps(trace.summary()))
    assert sum(summary["evals_per_step"]) == summary["evals_total"] == sum(summary["evals_per_role"].values())
    assert summary["pixel_evals"]["min"] <= summary["pixel_evals"]["mean"] <= summary["pixel_evals"]["max"]
    assert sum(summary["last_writer"].values()) == pytest.approx(1.0)
    assert summary["max_final_sigma"] == 0.0


def test_a_pixel_no_call_writes_is_reported_as_skipped():
    trace = Trace()
    x = torch.zeros(1, 4, 2, 2)
    hole = torch.tensor([[1.0, 1.0], [1.0, 0.0]]).reshape(1, 1, 2, 2)
    trace({"i": 0, "step": 0, "sampler": "base", "mask": hole, "x": x, "sigma": 2.0, "sigma_next": 0.0, "evals": 1})
    assert trace.skipped()[0].tolist() == [[False, False], [False, True]]
    assert trace.sigma[0].tolist() == [[0.0, 0.0], [0.0, 2.0]]
    assert trace.summary()["share_at_sigma0"] == 0.75


def test_a_trace_passes_every_report_on_and_saves_its_maps(tmp_path):
    seen = []
    trace = Trace(seen.append)
    Alternate(overlap_factor=2)(torch.zeros(1, 4, 8, 8), base_sampler=samplers()[0], mask_sampler=samplers()[1],
                                mask=rectangle_mask(8, 8, 0, 0.5, 1, 1), seed=0, steps=3, callback=trace.callback)
    assert len(seen) == trace.reports == 6
    paths = trace.save_images(tmp_path / "trace")
    assert [p.name for p in paths] == ["trace_evals.png", "trace_sigma.png", "trace_writer.png"]
    for path in paths:
        assert Image.open(path).size[0] > 100


def test_an_empty_trace_says_what_is_missing():
    with pytest.raises(ValueError, match="no reports"):
        Trace().summary()


def test_n_regions_have_their_own_roles():
    base = KSampler(GaussianData(mu=-1.0, std=0.1))
    regions = [Region(rectangle_mask(8, 16, 0, 0, 1, 0.25), KSampler(GaussianData(mu=1.0, std=0.1))),
               Region(rectangle_mask(8, 16, 0, 0.75, 1, 1), KSampler(GaussianData(mu=3.0, std=0.1)))]
    trace = Trace()
    MultiDiffusion().sample_regions(torch.zeros(1, 4, 8, 16), base_sampler=base, regions=regions, seed=0, steps=4,
                                    callback=trace)
    writer = [trace.roles[k] for k in trace.writer[0, 0].tolist()]
    assert writer == ["region0"] * 4 + ["base"] * 8 + ["region1"] * 4


def test_traces_of_batch_after_batch_stack_into_one_per_call_summary():
    first, second = Trace(), Trace()
    mask = rectangle_mask(8, 16, 0, 0.5, 1, 1)
    for trace, batch in ((first, 2), (second, 1)):
        Alternate(overlap_factor=3)(torch.zeros(batch, 4, 8, 16), base_sampler=samplers()[0],
                                    mask_sampler=samplers()[1], mask=mask, seed=0, steps=STEPS, callback=trace)
    stacked = Trace.stack([first, second])
    assert stacked.evals.shape == (3, 8, 16) and torch.equal(stacked.writer[2], first.writer[0])
    summary = stacked.summary()
    assert summary["runs"] == 2 and summary["evals_per_step"] == first.summary()["evals_per_step"]
    assert summary["evals_per_role"] == {"base": STEPS, "mask": STEPS}
