"""The generation engine every stage uses: batched, left-padded, length-bucketed, KV-cached, seeded per sample.

Sampling is done by a logits processor that draws each row's token from that row's own `torch.Generator`
(seeded from the run seed and the sample's key), so a sample's draw does not depend on which other prompts
share its batch. Generation stops at the configured stop strings, and the text is cut before them.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import torch
from transformers import LogitsProcessor, LogitsProcessorList

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GenerationSettings:
    max_new_tokens: int = 128
    temperature: float = 0.7
    top_p: float = 0.95
    batch_size: int = 16
    stop_strings: tuple[str, ...] = ()

    def asdict(self) -> dict:
        return asdict(self)


@dataclass
class Generation:
    text: str
    prompt_tokens: int
    new_tokens: int
    stop: str | None = None  # the stop string that ended it, if any
    truncated: bool = False  # hit max_new_tokens without EOS or a stop string
    extra: dict = field(default_factory=dict)


def sample_seed(seed: int, key: str) -> int:
    """A 63-bit seed for one sample, from the run seed and a stable key (e.g. prompt id and stage)."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{key}".encode()).digest()[:8], "big") >> 1


class PerRowSampler(LogitsProcessor):
    """Temperature + nucleus sampling with one generator per batch row; returns one-hot logits for greedy decoding."""

    def __init__(self, seeds: Sequence[int], temperature: float, top_p: float):
        self.generators = [torch.Generator().manual_seed(s) for s in seeds]
        self.temperature = temperature
        self.top_p = top_p

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        scores = scores.float()
        if self.temperature <= 0:
            choice = scores.argmax(dim=-1)
        else:
            probs = torch.softmax(scores / self.temperature, dim=-1)
            if self.top_p < 1.0:
                sorted_probs, order = probs.sort(dim=-1, descending=True)
                keep = sorted_probs.cumsum(dim=-1) - sorted_probs < self.top_p
                sorted_probs = sorted_probs * keep
                probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
            choice = torch.stack([
                torch.multinomial(row.cpu(), 1, generator=gen).squeeze(0)
                for row, gen in zip(probs, self.generators, strict=True)
            ]).to(scores.device)
        out = torch.full_like(scores, float("-inf"))
        out.scatter_(-1, choice.unsqueeze(-1), 0.0)
        return out


def cut_at_stop(text: str, stop_strings: Sequence[str]) -> tuple[str, str | None]:
    """Cut `text` before the earliest stop string; return the kept text and the stop that matched."""
    best, matched = len(text), None
    for stop in stop_strings:
        pos = text.find(stop)
        if 0 <= pos < best:
            best, matched = pos, stop
    return text[:best], matched


def generate(
    model,
    tokenizer,
    prompts: Sequence[str],
    settings: GenerationSettings,
    seeds: Sequence[int],
    on_batch: Callable[[list[int], list[Generation]], None] | None = None,
    skip: set[int] = frozenset(),
    progress: bool = True,
) -> list[Generation | None]:
    """Generate one completion per prompt. `seeds[i]` seeds prompt i's sampling.

    Prompts are sorted by token length and batched (length buckets keep padding small). `on_batch` receives the
    prompt indices and generations of each finished batch, for resumable shard writing; indices in `skip` are not
    generated (already done) and come back as None.
    """
    from tqdm.auto import tqdm

    if len(seeds) != len(prompts):
        raise ValueError("one seed per prompt is required")
    tokenizer.padding_side = "left"
    lengths = [len(tokenizer(p, add_special_tokens=False).input_ids) for p in prompts]
    order = sorted((i for i in range(len(prompts)) if i not in skip), key=lambda i: (-lengths[i], i))
    results: list[Generation | None] = [None] * len(prompts)
    batches = [order[i : i + settings.batch_size] for i in range(0, len(order), settings.batch_size)]
    device = next(model.parameters()).device
    for batch in tqdm(batches, desc="generate", disable=not progress, mininterval=5):
        enc = tokenizer([prompts[i] for i in batch], return_tensors="pt", padding=True, add_special_tokens=False)
        enc = {k: v.to(device) for k, v in enc.items()}
        sampler = PerRowSampler([seeds[i] for i in batch], settings.temperature, settings.top_p)
        with torch.inference_mode():
            out = model.generate(
                **enc,
                do_sample=False,
                max_new_tokens=settings.max_new_tokens,
                logits_processor=LogitsProcessorList([sampler]),
                stop_strings=list(settings.stop_strings) or None,
                tokenizer=tokenizer,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
                use_cache=True,
            )
        new = out[:, enc["input_ids"].shape[1] :]
        batch_results = []
        for row, i in enumerate(batch):
            ids = new[row].tolist()
            n_new = len(ids)
            while n_new and ids[n_new - 1] == tokenizer.pad_token_id:
                n_new -= 1
            ended_eos = tokenizer.eos_token_id in ids[:n_new] or n_new < len(ids)
            text = tokenizer.decode(ids[:n_new], skip_special_tokens=True)
            text, stop = cut_at_stop(text, settings.stop_strings)
            gen = Generation(
                text=text.strip(), prompt_tokens=lengths[i], new_tokens=n_new, stop=stop,
                truncated=stop is None and not ended_eos and n_new >= settings.max_new_tokens,
            )
            results[i] = gen
            batch_results.append(gen)
        if on_batch:
            on_batch(batch, batch_results)
    return results
