"""`fid/inception` and `kid/inception`: FID/KID of generated images against a reference set of real images, in the
features the FID literature uses.

Features: torch-fidelity's `FeatureExtractorInceptionV3`, output '2048' (the pool3 average pool, 2048-d), fed uint8
images that it resizes to 299x299 with its TF1.x-compatible bilinear resize (no antialiasing). Its weights are the
TensorFlow 'inception-2015-12-05' graph converted to PyTorch: the network of the original FID code (TTUR, Heusel et
al. 2017), whose FID/KID torch-fidelity reproduces up to float error. clean-fid's `legacy_tensorflow` mode runs the
same 2015-12-05 network (NVIDIA's TorchScript conversion of it) with the resize likewise inside the network, so the
two agree to float error, not bit for bit; clean-fid's default `clean` mode differs (PIL's antialiased bicubic
resize to 299 first). torchmetrics' own `FrechetInceptionDistance(feature=2048)` is not used for the features: it resizes
with antialiasing by default (torchmetrics 1.9), which moves the values away from the literature's. The FID/KID
math is torchmetrics' (`FrechetInceptionDistance`, and `fid.KernelDistance`: torchmetrics' KID with seeded subsets),
fed these features through a pass-through feature module.

The weights come from a local file (`metrics.inception_weights`, default the file torch-fidelity caches in torch
hub's checkpoints folder); nothing is downloaded: a missing file is refused before torch-fidelity, which downloads
when it is given no path, is called.

A reference set (`metrics.reference`) is a folder of images (.png .jpg .jpeg .webp, not recursive, each fitted to
the job's canvas as input images are: `runner.inputs.load_image`), or a statistics file `write_statistics` wrote
(.safetensors or .pt: the features [N, 2048] and their metadata). A folder's features are cached in `cache_dir`
under the set's fingerprint (sha256 over the files' bytes, the weights' sha256 and the canvas), as a statistics
file, so a later job with the same set, weights and canvas reads them instead of recomputing them.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch
from torch import Tensor, nn
from torchmetrics.image.fid import FrechetInceptionDistance

from dualsampler.masks import check_side
from dualsampler.metrics.fid import InceptionFeatures, KernelDistance, check_kid_settings
from dualsampler.metrics.optional import inception_weights as locate_inception_weights
from dualsampler.runner.inputs import SUFFIXES, load_image
from dualsampler.validation import check_bounded, check_device, check_int, check_text

IMPLEMENTATION = ("torch-fidelity FeatureExtractorInceptionV3 '2048' (TF inception-2015-12-05 weights, TF1 bilinear "
                  "resize to 299, uint8 input); FID/KID math: torchmetrics")
FEATURE_LAYER = "pool3 (2048)"
NUM_FEATURES = 2048
FORMAT = "dualsampler.reference.v1"
STATISTICS_SUFFIXES = (".safetensors", ".pt")
DEFAULT_CACHE = "~/.cache/dualsampler/reference"
MIN_REFERENCE = 2  # a covariance needs two samples
# FID's 2048x2048 covariance is rank-deficient below 2049 samples and FID is biased upwards at small N (its bias
# falls roughly as 1/N), so small-N values compare only runs of the same N. 50 images keep a job's figure from
# being noise while letting a short sweep report one; raise `min_generated` for results meant for publication.
MIN_GENERATED = 50
METRIC_KEYS = ("fid/inception", "kid/inception", "kid/inception_std")
_METADATA_KEYS = ("format", "implementation", "feature_layer", "weights_fingerprint", "set_size", "set_fingerprint",
                  "height", "width")


def file_sha256(path: str | Path, name: str) -> str:
    """sha256 hex digest of the file `path`; ValueError naming `name` and the file when it cannot be read."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError as error:
        raise ValueError(f"{name}: {str(path)!r} cannot be read: {error}") from None
    return digest.hexdigest()


def set_fingerprint(file_digests: list[str], weights_fingerprint: str, height: int, width: int) -> str:
    """sha256 over the images' digests (in order), the weights' digest, the canvas and this module's format."""
    digest = hashlib.sha256(f"{FORMAT}|{weights_fingerprint}|{height}x{width}".encode())
    for file_digest in file_digests:
        digest.update(bytes.fromhex(file_digest))
    return digest.hexdigest()


def write_statistics(path: str | Path, features: Tensor, metadata: dict[str, str]) -> Path:
    """Write `features` [N, 2048] and `metadata` (the `_METADATA_KEYS`, strings) to `path` (.safetensors or .pt),
    atomically (a temporary file, then a rename)."""
    path = Path(path)
    if path.suffix not in STATISTICS_SUFFIXES:
        raise ValueError(f"a statistics file must end in one of {STATISTICS_SUFFIXES}, got {str(path)!r}")
    missing = [key for key in _METADATA_KEYS if key not in metadata]
    if missing:
        raise ValueError(f"metadata lacks {missing}")
    path.parent.mkdir(parents=True, exist_ok=True)
    features = features.detach().to("cpu", torch.float32).contiguous()
    metadata = {key: str(value) for key, value in metadata.items()}
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file({"features": features}, str(temporary), metadata=metadata)
    else:
        torch.save({"features": features, "metadata": metadata}, temporary)
    os.replace(temporary, path)
    return path


def read_statistics(path: str | Path, name: str = "metrics.reference") -> tuple[Tensor, dict[str, str]]:
    """A statistics file -> (features [N, 2048] float32, metadata); ValueError naming `name` and the file when it is
    unreadable, not this module's format, or its features do not match its metadata."""
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as handle:
                metadata = dict(handle.metadata() or {})
                features = handle.get_tensor("features")
        else:
            content = torch.load(path, map_location="cpu", weights_only=True)
            metadata, features = dict(content["metadata"]), content["features"]
    except Exception as error:  # safetensors, pickle and key errors all mean "not a statistics file"
        raise ValueError(f"{name}: {str(path)!r} is not a readable statistics file ({type(error).__name__}: "
                         f"{error})") from None
    if metadata.get("format") != FORMAT or any(key not in metadata for key in _METADATA_KEYS):
        raise ValueError(f"{name}: {str(path)!r} is not a statistics file of format {FORMAT} (metadata keys "
                         f"{sorted(metadata)})")
    if not isinstance(features, Tensor) or tuple(features.shape) != (int(metadata["set_size"]), NUM_FEATURES):
        shape = tuple(features.shape) if isinstance(features, Tensor) else type(features).__name__
        raise ValueError(f"{name}: {str(path)!r} holds features of shape {shape}, its metadata says "
                         f"{metadata['set_size']} x {NUM_FEATURES}")
    return features.float(), metadata


def image_files(path: Path, minimum: int) -> list[Path]:
    """The image files in the folder `path` (SUFFIXES, any case, sorted by name, not recursive); ValueError naming
    metrics.reference when it cannot be listed or holds fewer than `minimum`."""
    try:
        files = sorted((p for p in path.iterdir() if p.suffix.lower() in SUFFIXES and p.is_file()),
                       key=lambda p: p.name)
    except OSError as error:
        raise ValueError(f"metrics.reference folder {str(path)!r} cannot be listed: {error}") from None
    if len(files) < minimum:
        raise ValueError(f"metrics.reference folder {str(path)!r} holds {len(files)} image files "
                         f"({' '.join(SUFFIXES)}); a reference set needs at least {minimum}")
    return files


class ReferenceSet:
    """The reference set of `fid/inception` / `kid/inception`: a folder of images fitted to `height` x `width`, or
    a statistics file. `check()` refuses bad input before any model loads; `features(device)` gives [N, 2048]
    (computed once per set, weights and canvas, then read from `cache_dir`); `extractor(device)` is the loaded
    InceptionV3 to extract the generated images' features with."""

    def __init__(self, path: str, height: int, width: int, *, inception_weights: str | None = None,
                 cache_dir: str | None = None, min_images: int = MIN_REFERENCE, batch_size: int = 32) -> None:
        if not check_text(path, "metrics.reference"):
            raise ValueError("metrics.reference must be a non-empty path (a folder of images or a statistics file)")
        self.path = Path(path).expanduser()
        self.height, self.width = check_side(height, "height"), check_side(width, "width")
        self.weights_path = inception_weights
        self.cache_dir = Path(check_text(cache_dir, "metrics.reference_cache") if cache_dir is not None
                              else DEFAULT_CACHE).expanduser()
        self.min_images = check_int(min_images, "metrics.reference_min_images", MIN_REFERENCE)
        self.batch_size = int(check_bounded(batch_size, "batch_size"))
        self._checked: dict | None = None
        self._extractor: InceptionFeatures | None = None

    def check(self) -> None:
        """Refuse, before any model loads: a reference that is neither a folder of images nor a statistics file, an
        unreadable file, fewer than `min_images` images (ValueError naming metrics.reference), missing weights
        (ValueError naming metrics.inception_weights), a statistics file of other weights, a cache folder that
        cannot be written (metrics.reference_cache), a missing `vision` extra (ImportError naming the install
        command). Reads every file once; later calls return at once."""
        if self._checked is not None:
            return
        if self.path.is_dir():
            files = image_files(self.path, self.min_images)
            for file in files:
                _check_header(file)
            digests = [file_sha256(file, "metrics.reference") for file in files]
            self._check_cache_dir()
            weights = self._weights_fingerprint()
            self._checked = {"source": "folder", "files": files, "weights_fingerprint": weights,
                             "set_fingerprint": set_fingerprint(digests, weights, self.height, self.width)}
            return
        if self.path.is_file() and self.path.suffix in STATISTICS_SUFFIXES:
            features, metadata = read_statistics(self.path)
            if features.shape[0] < self.min_images:
                raise ValueError(f"metrics.reference: {str(self.path)!r} holds the features of {features.shape[0]} "
                                 f"images; a reference set needs at least {self.min_images}")
            weights = self._weights_fingerprint()
            if metadata["weights_fingerprint"] != weights:
                raise ValueError(f"metrics.reference: {str(self.path)!r} was computed with InceptionV3 weights "
                                 f"sha256 {metadata['weights_fingerprint'][:16]}..., but metrics.inception_weights "
                                 f"has sha256 {weights[:16]}...: features of different weights are not comparable")
            self._checked = {"source": "statistics", "features": features, "weights_fingerprint": weights,
                             "set_fingerprint": metadata["set_fingerprint"],
                             "height": int(metadata["height"]), "width": int(metadata["width"])}
            return
        raise ValueError(f"metrics.reference must be an existing folder of images ({' '.join(SUFFIXES)}) or a "
                         f"statistics file ({' '.join(STATISTICS_SUFFIXES)}) written by "
                         f"dualsampler.metrics.reference.write_statistics, got {str(self.path)!r}")

    def _check_cache_dir(self) -> None:
        try:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ValueError(f"metrics.reference_cache: cannot create {str(self.cache_dir)!r}: {error}") from None
        if not os.access(self.cache_dir, os.W_OK):
            raise ValueError(f"metrics.reference_cache: {str(self.cache_dir)!r} is not writable")

    def _weights_fingerprint(self) -> str:
        try:
            self.weights_path = locate_inception_weights(self.weights_path)
        except FileNotFoundError as error:
            raise ValueError(str(error)) from None
        return file_sha256(self.weights_path, "metrics.inception_weights")

    def extractor(self, device: str | torch.device = "cpu") -> InceptionFeatures:
        """The InceptionV3 feature module on `device` (loaded once, after `check()`); call it per batch of float
        images [B, 3, H, W] in [0, 1] under torch.no_grad() -> [B, 2048]."""
        self.check()
        device = check_device(device)
        if self._extractor is None:
            self._extractor = InceptionFeatures(self.weights_path)
        return self._extractor.to(device)

    @property
    def cache_file(self) -> Path:
        """Where a folder's features are cached (after `check()`)."""
        self.check()
        return self.cache_dir / f"{self._checked['set_fingerprint']}.safetensors"

    def features(self, device: str | torch.device = "cpu") -> Tensor:
        """The reference features [N, 2048] float32 on the CPU: the statistics file's, the cache's, or computed on
        `device` in batches of `batch_size` and then cached."""
        self.check()
        if self._checked["source"] == "statistics":
            return self._checked["features"]
        cache = self.cache_file
        if cache.is_file():
            try:
                features, metadata = read_statistics(cache, "metrics.reference_cache")
            except ValueError:
                features, metadata = None, {}
            if metadata.get("set_fingerprint") == self._checked["set_fingerprint"]:
                return features
        features = self._compute(device)
        try:
            write_statistics(cache, features, self._metadata(features.shape[0]))
        except OSError as error:
            raise ValueError(f"metrics.reference_cache: cannot write {str(cache)!r}: {error}") from None
        return features

    def _compute(self, device: str | torch.device) -> Tensor:
        extractor = self.extractor(device)
        files = self._checked["files"]
        parts = []
        with torch.no_grad():
            for start in range(0, len(files), self.batch_size):
                batch = [_load(file, self.height, self.width) for file in files[start : start + self.batch_size]]
                parts.append(extractor(torch.stack(batch).to(check_device(device))).float().cpu())
        return torch.cat(parts)

    def write_statistics(self, path: str | Path, device: str | torch.device = "cpu") -> Path:
        """Write this set's features and metadata to `path` (.safetensors or .pt): a reference another job reads
        without the images."""
        features = self.features(device)
        return write_statistics(path, features, self._metadata(features.shape[0]))

    def _metadata(self, size: int) -> dict[str, str]:
        height, width = self._canvas()
        return {"format": FORMAT, "implementation": IMPLEMENTATION, "feature_layer": FEATURE_LAYER,
                "weights_fingerprint": self._checked["weights_fingerprint"], "set_size": str(size),
                "set_fingerprint": self._checked["set_fingerprint"], "height": str(height), "width": str(width)}

    def _canvas(self) -> tuple[int, int]:
        return self._checked.get("height", self.height), self._checked.get("width", self.width)

    @property
    def statistics_file(self) -> Path:
        """The statistics file the set's features are read from: the file given, or a folder's cache file (written
        by the first `features()`)."""
        self.check()
        return self.path if self._checked["source"] == "statistics" else self.cache_file

    def describe(self) -> dict:
        """For result.json: implementation, feature layer, weights and set fingerprints (sha256), set size, the
        canvas the reference images were fitted to, where the set came from and its `statistics` file (what the
        job's tracker logs as an artifact)."""
        self.check()
        size = (len(self._checked["files"]) if self._checked["source"] == "folder"
                else int(self._checked["features"].shape[0]))
        height, width = self._canvas()
        return {"implementation": IMPLEMENTATION, "feature_layer": FEATURE_LAYER,
                "weights_fingerprint": self._checked["weights_fingerprint"], "set_size": size,
                "set_fingerprint": self._checked["set_fingerprint"], "source": self._checked["source"],
                "path": str(self.path), "image_size": [height, width], "statistics": str(self.statistics_file)}


def _check_header(file: Path) -> None:
    """ValueError naming metrics.reference and `file` when its header is not a readable image."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(file):
            pass
    except (OSError, SyntaxError, ValueError, UnidentifiedImageError, Image.DecompressionBombError) as error:
        raise ValueError(f"metrics.reference: {str(file)!r} is not a readable image file: {error}") from None


def _load(file: Path, height: int, width: int) -> Tensor:
    try:
        return load_image(file, height, width)
    except ValueError as error:
        raise ValueError(f"metrics.reference: {error}") from None


class PassThrough(nn.Module):
    """A feature module that returns its input: feeds ready features to torchmetrics' FID/KID."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features

    def forward(self, features: Tensor) -> Tensor:
        return features


def reference_fid_kid(generated: Tensor, reference: Tensor, kid_subsets: int = 100, kid_subset_size: int = 1000,
                      min_generated: int = MIN_GENERATED, seed: int = 0) -> tuple[dict[str, float], dict[str, str]]:
    """(values, absent): `fid/inception`, `kid/inception` (mean over subsets) and `kid/inception_std` of the
    generated features [N, D] against the reference features [M, D], by torchmetrics' FID and KID. With fewer than
    `min_generated` generated images all three are absent, each with the reason."""
    check_kid_settings(kid_subsets, kid_subset_size)
    min_generated = check_int(min_generated, "metrics.reference_min_generated", 2)
    for tensor, name in ((generated, "generated"), (reference, "reference")):
        if not isinstance(tensor, Tensor) or tensor.dim() != 2:
            raise ValueError(f"{name} must be a features tensor [N, D], got "
                             f"{tuple(tensor.shape) if isinstance(tensor, Tensor) else type(tensor).__name__}")
    if generated.shape[1] != reference.shape[1]:
        raise ValueError(f"generated and reference features must have one width, got {generated.shape[1]} and "
                         f"{reference.shape[1]}")
    if reference.shape[0] < MIN_REFERENCE:
        raise ValueError(f"reference must hold at least {MIN_REFERENCE} feature rows, got {reference.shape[0]}")
    count = generated.shape[0]
    if count < min_generated:
        reason = (f"{count} generated images, fewer than metrics.reference_min_generated = {min_generated} (FID's "
                  f"covariance of {generated.shape[1]} features is rank-deficient below {generated.shape[1] + 1} "
                  "images and biased at small N)")
        return {}, {key: reason for key in METRIC_KEYS}
    generated, reference = generated.detach().cpu().double(), reference.detach().cpu().double()
    fid = FrechetInceptionDistance(feature=PassThrough(generated.shape[1]))
    fid.update(reference, real=True)
    fid.update(generated, real=False)
    kid = KernelDistance(PassThrough(generated.shape[1]), subsets=kid_subsets, subset_size=kid_subset_size, seed=seed)
    kid.update(reference, real=True)
    kid.update(generated, real=False)
    mean, std = kid.compute()
    return {"fid/inception": float(fid.compute()), "kid/inception": float(mean), "kid/inception_std": float(std)}, {}
