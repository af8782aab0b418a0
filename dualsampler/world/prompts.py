"""Vocabulary of the tiny world: prompts are "<color> <pattern>", "" is the unconditional prompt."""
from __future__ import annotations

COLORS: tuple[str, ...] = ("red", "orange", "yellow", "green", "blue", "purple")
PATTERNS: tuple[str, ...] = ("stripes", "dots", "checker", "waves", "grid", "blobs")
PROMPTS: tuple[str, ...] = tuple(f"{c} {p}" for c in COLORS for p in PATTERNS)


def split_prompt(
    prompt: str,
    colors: tuple[str, ...] | list[str] = COLORS,
    patterns: tuple[str, ...] | list[str] = PATTERNS,
    allow_partial: bool = False,
) -> tuple[str, str]:
    """Split a prompt into (color, pattern) over the given vocabulary; a missing word is "".

    With `allow_partial` the prompt may name only a color, only a pattern, or nothing ("").
    Raises ValueError listing the vocabulary for an unknown word, a repeated slot or a
    missing word.
    """
    if not isinstance(prompt, str):
        raise ValueError(f"prompt must be a str, got {type(prompt).__name__}")
    vocabulary = f"colors {list(colors)}, patterns {list(patterns)}"
    color, pattern = "", ""
    for word in prompt.lower().split():
        if word in colors and not color:
            color = word
        elif word in patterns and not pattern:
            pattern = word
        else:
            raise ValueError(
                f"prompt {prompt!r}: word {word!r} is unknown or repeated; "
                f"a prompt is '<color> <pattern>' with {vocabulary}"
            )
    if not allow_partial and not (color and pattern):
        raise ValueError(
            f"prompt {prompt!r} must name one color and one pattern ('<color> <pattern>') with {vocabulary}"
        )
    return color, pattern


def parse_prompt(prompt: str, allow_partial: bool = False) -> tuple[str, str]:
    """`parse_prompt("red stripes") -> ("red", "stripes")`; ValueError listing the vocabulary otherwise."""
    return split_prompt(prompt, COLORS, PATTERNS, allow_partial=allow_partial)
