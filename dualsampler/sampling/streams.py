"""One seed per image, every random stream derived from it by name.

A job gives each batch element one seed (the runner's seed list). The initial noise and a sampler's noise are
drawn from that seed itself (bit-compatible with upstream's seeds); every other stream an image needs (the
upscaler's injected noise, MultiDiffusion's bootstrap backgrounds) draws from `stream_seed(seed, name, index)`,
so what an image gets depends on its own seed only, never on the batch it shares or its place in it. The second
seed of the regional route follows upstream's arithmetic on each element's seed (`dual/regional.second_seed`).
"""

from __future__ import annotations

import hashlib

from .noise import Seed

STREAM_SEED_BITS = 63  # stream seeds fit a signed 64-bit generator seed


def stream_seed(seed: int, name: str, index: int = 0) -> int:
    """The seed of draw `index` of the stream `name` of the element seeded `seed`: the first 8 bytes of
    BLAKE2b(`"<seed>/<name>/<index>"`) as an integer in [0, 2**63). Distinct names and indices give independent
    seeds; the same arguments give the same seed on every machine."""
    digest = hashlib.blake2b(f"{int(seed)}/{name}/{int(index)}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> (64 - STREAM_SEED_BITS)


def stream_seeds(seeds: Seed, name: str, index: int = 0) -> list[int]:
    """`stream_seed` of each element's seed (an int seed counts as one element)."""
    return [stream_seed(s, name, index) for s in ([seeds] if isinstance(seeds, int) else seeds)]
