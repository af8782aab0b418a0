"""Schedules and model sampling against values derived by hand from the formulas (SPEC §1-2)."""

import math

import pytest
import torch

from dualsampler.sampling import SCHEDULERS, KSampler, ModelSampling, get_sigmas


@pytest.fixture(scope="module")
def ms() -> ModelSampling:
    return ModelSampling()


def test_sd_sigma_range_from_scaled_linear_betas(ms):
    betas = [(math.sqrt(0.00085) + (math.sqrt(0.012) - math.sqrt(0.00085)) * i / 999) ** 2 for i in range(1000)]
    assert ms.sigma_min == pytest.approx(math.sqrt(betas[0] / (1 - betas[0])), rel=1e-5)
    acp = math.prod(1 - b for b in betas)
    assert ms.sigma_max == pytest.approx(math.sqrt((1 - acp) / acp), rel=1e-5)
    assert ms.sigma_max == pytest.approx(14.6146, abs=1e-3)
    assert torch.all(ms.sigmas[1:] > ms.sigmas[:-1])


def test_sigma_to_t_is_nearest_in_log_sigma_and_t_to_sigma_interpolates(ms):
    assert ms.sigma_to_t(torch.tensor([ms.sigma_max, ms.sigma_min])).tolist() == [999.0, 0.0]
    between = math.exp(0.3 * math.log(ms.sigmas[10]) + 0.7 * math.log(ms.sigmas[11]))
    assert ms.sigma_to_t(torch.tensor(between)).item() == 11.0
    assert ms.t_to_sigma(torch.tensor(10.7)).item() == pytest.approx(between, rel=1e-5)


def test_from_diffusers_config_reads_betas_and_prediction_type():
    ms = ModelSampling.from_config({"beta_schedule": "linear", "beta_start": 0.0001, "beta_end": 0.02,
                                    "prediction_type": "v_prediction"})
    assert ms.prediction_type == "v_prediction"
    assert ms.sigma_min == pytest.approx(math.sqrt(0.0001 / (1 - 0.0001)), rel=1e-4)


@pytest.mark.parametrize("name", SCHEDULERS)
@pytest.mark.parametrize("steps", [1, 3, 20, 33])
def test_every_schedule_has_steps_plus_one_descending_sigmas_ending_in_zero(ms, name, steps):
    sigmas = get_sigmas(name, steps, ms)
    extra = 1 if name == "ddim_uniform" and steps == 33 else 0  # 1000 // 33 = 30: 34 timesteps below 1000
    assert sigmas.shape == (steps + 1 + extra,)
    assert sigmas[-1] == 0
    assert torch.all(sigmas[1:] < sigmas[:-1])


def test_scheduler_names_are_comfyuis_nine_and_the_impact_packs_four():
    assert set(SCHEDULERS) == {"simple", "sgm_uniform", "karras", "exponential", "ddim_uniform", "beta", "normal",
                               "linear_quadratic", "kl_optimal", "AYS SDXL", "AYS SD1", "AYS SVD", "GITS[coeff=1.2]"}


def test_ddim_uniform_walks_to_the_top_with_one_extra_step_when_the_stride_leaves_room(ms):
    s = ms.sigmas
    # 1000 // 7 = 142: timesteps 1, 143, ..., 995 are 8 timesteps, so 7 steps give 8 sigmas and a 0.
    sigmas = get_sigmas("ddim_uniform", 7, ms)
    torch.testing.assert_close(sigmas, torch.cat([s[[995, 853, 711, 569, 427, 285, 143, 1]], torch.zeros(1)]))
    assert sigmas[0] > 14.2  # the top of the range, not sigma 6.57 at t = 853 - 142
    # 1000 // 4 = 250 leaves no room: exactly 4 timesteps.
    torch.testing.assert_close(get_sigmas("ddim_uniform", 4, ms), torch.stack([s[751], s[501], s[251], s[1], torch.tensor(0.0)]))


def test_linear_quadratic_rises_linearly_then_quadratically_to_full_noise(ms):
    # 4 steps: L = Q = 2, threshold 0.025: u = 0, 0.0125 (linear), then a*k^2 + b*k + c with a = 1.9/8,
    # b = 0.0125 - 0.95, c = 4a: u(2) = 0.025, u(3) = 0.275; levels 1 - u, then 0.
    expected = torch.tensor([1.0, 0.9875, 0.975, 0.725, 0.0]) * ms.sigma_max
    torch.testing.assert_close(get_sigmas("linear_quadratic", 4, ms), expected)
    torch.testing.assert_close(get_sigmas("linear_quadratic", 1, ms), torch.tensor([ms.sigma_max, 0.0]))


def test_kl_optimal_is_uniform_in_arctan_sigma(ms):
    smax, smin = ms.sigma_max, ms.sigma_min
    mid = math.tan((math.atan(smax) + math.atan(smin)) / 2)
    torch.testing.assert_close(get_sigmas("kl_optimal", 3, ms), torch.tensor([smax, mid, smin, 0.0]))
    torch.testing.assert_close(get_sigmas("kl_optimal", 1, ms), torch.tensor([smax, 0.0]))


AYS_SD1 = [14.6146412293, 6.4745760956, 3.8636745985, 2.6946151520, 1.8841921177, 1.3943805092, 0.9642583904,
           0.6523686016, 0.3977456272, 0.1515232662, 0.0291671582]


def test_align_your_steps_uses_nvidias_table_and_resamples_it_log_linearly(ms):
    torch.testing.assert_close(get_sigmas("AYS SD1", 10, ms), torch.tensor(AYS_SD1[:-1] + [0.0]))
    # 6 points on [0, 1] fall on every other table point.
    torch.testing.assert_close(get_sigmas("AYS SD1", 5, ms), torch.tensor(AYS_SD1[0:9:2] + [0.0]))
    # 21 points fall on the table points and the geometric means between them.
    twenty = get_sigmas("AYS SD1", 20, ms)
    torch.testing.assert_close(twenty[1], torch.tensor(math.sqrt(AYS_SD1[0] * AYS_SD1[1])))
    torch.testing.assert_close(twenty[2], torch.tensor(AYS_SD1[1]))
    assert get_sigmas("AYS SVD", 10, ms)[0] == 700.0
    assert get_sigmas("AYS SDXL", 10, ms)[3].item() == pytest.approx(2.1811480769)


def test_gits_uses_the_published_rows_up_to_20_steps_and_resamples_the_longest_beyond(ms):
    torch.testing.assert_close(get_sigmas("GITS[coeff=1.2]", 5, ms),
                               torch.tensor([14.61464119, 2.84484982, 1.24153244, 0.59516323, 0.25053367, 0.0]))
    row20 = get_sigmas("GITS[coeff=1.2]", 20, ms)
    forty = get_sigmas("GITS[coeff=1.2]", 40, ms)
    torch.testing.assert_close(forty[0:40:2], row20[:-1])
    torch.testing.assert_close(forty[1], (row20[0] * row20[1]).sqrt())
    # One step takes the last two entries of the 20-step row, as upstream's table lookup does.
    torch.testing.assert_close(get_sigmas("GITS[coeff=1.2]", 1, ms), torch.tensor([0.09824532, 0.0]))


def test_hand_derived_values(ms):
    s = ms.sigmas
    smax, smin = ms.sigma_max, ms.sigma_min
    torch.testing.assert_close(get_sigmas("normal", 4, ms), torch.stack([s[999], s[666], s[333], s[0], torch.tensor(0.0)]))
    mid = math.exp((math.log(s[499]) + math.log(s[500])) / 2)
    torch.testing.assert_close(get_sigmas("sgm_uniform", 2, ms), torch.tensor([smax, mid, 0.0]))
    torch.testing.assert_close(get_sigmas("simple", 4, ms), torch.stack([s[999], s[749], s[499], s[249], torch.tensor(0.0)]))
    torch.testing.assert_close(get_sigmas("ddim_uniform", 4, ms), torch.stack([s[751], s[501], s[251], s[1], torch.tensor(0.0)]))
    torch.testing.assert_close(get_sigmas("exponential", 3, ms), torch.tensor([smax, math.sqrt(smax * smin), smin, 0.0]))
    half = ((smax ** (1 / 7) + smin ** (1 / 7)) / 2) ** 7
    torch.testing.assert_close(get_sigmas("karras", 3, ms), torch.tensor([smax, half, smin, 0.0]))
    # Beta(0.6, 0.6) is symmetric: its median is 0.5, so t = rint(0.5 * 999) = 500 (half to even).
    torch.testing.assert_close(get_sigmas("beta", 2, ms), torch.stack([s[999], s[500], torch.tensor(0.0)]))


@pytest.mark.parametrize("sampler", ["dpm_2", "dpm_2_ancestral", "uni_pc", "uni_pc_bh2"])
def test_second_order_and_unipc_samplers_drop_the_penultimate_sigma(ms, sampler):
    full = get_sigmas("karras", 6, ms)
    ks = KSampler(lambda x, s: x, sampler, "karras", ms)
    torch.testing.assert_close(ks.sigmas(5), torch.cat([full[:-2], full[-1:]]))
    assert KSampler(lambda x, s: x, "euler", "karras", ms).sigmas(5).shape == (6,)


def test_steps_are_bounded_by_upstreams_maximum_and_samplers_that_drop_a_sigma_still_reach_it(ms):
    with pytest.raises(ValueError, match=r"steps must be an integer in \[1, 10000\], got 10001"):
        get_sigmas("karras", 10_001, ms)
    assert KSampler(lambda x, s: x, "dpm_2", "karras", ms).sigmas(10_000).shape == (10_001,)


def test_unknown_schedule_and_bad_steps_are_rejected(ms):
    with pytest.raises(ValueError, match="scheduler must be one of normal, karras"):
        get_sigmas("cosine", 10, ms)
    with pytest.raises(ValueError, match="steps must be an integer in \\[1,"):
        get_sigmas("karras", 0, ms)
