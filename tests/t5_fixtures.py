"""A hand-written tiny T5 tokenizer (a Unigram vocabulary of the world's prompt words, single letters as fallback)
and a tiny random T5 encoder, for the tiny SD3 and Flux folders. Nothing is downloaded; torch and transformers are
imported where used (conftest imports the fixture modules that import this one)."""

from __future__ import annotations

import string
from pathlib import Path

T5_WIDTH = 32
# The special pieces at T5's ids: <pad> 0, </s> 1, <unk> 2.
T5_SPECIALS = ("<pad>", "</s>", "<unk>")
T5_WORDS = ("red", "orange", "yellow", "green", "blue", "purple",
            "stripes", "dots", "checker", "waves", "grid", "blobs", "and", "a", "photo", "of")


def t5_vocabulary() -> list[tuple[str, float]]:
    """(piece, log-probability) of the Unigram model: the specials, the word-start marker, whole words (likelier
    than any spelling of them), then every letter and digit word-initial and word-internal."""
    chars = string.ascii_lowercase + string.digits
    return ([(piece, 0.0) for piece in T5_SPECIALS] + [("\u2581", -2.0)]
            + [("\u2581" + word, -1.0) for word in T5_WORDS]
            + [("\u2581" + c, -5.0) for c in chars] + [(c, -6.0) for c in chars])


def write_t5_tokenizer(folder: Path) -> int:
    """Save the tiny T5 tokenizer to `folder` (`tokenizer.json` and its configs, no sentinel ids; it reloads with
    `T5TokenizerFast.from_pretrained(folder)` or `AutoTokenizer`); returns the vocabulary size."""
    from transformers import T5Tokenizer

    vocab = t5_vocabulary()
    tokenizer = T5Tokenizer(vocab=vocab, extra_ids=0, model_max_length=512)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(folder)
    return len(vocab)


def tiny_t5_encoder(vocab: int, layers: int = 2):
    """A random `T5EncoderModel` of width `T5_WIDTH` over `vocab` ids, in eval mode."""
    from transformers import T5Config, T5EncoderModel

    config = T5Config(
        vocab_size=vocab, d_model=T5_WIDTH, d_kv=8, d_ff=37, num_layers=layers, num_heads=4,
        relative_attention_num_buckets=8, relative_attention_max_distance=32, dropout_rate=0.0,
        feed_forward_proj="gated-gelu", is_encoder_decoder=False, use_cache=False,
        pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
    )
    return T5EncoderModel(config).eval()
