"""Generation throughput: the caibase engine against the peer a user would pick instead, `model.generate` on a
batch (same batch sizes, prompts, sampling settings, left padding, KV cache), plus one-prompt-at-a-time
`model.generate` for reference. Writes JSON; the last line printed is `ratio_vs_hf_batched=<engine tokens per
CPU-second / batched generate tokens per CPU-second at batch 32>`.

    python benchmarks/bench_generation.py --model-dir /tmp/bench-model --out benchmarks/results/generation.json

Engine and peer run in one process, interleaved (round 1: engine b32, peer b32, engine b64, peer b64; round 2 ...),
so load from other work hits both alike. Each measurement records wall and process CPU time and the load average
before and after; the ratios use tokens per process CPU-second, which move less with other work than tokens/s.
Both sides' texts are checked for degenerate output (`caibase.generation.degenerate_reason`) and scored by the mean
per-token log-likelihood of the produced text under the float32 model (same sampling settings should give the same
mean within noise).

The JSON also holds the machine's bounds for one decode step (weights read at the measured memory bandwidth;
the step's matmuls timed alone at the batch's shape; the FLOPs at the measured large-GEMM rate) and the engine's
fraction of them, and one entry per speed lever tried (`levers`), each with its measured effect and quality check.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from pathlib import Path

import torch

from caibase.artifacts import write_json
from caibase.generation import GenerationSettings, cut_at_stop, degenerate_reason, generate, sample_seed
from caibase.models import encode_continuation, encode_prompt, load_model, load_tokenizer, prepare_model
from caibase.prompts import RESPONSE_STOPS, dialogue_prompt, load_prompt_set
from caibase.provenance import REPO_ROOT, code_version


def _new_ids(row: list[int], pad: int) -> list[int]:
    n = len(row)
    while n and row[n - 1] == pad:
        n -= 1
    return row[:n]


def hf_generate(model, tokenizer, prompts, settings, batch_size, seed) -> tuple[list[str], int]:
    """The peer: `model.generate` with HF sampling on batches of `batch_size` prompts in their given order, left
    padded, KV cache; new tokens counted as the engine counts them (trailing padding dropped)."""
    tokenizer.padding_side = "left"
    texts, new_tokens = [], 0
    for start in range(0, len(prompts), batch_size):
        chunk = prompts[start : start + batch_size]
        torch.manual_seed(sample_seed(seed, f"hf:{batch_size}:{start}"))
        enc = tokenizer.pad({"input_ids": [encode_prompt(tokenizer, p) for p in chunk]}, padding=True,
                            return_tensors="pt").to(model.device)
        with torch.inference_mode():
            out = model.generate(**enc, do_sample=True, temperature=settings.temperature, top_p=settings.top_p,
                                 max_new_tokens=settings.max_new_tokens, pad_token_id=tokenizer.pad_token_id,
                                 eos_token_id=tokenizer.eos_token_id, stop_strings=list(settings.stop_strings),
                                 tokenizer=tokenizer, use_cache=True)
        for row in out[:, enc["input_ids"].shape[1] :].tolist():
            ids = _new_ids(row, tokenizer.pad_token_id)
            new_tokens += len(ids)
            texts.append(cut_at_stop(tokenizer.decode(ids, skip_special_tokens=True), settings.stop_strings)[0].strip())
    return texts, new_tokens


def engine_generate(model, tokenizer, prompts, settings, seeds) -> tuple[list[str], int]:
    results = generate(model, tokenizer, prompts, settings, seeds, progress=False)
    return [r.text for r in results], sum(r.new_tokens for r in results)


def naive(model, tokenizer, prompts, settings, seed) -> tuple[list[str], int]:
    """The reference: each prompt alone, HF sampling, no batching."""
    return hf_generate(model, tokenizer, prompts, settings, 1, seed)


def text_quality(scorer, tokenizer, prompts, texts, batch_size: int = 16) -> dict:
    """Degenerate share and the mean per-token log-likelihood of each produced text after its prompt under
    `scorer` (the float32 model)."""
    reasons = [degenerate_reason(t, p) for p, t in zip(prompts, texts, strict=True)]
    total, count = 0.0, 0
    pairs = [(encode_prompt(tokenizer, p), encode_continuation(tokenizer, " " + t)) for p, t in zip(prompts, texts)
             if t]
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start : start + batch_size]
        width = max(len(a) + len(b) for a, b in chunk)
        ids = torch.tensor([[tokenizer.pad_token_id] * (width - len(a) - len(b)) + a + b for a, b in chunk],
                           device=scorer.device)
        mask = torch.tensor([[0] * (width - len(a) - len(b)) + [1] * (len(a) + len(b)) for a, b in chunk],
                            device=scorer.device)
        with torch.inference_mode():
            logprobs = torch.log_softmax(scorer(input_ids=ids, attention_mask=mask,
                                                position_ids=(mask.cumsum(-1) - 1).clamp(min=0)).logits.float(), -1)
        for row, (_a, b) in enumerate(chunk):
            targets = torch.tensor(b, device=scorer.device)
            positions = torch.arange(width - len(b) - 1, width - 1, device=scorer.device)
            total += logprobs[row, positions, targets].sum().item()
            count += len(b)
    return {"degenerate": sum(r is not None for r in reasons), "n_texts": len(texts),
            "degenerate_reasons": {r: reasons.count(r) for r in sorted({r for r in reasons if r})},
            "mean_token_loglik_fp32": total / count if count else None, "scored_tokens": count}


def measure(run) -> tuple[dict, list[str]]:
    load_before = os.getloadavg()
    start, cpu_start = time.perf_counter(), time.process_time()
    texts, new_tokens = run()
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    return {"seconds": seconds, "new_tokens": new_tokens, "tokens_per_s": new_tokens / seconds,
            "process_cpu_seconds": cpu_seconds, "tokens_per_cpu_s": new_tokens / cpu_seconds,
            "load_average_1_5_15_before": list(load_before),
            "load_average_1_5_15_after": list(os.getloadavg())}, texts


def pooled(rounds: list[dict]) -> dict:
    tokens = sum(r["new_tokens"] for r in rounds)
    cpu, wall = sum(r["process_cpu_seconds"] for r in rounds), sum(r["seconds"] for r in rounds)
    return {"new_tokens": tokens, "process_cpu_seconds": cpu, "seconds": wall, "tokens_per_cpu_s": tokens / cpu,
            "tokens_per_s": tokens / wall, "tokens_per_cpu_s_per_round": [r["tokens_per_cpu_s"] for r in rounds],
            "rounds": rounds}


def _best_seconds(fn, repeats: int = 5) -> float:
    fn()
    best = math.inf
    for _ in range(repeats):
        start = time.process_time()  # CPU time, as the tokens per CPU-second it is compared with
        fn()
        best = min(best, time.process_time() - start)
    return best


def decode_step_bounds(model, batch_size: int, context: int) -> dict:
    """Lower bounds on one decode step's time at `batch_size` rows: the weights read once at the measured memory
    bandwidth; the step's matmuls (every linear layer and the LM head at M = batch_size) timed alone; the step's
    FLOPs at the rate of a large float32 GEMM. Attention over `context` cached tokens adds FLOPs, counted."""
    config = model.config
    params = sum(p.numel() for p in model.parameters())
    bytes_per = next(model.parameters()).element_size()
    big = torch.ones(64 * 2**20)  # 256 MiB, far beyond the caches
    bandwidth = big.numel() * 4 / _best_seconds(big.sum)
    del big
    shapes = []
    for module in model.modules():
        if isinstance(module, torch.nn.Linear):
            shapes.append((module.out_features, module.in_features))
    dtype = next(model.parameters()).dtype
    weights = [torch.randn(o, i, dtype=dtype) for o, i in set(shapes)]
    by_shape = {tuple(w.shape): w for w in weights}
    x = {i: torch.randn(batch_size, i, dtype=dtype) for _o, i in set(shapes)}

    def matmuls():
        for o, i in shapes:
            torch.nn.functional.linear(x[i], by_shape[(o, i)])

    matmul_seconds = _best_seconds(matmuls, repeats=3)
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    peak = 2 * 1024**3 / _best_seconds(lambda: a @ b)
    linear_params = sum(o * i for o, i in shapes)
    attention_flops = 4 * config.num_hidden_layers * config.hidden_size * context * batch_size
    flops = 2 * linear_params * batch_size + attention_flops
    bounds = {"weights_read_s": params * bytes_per / bandwidth, "matmuls_alone_s": matmul_seconds,
              "flops_at_large_gemm_rate_s": flops / peak}
    return {"batch_size": batch_size, "context_tokens": context, "parameters": params,
            "memory_bandwidth_gb_s": bandwidth / 1e9, "large_gemm_gflops": peak / 1e9, "step_gflops": flops / 1e9,
            **bounds, "tightest": max(bounds, key=bounds.get),
            "bound_tokens_per_cpu_s": batch_size / max(bounds.values())}


def batch_dependence(model, tokenizer, prompts) -> float:
    """Largest absolute difference in row 0's last-position logits, alone vs in a batch with the other prompts
    (left padded): how much a row's numbers depend on its batch mates."""
    tokenizer.padding_side = "left"
    with torch.inference_mode():
        alone = tokenizer.pad({"input_ids": [encode_prompt(tokenizer, prompts[0])]},
                              return_tensors="pt").to(model.device)
        together = tokenizer.pad({"input_ids": [encode_prompt(tokenizer, p) for p in prompts]}, padding=True,
                                 return_tensors="pt").to(model.device)
        pos = (together["attention_mask"].cumsum(-1) - 1).clamp(min=0)
        a = model(**alone).logits[0, -1].float()
        b = model(**together, position_ids=pos).logits[0, -1].float()
    return (a - b).abs().max().item()


def kl_to_reference(reference, model, tokenizer, prompts, texts, batch_size: int = 16) -> float:
    """Mean per-token KL(reference || model) of the next-token distributions along the given texts."""
    total, count = 0.0, 0
    pairs = [encode_prompt(tokenizer, p) + encode_continuation(tokenizer, " " + t) for p, t in zip(prompts, texts)]
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start : start + batch_size]
        width = max(map(len, chunk))
        ids = torch.tensor([[tokenizer.pad_token_id] * (width - len(c)) + c for c in chunk], device=model.device)
        mask = torch.tensor([[0] * (width - len(c)) + [1] * len(c) for c in chunk], device=model.device)
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        with torch.inference_mode():
            p = torch.log_softmax(reference(input_ids=ids, attention_mask=mask, position_ids=pos).logits.float(), -1)
            q = torch.log_softmax(model(input_ids=ids, attention_mask=mask, position_ids=pos).logits.float(), -1)
            kl = (p.exp() * (p - q)).sum(-1)
        total += (kl * mask).sum().item()
        count += int(mask.sum())
    return total / count


ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni", "amx_bf16", "amx_int8", "amx_tile")


def cpu_description() -> dict:
    """The CPU the numbers were measured on: its model name, the vector and matrix extensions that decide which kernels
    torch runs (bf16 and int8 matmuls are fast only with AVX-512-BF16/AMX), and torch's dispatch level."""
    model, flags = None, set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            name, _, value = line.partition(":")
            if name.strip() == "model name" and model is None:
                model = value.strip()
            elif name.strip() == "flags" and not flags:
                flags = set(value.split())
    except OSError:
        pass
    return {"model_name": model, "isa": {flag: flag in flags for flag in ISA_FLAGS},
            "torch_cpu_capability": torch.backends.cpu.get_cpu_capability()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, default=REPO_ROOT / "results" / "embedded-cpu" / "model",
                        help="a prepared model dir; the embedded model is prepared there if missing")
    parser.add_argument("--n-prompts", type=int, default=64)
    parser.add_argument("--naive-prompts", type=int, default=16,
                        help="prompts for the one-at-a-time reference (it is ~8x slower; a subset keeps the run short)")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds of engine and peer")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu", help="cpu or cuda (bounds and the int8 lever are CPU-only)")
    parser.add_argument("--no-levers", action="store_true", help="skip the lever measurements")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--note", default="", help="recorded in the JSON (e.g. what else ran on the machine)")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "results" / "generation.json")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    if not (args.model_dir / "model_info.json").is_file():
        prepare_model({"source": "embedded", "kind": "instruct"}, args.model_dir)
    tokenizer, model = load_tokenizer(args.model_dir), load_model(args.model_dir, device=args.device)
    records = load_prompt_set("redteam_train", REPO_ROOT / "data/prompts/redteam_train.jsonl").records
    prompts = [dialogue_prompt(r["prompt"]) for r in records[: args.n_prompts]]
    settings = GenerationSettings(max_new_tokens=args.max_new_tokens, temperature=0.7, top_p=0.95,
                                  batch_size=args.batch_sizes[0], stop_strings=RESPONSE_STOPS)
    seeds = [sample_seed(args.seed, str(i)) for i in range(len(prompts))]
    load_at_start = list(os.getloadavg())

    engine_rounds: dict[int, list[dict]] = {b: [] for b in args.batch_sizes}
    peer_rounds: dict[int, list[dict]] = {b: [] for b in args.batch_sizes}
    texts: dict[str, list[str]] = {}
    for round_index in range(args.rounds):
        for b in args.batch_sizes:
            s = GenerationSettings(**{**settings.asdict(), "batch_size": b})
            result, out = measure(lambda s=s: engine_generate(model, tokenizer, prompts, s, seeds))
            engine_rounds[b].append(result)
            texts.setdefault(f"engine_b{b}", out)
            result, out = measure(lambda b=b, r=round_index: hf_generate(model, tokenizer, prompts, settings, b,
                                                                          args.seed + r))
            peer_rounds[b].append(result)
            texts.setdefault(f"hf_batched_b{b}", out)
            print(f"round {round_index} batch {b}: engine {engine_rounds[b][-1]['tokens_per_cpu_s']:.1f}, "
                  f"hf batched {peer_rounds[b][-1]['tokens_per_cpu_s']:.1f} tokens/cpu-s", flush=True)
    naive_prompts = prompts[: args.naive_prompts]
    naive_result, texts["naive"] = measure(lambda: naive(model, tokenizer, naive_prompts, settings, args.seed))
    naive_result["n_prompts"] = len(naive_prompts)

    engine = {f"batch_{b}": pooled(engine_rounds[b]) for b in args.batch_sizes}
    peer = {f"batch_{b}": pooled(peer_rounds[b]) for b in args.batch_sizes}
    for b in args.batch_sizes:
        e, p = engine[f"batch_{b}"], peer[f"batch_{b}"]
        e["ratio_vs_hf_batched_tokens_per_cpu_s"] = e["tokens_per_cpu_s"] / p["tokens_per_cpu_s"]
        e["ratio_vs_hf_batched_tokens_per_s"] = e["tokens_per_s"] / p["tokens_per_s"]
        e["ratio_vs_one_prompt_tokens_per_cpu_s"] = e["tokens_per_cpu_s"] / naive_result["tokens_per_cpu_s"]
        p["ratio_vs_one_prompt_tokens_per_cpu_s"] = p["tokens_per_cpu_s"] / naive_result["tokens_per_cpu_s"]
    quality = {}
    for name, out in texts.items():
        quality[name] = text_quality(model, tokenizer, naive_prompts if name == "naive" else prompts, out)
    lengths = [len(encode_prompt(tokenizer, p)) for p in prompts]
    bounds = {}
    for b in args.batch_sizes if args.device == "cpu" else ():
        bounds[f"batch_{b}"] = bound = decode_step_bounds(model, b, context=max(lengths) + args.max_new_tokens // 2)
        bound["engine_fraction_of_bound"] = engine[f"batch_{b}"]["tokens_per_cpu_s"] / bound["bound_tokens_per_cpu_s"]
        bound["hf_batched_fraction_of_bound"] = peer[f"batch_{b}"]["tokens_per_cpu_s"] / bound["bound_tokens_per_cpu_s"]

    levers = {} if args.no_levers else measure_levers(args, model, tokenizer, prompts, settings, seeds, lengths,
                                                      engine, texts)
    ratio = engine["batch_32"]["ratio_vs_hf_batched_tokens_per_cpu_s"] if "batch_32" in engine else None
    report = {
        "benchmark": "generation",
        "model_dir": str(args.model_dir),
        "n_prompts": len(prompts),
        "prompt_tokens_min_mean_max": [min(lengths), sum(lengths) / len(lengths), max(lengths)],
        "settings": {k: v for k, v in settings.asdict().items() if k != "batch_size"},
        "threads": args.threads,
        "rounds": args.rounds,
        "note": args.note,
        "load_average_1_5_15_at_start": load_at_start,
        "load_average_1_5_15_at_end": list(os.getloadavg()),
        "ratio_vs_hf_batched": ratio,
        "engine": engine,
        "hf_batched": peer,
        "naive_one_prompt": naive_result,
        "quality": quality,
        "decode_step_bounds": bounds,
        "levers": levers,
        "torch": torch.__version__,
        "dtype": str(next(model.parameters()).dtype),
        "device": torch.cuda.get_device_name(0) if args.device == "cuda" else "cpu",
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "cpu": cpu_description(),
        "code_version": code_version(),
    }
    write_json(args.out, report)
    print(json.dumps({"engine": {k: v["tokens_per_cpu_s"] for k, v in engine.items()},
                      "hf_batched": {k: v["tokens_per_cpu_s"] for k, v in peer.items()},
                      "naive_one_prompt": naive_result["tokens_per_cpu_s"],
                      "bound": {k: v["bound_tokens_per_cpu_s"] for k, v in bounds.items()},
                      "levers": {k: v.get("summary") for k, v in levers.items()}}, indent=2))
    if "bf16_weights" in levers:
        print(f"ratio_vs_hf_batched_with_bf16_opt_in={levers['bf16_weights']['ratio_vs_hf_batched_fp32']:.3f}")
    print(f"ratio_vs_hf_batched={ratio:.3f}" if ratio is not None else "ratio_vs_hf_batched=nan")


def measure_levers(args, model, tokenizer, prompts, settings, seeds, lengths, engine, texts) -> dict:
    """One entry per speed lever: measured effect at batch 32 (or its upper bound where it does not apply to these
    prompts), and its quality check."""
    b = 32 if 32 in args.batch_sizes else args.batch_sizes[0]
    s = GenerationSettings(**{**settings.asdict(), "batch_size": b})
    base = engine[f"batch_{b}"]["tokens_per_cpu_s"]
    levers = {}

    # bf16 weights (`model.dtype: bfloat16`): measured end to end, quality by fp32 log-likelihood and KL.
    bf16 = load_model(args.model_dir, dtype="bfloat16", device=args.device)
    result, out = measure(lambda: engine_generate(bf16, tokenizer, prompts, s, seeds))
    fp32_again, _ = measure(lambda: engine_generate(model, tokenizer, prompts, s, seeds))  # interleaved reference
    peer_bf16, peer_out = measure(lambda: hf_generate(bf16, tokenizer, prompts, settings, b, args.seed))
    peer_fp32 = engine[f"batch_{b}"]["tokens_per_cpu_s"] / engine[f"batch_{b}"]["ratio_vs_hf_batched_tokens_per_cpu_s"]
    levers["bf16_weights"] = {
        "engine_bf16": result, "engine_fp32_same_time": fp32_again, "hf_batched_bf16": peer_bf16,
        "speedup_vs_fp32_engine": result["tokens_per_cpu_s"] / fp32_again["tokens_per_cpu_s"],
        "ratio_vs_hf_batched_fp32": result["tokens_per_cpu_s"] / peer_fp32,
        "ratio_vs_hf_batched_bf16": result["tokens_per_cpu_s"] / peer_bf16["tokens_per_cpu_s"],
        "quality_hf_batched_bf16": text_quality(model, tokenizer, prompts, peer_out),
        "quality_bf16": text_quality(model, tokenizer, prompts, out),
        "quality_fp32": text_quality(model, tokenizer, prompts, texts[f"engine_b{b}"]),
        "mean_kl_fp32_to_bf16_per_token": kl_to_reference(model, bf16, tokenizer, prompts, texts[f"engine_b{b}"]),
        "texts_equal_to_fp32": sum(x == y for x, y in zip(out, texts[f"engine_b{b}"])),
        "row_logit_dependence_on_batch": batch_dependence(bf16, tokenizer, prompts[:b]),
    }
    levers["bf16_weights"]["admissible_by_default"] = False
    levers["bf16_weights"]["why"] = (
        "opt-in (`model.dtype: bfloat16`): no measurable quality loss here, but a row's bf16 logits move with its "
        "batch mates (row_logit_dependence_on_batch, fp32: see int8 entry), so per-row seeds hold only up to bf16 "
        "round-off")
    levers["bf16_weights"]["summary"] = (
        f"{levers['bf16_weights']['speedup_vs_fp32_engine']:.2f}x over the fp32 engine; "
        f"{levers['bf16_weights']['ratio_vs_hf_batched_fp32']:.2f}x the fp32 peer, "
        f"{levers['bf16_weights']['ratio_vs_hf_batched_bf16']:.2f}x the bf16 peer")
    bf16 = None  # frees the bf16 weights (the lambdas above read the name, so no del)

    if args.device != "cpu":
        return levers
    # int8 dynamic quantization of the linear layers (CPU): decode-step speed, and whether a row depends on its batch.
    qmodel = torch.ao.quantization.quantize_dynamic(load_model(args.model_dir), {torch.nn.Linear}, dtype=torch.qint8)
    result, out = measure(lambda: engine_generate(qmodel, tokenizer, prompts, s, seeds))
    levers["int8_dynamic_linear"] = {
        "engine_int8": result, "speedup_vs_fp32_engine": result["tokens_per_cpu_s"] / base,
        "quality": text_quality(model, tokenizer, prompts, out),
        "mean_kl_fp32_to_int8_per_token": kl_to_reference(model, qmodel, tokenizer, prompts, texts[f"engine_b{b}"]),
        "row_logit_dependence_on_batch": batch_dependence(qmodel, tokenizer, prompts[:b]),
        "row_logit_dependence_on_batch_fp32": batch_dependence(model, tokenizer, prompts[:b]),
        "admissible": False,
        "why": "activations are quantized with one scale per tensor, i.e. per batch: a row's logits then depend on "
               "its batch mates (row_logit_dependence_on_batch), which breaks per-row seeds",
    }
    levers["int8_dynamic_linear"]["summary"] = (f"{levers['int8_dynamic_linear']['speedup_vs_fp32_engine']:.2f}x, "
                                                "not admissible (row depends on batch)")
    qmodel = None  # frees the int8 model (as bf16 above)

    # Shared-prefix KV reuse: how many leading tokens the prompts of each engine batch share.
    order = sorted(range(len(prompts)), key=lambda i: (-lengths[i], i))
    encoded = [encode_prompt(tokenizer, p) for p in prompts]
    shared = []
    for start in range(0, len(order), b):
        rows = [encoded[i] for i in order[start : start + b]]
        k = 0
        while all(len(r) > k and r[k] == rows[0][k] for r in rows):
            k += 1
        shared.append(k)
    prompt_tokens = sum(lengths)
    levers["shared_prefix_kv"] = {
        "shared_prefix_tokens_per_batch": shared,
        "prefill_tokens_saved_upper_bound": sum(k * (min(b, len(order) - i * b) - 1) for i, k in enumerate(shared)),
        "prompt_tokens": prompt_tokens,
        "applies": False,
        "why": "these red-team prompts share only the dialogue header; prefill is a small part of the time here "
               "(64 new tokens after ~28 prompt tokens). It pays where rows share a long prefix (feedback's few-shot "
               "comparisons); critique's few-shot prefix is sampled per item, so its rows differ early.",
        "summary": f"not applicable: {max(shared)} shared tokens per batch",
    }

    # Finished rows and length bucketing: how much of the engine's work they could still save here.
    produced = engine[f"batch_{b}"]["rounds"][0]["new_tokens"]
    computed = len(prompts) * args.max_new_tokens
    levers["drop_finished_rows"] = {
        "row_steps_computed": computed, "row_steps_producing_tokens": produced,
        "work_saved_upper_bound": 1 - produced / computed,
        "summary": f"at most {100 * (1 - produced / computed):.1f}% of decode work (most rows run to max_new_tokens)",
    }
    unsorted_pad = sum(max(lengths[i : i + b]) * len(lengths[i : i + b]) for i in range(0, len(lengths), b))
    sorted_lengths = [lengths[i] for i in order]
    sorted_pad = sum(max(sorted_lengths[i : i + b]) * len(sorted_lengths[i : i + b])
                     for i in range(0, len(lengths), b))
    levers["length_bucketing"] = {
        "in_engine": True, "prefill_positions_in_prompt_order": unsorted_pad,
        "prefill_positions_length_sorted": sorted_pad, "prompt_tokens": prompt_tokens,
        "summary": f"in the engine already: prefill positions {unsorted_pad} -> {sorted_pad}",
    }
    return levers


if __name__ == "__main__":
    main()
