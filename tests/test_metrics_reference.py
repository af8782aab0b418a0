"""`fid/inception` / `kid/inception` against a reference set of real images: torch-fidelity's InceptionV3 loaded by its
own code from random weights written here (scripts/write_inception_weights.py), a folder of PNGs, the cache, the
statistics files and the refusals.

The tests marked `needs_vision` need the `vision` extra (torchvision + torch-fidelity: torch-fidelity imports
torchvision from its package __init__, and torchvision does not import with the CPU wheel torch 2.13.0); they run in
.ci/vision's venv, where DUALSAMPLER_REQUIRE_VISION=1 turns a missing extra into a failure instead of a skip.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dualsampler.metrics import reference
from dualsampler.metrics.fid import InceptionFeatures
from dualsampler.metrics.optional import vision_missing
from dualsampler.metrics.reference import (FEATURE_LAYER, IMPLEMENTATION, METRIC_KEYS, ReferenceSet, read_statistics,
                                           reference_fid_kid, write_statistics)
from dualsampler.world import PROMPTS, render_texture

ROOT = Path(__file__).resolve().parent.parent
SIDE = 32
MISSING = vision_missing()
needs_vision = pytest.mark.skipif(MISSING is not None and os.environ.get("DUALSAMPLER_REQUIRE_VISION") != "1",
                                  reason=f"needs the vision extra (torch 2.14.1 + torchvision 0.29.1, as "
                                         f"bash .ci/vision installs them): {MISSING}")


def load_script():
    spec = importlib.util.spec_from_file_location("write_inception_weights",
                                                  ROOT / "scripts" / "write_inception_weights.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def textures(count: int, shift: float = 0.0) -> torch.Tensor:
    """`count` textures [count, 3, SIDE, SIDE], brightened by `shift`, quantised to 8 bits as a PNG stores them."""
    images = torch.stack([render_texture(PROMPTS[i % len(PROMPTS)], SIDE, SIDE, seed=i) for i in range(count)])
    return ((images + shift).clamp(0, 1) * 255).round() / 255


def write_pngs(folder: Path, images: torch.Tensor) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for index, image in enumerate(images):
        pixels = (image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"real_{index:02d}.png")
    return folder


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> str:
    return str(load_script().write_inception_weights(tmp_path_factory.mktemp("weights") / "inception.pth", seed=0))


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return write_pngs(tmp_path_factory.mktemp("reference") / "images", textures(8))


def reference_set(folder: Path, weights: str, cache: Path, **settings) -> ReferenceSet:
    return ReferenceSet(str(folder), SIDE, SIDE, inception_weights=weights, cache_dir=str(cache), **settings)


def generated_features(reference_set: ReferenceSet, images: torch.Tensor) -> torch.Tensor:
    """As the evaluator does: the set's extractor per batch, features kept on the CPU."""
    extractor = reference_set.extractor("cpu")
    with torch.no_grad():
        return torch.cat([extractor(batch).cpu() for batch in images.split(4)])


@needs_vision
def test_a_set_scores_zero_against_itself_and_more_against_a_brighter_set(folder, weights, tmp_path):
    real = reference_set(folder, weights, tmp_path / "cache")
    features = real.features("cpu")
    assert features.shape == (8, 2048) and features.dtype == torch.float32
    itself, absent = reference_fid_kid(generated_features(real, textures(8)), features, kid_subsets=5,
                                       min_generated=2)
    brighter, _ = reference_fid_kid(generated_features(real, textures(8, shift=0.3)), features, kid_subsets=5,
                                    min_generated=2)
    assert absent == {} and set(itself) == set(brighter) == set(METRIC_KEYS)
    assert brighter["fid/inception"] > 0 and brighter["kid/inception"] > 0
    # The same images give the same features: FID is 0 up to the float64 eigenvalue round-off of a rank-7 covariance.
    assert abs(itself["fid/inception"]) < 1e-3 * brighter["fid/inception"]
    assert itself["kid/inception"] < brighter["kid/inception"]
    assert brighter["kid/inception_std"] >= 0


@needs_vision
def test_the_reference_features_are_computed_once_then_read_from_the_cache(folder, weights, tmp_path, monkeypatch):
    calls = []

    class Counting(InceptionFeatures):
        def forward(self, images):
            calls.append(images.shape[0])
            return super().forward(images)

    monkeypatch.setattr(reference, "InceptionFeatures", Counting)
    first = reference_set(folder, weights, tmp_path / "cache", batch_size=3)
    computed = first.features("cpu")
    assert calls == [3, 3, 2]
    assert first.cache_file.is_file() and first.cache_file.stem == first.describe()["set_fingerprint"]
    again = reference_set(folder, weights, tmp_path / "cache").features("cpu")
    assert calls == [3, 3, 2]  # a second job reads the cache: no extractor call, no model loaded
    assert torch.equal(again, computed)
    other_canvas = ReferenceSet(str(folder), 24, SIDE, inception_weights=weights, cache_dir=str(tmp_path / "cache"))
    assert other_canvas.describe()["set_fingerprint"] != first.describe()["set_fingerprint"]


@needs_vision
def test_describe_names_the_features_the_weights_and_the_set(folder, weights, tmp_path):
    described = reference_set(folder, weights, tmp_path / "cache").describe()
    assert described["implementation"] == IMPLEMENTATION and "torch-fidelity" in IMPLEMENTATION
    assert described["feature_layer"] == FEATURE_LAYER == "pool3 (2048)"
    assert described["weights_fingerprint"] == hashlib.sha256(Path(weights).read_bytes()).hexdigest()
    assert described["set_size"] == 8 and described["source"] == "folder" and described["image_size"] == [SIDE, SIDE]
    assert len(described["set_fingerprint"]) == 64
    renamed = write_pngs(tmp_path / "same_bytes", textures(8))
    assert reference_set(renamed, weights, tmp_path / "cache").describe()["set_fingerprint"] == \
        described["set_fingerprint"]  # the fingerprint is the files' bytes, not their folder
    one_changed = write_pngs(tmp_path / "one_changed", textures(8))
    write_pngs(tmp_path / "tmp", textures(9)[8:]).joinpath("real_00.png").replace(one_changed / "real_03.png")
    assert reference_set(one_changed, weights, tmp_path / "cache").describe()["set_fingerprint"] != \
        described["set_fingerprint"]


@needs_vision
@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_a_statistics_file_stands_for_its_images(folder, weights, tmp_path, suffix):
    images = reference_set(folder, weights, tmp_path / "cache")
    path = images.write_statistics(tmp_path / f"reference{suffix}")
    from_file = reference_set(path, weights, tmp_path / "unused_cache")
    assert torch.equal(from_file.features("cpu"), images.features("cpu"))
    assert from_file.describe()["source"] == "statistics"
    assert from_file.describe()["set_fingerprint"] == images.describe()["set_fingerprint"]
    assert not (tmp_path / "unused_cache").exists()


@needs_vision
def test_a_statistics_file_of_other_weights_is_refused(folder, weights, tmp_path):
    path = reference_set(folder, weights, tmp_path / "cache").write_statistics(tmp_path / "reference.safetensors")
    other = str(load_script().write_inception_weights(tmp_path / "other.pth", seed=1))
    with pytest.raises(ValueError, match=r"metrics.reference.*metrics.inception_weights.*not comparable"):
        reference_set(path, other, tmp_path / "cache").check()


@needs_vision
def test_the_random_weights_load_through_torch_fidelitys_own_loader(weights):
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    net = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=weights)
    ours = InceptionFeatures(weights).train()  # stays in evaluation mode
    assert not ours.training and not ours.net.training
    images = textures(2)
    (expected,) = net((images * 255).round().to(torch.uint8))
    with torch.no_grad():
        assert torch.equal(ours(images), expected)
    assert expected.std() > 0  # the random weights do not collapse the features


def test_a_missing_folder_is_refused_naming_the_key(tmp_path):
    with pytest.raises(ValueError, match=r"metrics.reference must be an existing folder of images"):
        ReferenceSet(str(tmp_path / "absent"), SIDE, SIDE).check()
    with pytest.raises(ValueError, match=r"metrics.reference must be a non-empty path"):
        ReferenceSet("", SIDE, SIDE)


def test_too_few_images_are_refused_before_any_model_loads(tmp_path):
    folder = write_pngs(tmp_path / "one", textures(1))
    with pytest.raises(ValueError, match=r"metrics.reference folder .* holds 1 image files.*at least 2"):
        ReferenceSet(str(folder), SIDE, SIDE, inception_weights=str(tmp_path / "absent.pth")).check()
    with pytest.raises(ValueError, match=r"holds 4 image files.*at least 5"):
        ReferenceSet(str(write_pngs(tmp_path / "four", textures(4))), SIDE, SIDE, min_images=5).check()


def test_missing_weights_are_refused_naming_the_key(tmp_path):
    folder = write_pngs(tmp_path / "images", textures(2))
    with pytest.raises(ValueError, match=r"weights at .*absent.pth \(metrics.inception_weights; no downloads"):
        ReferenceSet(str(folder), SIDE, SIDE, inception_weights=str(tmp_path / "absent.pth"),
                     cache_dir=str(tmp_path / "cache")).check()


def test_a_cache_folder_that_cannot_be_created_is_refused_naming_the_key(tmp_path):
    folder = write_pngs(tmp_path / "images", textures(2))
    (tmp_path / "a_file").write_text("not a folder")
    with pytest.raises(ValueError, match=r"metrics.reference_cache: cannot create .*a_file/cache"):
        ReferenceSet(str(folder), SIDE, SIDE, cache_dir=str(tmp_path / "a_file" / "cache")).check()


def test_an_unreadable_image_or_statistics_file_is_refused(tmp_path):
    folder = write_pngs(tmp_path / "images", textures(2))
    (folder / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"metrics.reference: .*broken.png.* not a readable image"):
        ReferenceSet(str(folder), SIDE, SIDE).check()
    (tmp_path / "stats.pt").write_bytes(b"not a statistics file")
    with pytest.raises(ValueError, match=r"metrics.reference: .*stats.pt.* not a readable statistics file"):
        ReferenceSet(str(tmp_path / "stats.pt"), SIDE, SIDE).check()


def test_statistics_files_keep_features_and_metadata(tmp_path):
    features = torch.randn(5, 2048)
    metadata = {"format": reference.FORMAT, "implementation": IMPLEMENTATION, "feature_layer": FEATURE_LAYER,
                "weights_fingerprint": "ab" * 32, "set_size": "5", "set_fingerprint": "cd" * 32, "height": "32",
                "width": "32"}
    for suffix in (".safetensors", ".pt"):
        read, read_metadata = read_statistics(write_statistics(tmp_path / f"s{suffix}", features, metadata))
        assert torch.equal(read, features) and read_metadata == metadata
    with pytest.raises(ValueError, match=r"holds features of shape \(5, 2048\), its metadata says 6"):
        read_statistics(write_statistics(tmp_path / "wrong.pt", features, {**metadata, "set_size": "6"}))


def test_fid_of_a_shifted_copy_is_the_squared_shift_and_kid_has_a_spread():
    torch.manual_seed(0)
    real = torch.randn(200, 16, dtype=torch.float64)
    values, absent = reference_fid_kid(real + 0.5, real, kid_subsets=20, kid_subset_size=50)
    # Same covariance, means 0.5 apart in each of 16 dimensions: FID = 16 * 0.5^2 = 4 exactly.
    assert absent == {} and values["fid/inception"] == pytest.approx(4.0, abs=1e-6)
    assert values["kid/inception"] > 0 and values["kid/inception_std"] > 0


def test_below_the_minimum_of_generated_images_the_metrics_are_absent_with_the_reason():
    values, absent = reference_fid_kid(torch.randn(49, 2048), torch.randn(60, 2048))
    assert values == {} and set(absent) == set(METRIC_KEYS)
    assert "49 generated images, fewer than metrics.reference_min_generated = 50" in absent["fid/inception"]
    assert "rank-deficient below 2049 images" in absent["kid/inception_std"]
    values, absent = reference_fid_kid(torch.randn(49, 2048), torch.randn(60, 2048), kid_subsets=2, min_generated=40)
    assert set(values) == set(METRIC_KEYS) and absent == {}


def test_bad_settings_are_refused_before_any_work():
    features = torch.randn(60, 8)
    with pytest.raises(ValueError, match=r"metrics.reference_min_generated must be an integer >= 2, got 1"):
        reference_fid_kid(features, features, min_generated=1)
    with pytest.raises(ValueError, match=r"subsets must be an integer"):
        reference_fid_kid(features, features, kid_subsets=0)
    with pytest.raises(ValueError, match=r"one width, got 8 and 4"):
        reference_fid_kid(features, features[:, :4])
    with pytest.raises(ValueError, match=r"metrics.reference_min_images must be an integer >= 2, got 1"):
        ReferenceSet("images", SIDE, SIDE, min_images=1)
