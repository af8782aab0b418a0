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
@pytest.mark.parametrize("steps", [1, 3, 20])
def test_every_schedule_has_steps_plus_one_descending_sigmas_ending_in_zero(ms, name, steps):
    sigmas = get_sigmas(name, steps, ms)
    assert sigmas.shape == (steps + 1,)
    assert sigmas[-1] == 0
    assert torch.all(sigmas[1:] < sigmas[:-1])


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


def test_unknown_schedule_and_bad_steps_are_rejected(ms):
    with pytest.raises(ValueError, match="scheduler must be one of normal, karras"):
        get_sigmas("cosine", 10, ms)
    with pytest.raises(ValueError, match="steps must be an integer >= 1"):
        get_sigmas("karras", 0, ms)
