"""A prompt as a network sees it (`Conditioning`), compared and stacked by value: what lets several denoisers share
one batched forward (SPEC §9)."""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from torch import Tensor


@dataclass(frozen=True, eq=False)
class Conditioning:
    """A prompt as the network sees it. `hidden` = encoder_hidden_states [B|1, L, D] (SD: CLIP states; SD3: the
    joint CLIP + T5 states; Flux: T5 states); `text_embeds` = pooled text embeddings [B|1, P] (SDXL's added
    `text_embeds`, SD3's and Flux's `pooled_projections`); `time_ids` [B|1, 6] (SDXL only: original size, crop
    corner, target size; None with `text_embeds` set: computed at each call from the latent's size,
    `(H*f, W*f, 0, 0, H*f, W*f)` with f the VAE factor); `guidance` [B|1] (Flux's distilled guidance value)."""

    hidden: Tensor
    text_embeds: Tensor | None = None
    time_ids: Tensor | None = None
    guidance: Tensor | None = None

    def tensors(self) -> tuple[Tensor | None, ...]:
        return tuple(getattr(self, f.name) for f in fields(self))

    def same_as(self, other: Conditioning) -> bool:
        """Equal tensors field by field (a repeated negative prompt is evaluated once)."""
        return all(same_tensor(a, b) for a, b in zip(self.tensors(), other.tensors()))

    def signature(self) -> tuple:
        """What must agree for conditionings to be stacked into one batch: shapes past the batch, added fields."""
        return tuple(None if t is None else tuple(t.shape[1:]) for t in self.tensors())


Cond = Conditioning | Tensor | None


def same_tensor(a: Tensor | None, b: Tensor | None) -> bool:
    """Both None, or the same values (shape, dtype and elements)."""
    if a is None or b is None:
        return a is b
    return a is b or (a.shape == b.shape and a.dtype == b.dtype and torch.equal(a, b.to(a.device)))


def same_cond(a: Cond, b: Cond) -> bool:
    """True when two conditionings are the same value."""
    if isinstance(a, Conditioning) and isinstance(b, Conditioning):
        return a.same_as(b)
    if isinstance(a, Conditioning) or isinstance(b, Conditioning):
        return False
    return same_tensor(a, b)


def cond_signature(cond: Cond) -> tuple:
    """The kind and shapes past the batch of a conditioning: equal signatures stack into one batch."""
    if cond is None:
        return ("none",)
    if isinstance(cond, Conditioning):
        return ("conditioning", cond.signature())
    return ("hidden" if cond.is_floating_point() else "labels", tuple(cond.shape[1:]))


def expand_cond(cond: Tensor, batch: int) -> Tensor:
    """A conditioning of batch 1 or `batch`, repeated to `batch`."""
    if cond.shape[0] not in (1, batch):
        raise ValueError(f"conditioning batch must be 1 or {batch}, got {cond.shape[0]}")
    return cond.expand(batch, *cond.shape[1:]) if cond.shape[0] == 1 else cond


def stack_rows(tensors: list[Tensor], batch: int, device: torch.device) -> Tensor:
    """Each tensor repeated to `batch` rows on `device`, concatenated in order."""
    return torch.cat([expand_cond(t.to(device), batch) for t in tensors])


def stack_conditionings(conds: list[Conditioning], batch: int, device: torch.device) -> Conditioning:
    """One Conditioning of `len(conds) * batch` rows: each field of each conditioning repeated to `batch` rows and
    concatenated in order (a field the first conditioning leaves None stays None)."""
    return Conditioning(*(None if getattr(conds[0], f.name) is None else
                          stack_rows([getattr(c, f.name) for c in conds], batch, device) for f in fields(Conditioning)))
