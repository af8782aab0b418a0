"""A tiny random-weight CLIP saved as a local folder (CLIPModel + CLIPProcessor, the hand-written tokenizer of
sd_fixtures), built here: nothing is downloaded. Its images are 32 px (shorter side resized to 32, centre crop 32)."""

from __future__ import annotations

from pathlib import Path

import pytest

CLIP_SIDE = 32


def write_tiny_clip(folder: Path, seed: int = 0) -> Path:
    """Save a seeded random CLIP (8-dim embeddings, 32 px images in 8 px patches) and its processor in `folder`."""
    import torch
    from transformers import (
        CLIPConfig,
        CLIPImageProcessor,
        CLIPModel,
        CLIPProcessor,
        CLIPTextConfig,
        CLIPTokenizer,
        CLIPVisionConfig,
    )

    from sd_fixtures import write_tokenizer

    vocab = write_tokenizer(folder)
    torch.manual_seed(seed)
    text = CLIPTextConfig(vocab_size=vocab, hidden_size=16, intermediate_size=24, num_hidden_layers=1,
                          num_attention_heads=2, max_position_embeddings=77, projection_dim=8,
                          bos_token_id=vocab - 2, eos_token_id=vocab - 1, pad_token_id=vocab - 1)
    vision = CLIPVisionConfig(hidden_size=16, intermediate_size=24, num_hidden_layers=1, num_attention_heads=2,
                              image_size=CLIP_SIDE, patch_size=8, projection_dim=8)
    config = CLIPConfig(text_config=text.to_dict(), vision_config=vision.to_dict(), projection_dim=8)
    CLIPModel(config).save_pretrained(folder)
    images = CLIPImageProcessor(size={"shortest_edge": CLIP_SIDE}, crop_size={"height": CLIP_SIDE, "width": CLIP_SIDE})
    CLIPProcessor(images, CLIPTokenizer.from_pretrained(folder)).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory) -> Path:
    """A tiny random CLIP folder, built once per test module; tests treat it as read-only."""
    return write_tiny_clip(tmp_path_factory.mktemp("clip") / "clip")
