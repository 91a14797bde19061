"""Batched forward passes over token-id lists, shared by generation, feedback scoring, judging and likelihood scoring.

Rows are batched longest first (`batch_plan`) and left-padded (`left_pad`): the attention mask is 0 on padding and
each row's position ids count from its first real token, so a row's result does not depend on its batch (up to float
rounding). `forward` runs a model on such a batch without autograd; `token_logprobs` reads the log-probabilities of
given tokens from its logits.

Rows that begin alike (few-shot prefix, judge instructions) can share that beginning: `forward_shared` runs the
rows' longest common token prefix once, as one row, repeats its KV cache over the rows, and runs each row's rest
laid out as [shared prefix][padding][rest], the mask 0 on the padding and the position ids continuing from the
prefix over real tokens only, so each row still sees exactly its own tokens at their own positions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Batch:
    """Model inputs of one batch: `input_ids`, `attention_mask` and `position_ids`, each (rows, width), int64."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    position_ids: torch.Tensor


def batch_plan(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Row indices, longest first (ties by index), cut into batches; fixed by the lengths alone so a resumed run
    re-forms the same batches."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def left_pad(rows: Sequence[Sequence[int]], pad_id: int, device: torch.device | str | None = None) -> Batch:
    """Token-id lists left-padded with `pad_id` to the longest; the mask is 1 on real tokens, and the position ids
    count from each row's first real token (0 on padding)."""
    width = max(len(row) for row in rows)
    input_ids = torch.tensor([[pad_id] * (width - len(row)) + list(row) for row in rows], device=device)
    attention_mask = torch.tensor([[0] * (width - len(row)) + [1] * len(row) for row in rows], device=device)
    return Batch(input_ids, attention_mask, (attention_mask.cumsum(-1) - 1).clamp(min=0))


def common_prefix(rows: Sequence[Sequence[int]]) -> int:
    """Length of the longest token prefix all rows share."""
    shortest = min(len(row) for row in rows)
    for k in range(shortest):
        token = rows[0][k]
        if any(row[k] != token for row in rows):
            return k
    return shortest


def forward(model, batch: Batch, **kwargs):
    """`model(input_ids, attention_mask, position_ids, **kwargs)` under `torch.inference_mode()`; the model's
    output (its `.logits`, and its cache with `use_cache=True`)."""
    with torch.inference_mode():
        return model(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                     position_ids=batch.position_ids, **kwargs)


def token_logprobs(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """log P(tokens[r, k]) under `logits[r, k]` (natural log, softmax over the vocabulary in float32): shape of
    `tokens`, which is that of `logits` without its last (vocabulary) dimension."""
    return torch.log_softmax(logits.float(), dim=-1).gather(-1, tokens[..., None]).squeeze(-1)


MIN_SHARED = 16  # a common prefix shorter than this is not worth a separate pass


def forward_shared(model, rows: Sequence[Sequence[int]], pad_id: int, device: torch.device | str | None = None,
                   keep: int = 1, min_shared: float = MIN_SHARED, **kwargs):
    """The rows' logits, running their common prefix once: returns `(output, batch)` where `output.logits` covers
    only each row's rest (left-padded to the longest rest, `batch.input_ids`), `batch.attention_mask` spans the
    prefix and the rest (as the cache does) and `batch.position_ids` the rest. The last `keep` tokens of every row
    stay in its rest (the positions whose logits are read). With fewer than `min_shared` tokens to share it is
    `forward` on `left_pad(rows)`."""
    shared = min(common_prefix(rows), min(len(row) for row in rows) - keep)
    if shared < min_shared:
        batch = left_pad(rows, pad_id, device)
        return forward(model, batch, **kwargs), batch
    head = left_pad([rows[0][:shared]], pad_id, device)
    cache = forward(model, head, use_cache=True).cache
    cache.batch_repeat_interleave(len(rows))
    rest = left_pad([row[shared:] for row in rows], pad_id, device)
    mask = torch.cat([head.attention_mask.expand(len(rows), -1), rest.attention_mask], dim=1)
    batch = Batch(rest.input_ids, mask, (rest.position_ids + shared) * rest.attention_mask)
    return forward(model, batch, cache=cache, **kwargs), batch
