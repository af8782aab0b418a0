"""Write random-weight InceptionV3 weights in the format torch-fidelity's loader reads, for tests and dry runs.

The file is a `torch.save`d state dict of torch-fidelity's `FeatureExtractorInceptionV3` (the format of its released
`weights-inception-2015-12-05-*.pth`, which it reads with `torch.load` and a strict `load_state_dict`), so the real
loading code runs on it; only the values are random (He-normal convolutions, seeded). Features from these weights
are not the literature's: FIDs computed with them compare nothing but the code path.

    python scripts/write_inception_weights.py PATH [--seed N]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import torch
from torch import nn


def random_inception_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """A state dict for torch-fidelity's FeatureExtractorInceptionV3: He-normal convolutions drawn from `seed`,
    batch norm as identity (weight 1, bias 0, running mean 0, variance 1), a normal fc layer."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    class Unloaded(FeatureExtractorInceptionV3):
        """The architecture without loading weights: torch-fidelity's constructor loads whatever file it is given."""

        def load_state_dict(self, state_dict, strict=True, assign=False):  # noqa: ARG002 (the placeholder file)
            return None

    with tempfile.TemporaryDirectory() as folder:
        placeholder = os.path.join(folder, "placeholder.pth")
        torch.save({}, placeholder)
        net = Unloaded("inception-v3-compat", ["2048"], feature_extractor_weights_path=placeholder)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, nn.Conv2d):
                fan_in = module.weight[0].numel()
                module.weight.copy_(torch.randn(module.weight.shape, generator=generator) * (2.0 / fan_in) ** 0.5)
            elif isinstance(module, nn.Linear):
                module.weight.copy_(torch.randn(module.weight.shape, generator=generator) / module.in_features ** 0.5)
                module.bias.zero_()
    return {key: value.clone() for key, value in net.state_dict().items()}


def write_inception_weights(path: str | Path, seed: int = 0) -> Path:
    """Write `random_inception_state(seed)` to `path` (folders created) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(random_inception_state(seed), path)
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", help="the weights file to write (e.g. the file metrics.inception_weights names)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights (default 0)")
    args = parser.parse_args(argv)
    print(write_inception_weights(args.path, args.seed))


if __name__ == "__main__":
    main()
