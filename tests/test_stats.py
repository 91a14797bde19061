"""The vectorized statistics give what the per-resample loops gave for the same seed: the same index draws, the same
resample means (to round-off; in practice to the last bit), the same CIs, tables and p-values. The published numbers
of the committed reference run were computed with the loops (issue 17)."""

import importlib.util
import warnings

import numpy as np
import pandas as pd
import pytest

from caibase import metrics
from caibase.metrics import paired_difference, paired_table, sign_flip_test, summarize, two_way_bootstrap

from conftest import REPO

TOLERANCE = 1e-12


# --- the former implementations, the reference (benchmarks/stats_reference.py, shared with bench_stats.py) ---

_spec = importlib.util.spec_from_file_location("stats_reference", REPO / "benchmarks" / "stats_reference.py")
reference = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(reference)
loop_means, loop_bootstrap, loop_sign_flip = reference.loop_means, reference.loop_bootstrap, reference.loop_sign_flip
loop_per_seed, loop_summarize, loop_paired_table = reference.loop_per_seed, reference.loop_summarize, \
    reference.loop_paired_table


# --- matrices ---


def matrix_cases():
    rng = np.random.default_rng(11)
    cases = {}
    for n_seeds, n_prompts in ((1, 1), (1, 5), (1, 40), (3, 16), (3, 64), (5, 1), (12, 30), (2, 700)):
        binary = (rng.random((n_seeds, n_prompts)) < 0.4).astype(float)
        scores = rng.integers(1, 6, (n_seeds, n_prompts)) * rng.choice([1.0, 1 / 3, 1e3], (n_seeds, n_prompts))
        diffs = rng.normal(0, 0.3, (n_seeds, n_prompts)) / 7
        cases[f"binary_{n_seeds}x{n_prompts}"] = binary
        cases[f"scores_{n_seeds}x{n_prompts}"] = scores
        for fraction in (0.1, 0.6):
            holed = diffs.copy()
            holed[rng.random(holed.shape) < fraction] = np.nan
            cases[f"diff_nan{fraction}_{n_seeds}x{n_prompts}"] = holed
    row_missing = rng.random((4, 20))
    row_missing[1] = np.nan  # a seed with no judged item
    cases["nan_row_4x20"] = row_missing
    column_missing = rng.random((3, 10))
    column_missing[:, ::3] = np.nan
    cases["nan_columns_3x10"] = column_missing
    mostly = np.full((1, 6), np.nan)
    mostly[0, 2] = 1.0  # one seed, most resamples have no judged cell: NaN means, a NaN CI, as before
    cases["mostly_nan_1x6"] = mostly
    return cases


CASES = matrix_cases()


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("seed", [0, 3])
def test_index_matrices_and_means_equal_the_loop(name, seed):
    matrix = CASES[name]
    means, rows, cols = loop_means(matrix, 400, seed)
    new_rows, new_cols = metrics._draw_resamples(np.random.default_rng(seed), *matrix.shape, 400)
    assert np.array_equal(rows, new_rows) and np.array_equal(cols, new_cols)
    new_means = metrics._resample_means(matrix, new_rows, new_cols)
    assert np.array_equal(np.isnan(means), np.isnan(new_means))
    finite = ~np.isnan(means)
    assert np.max(np.abs(means[finite] - new_means[finite]), initial=0.0) <= TOLERANCE


@pytest.mark.parametrize("name", sorted(CASES))
def test_two_way_bootstrap_equals_the_loop(name):
    matrix = CASES[name]
    for seed, n_boot, level in ((0, 500, 0.95), (7, 300, 0.9), (0, 500, 0.95)):  # the repeat: from the cache
        expected = loop_bootstrap(matrix, n_boot=n_boot, seed=seed, level=level)
        got = two_way_bootstrap(matrix, n_boot=n_boot, seed=seed, level=level)
        assert np.array_equal(np.isnan(expected), np.isnan(got))
        assert np.allclose(expected, got, rtol=0, atol=TOLERANCE, equal_nan=True)


def test_two_way_bootstrap_chunks_and_uncached_draws_equal_the_loop(monkeypatch):
    """Small chunks (as for a large matrix) and the uncached path (an index draw too large to keep) change nothing."""
    matrix = CASES["diff_nan0.1_3x64"]
    expected = loop_bootstrap(matrix, n_boot=300, seed=5)
    monkeypatch.setattr(metrics, "_BOOTSTRAP_CHUNK_BYTES", 8 * matrix.size * 7)  # 7 resamples a chunk
    monkeypatch.setattr(metrics, "_BOOTSTRAP_CACHED_INDICES", 0)
    assert np.allclose(two_way_bootstrap(matrix, n_boot=300, seed=5), expected, rtol=0, atol=TOLERANCE)
    generator_seeded = two_way_bootstrap(matrix, n_boot=300, seed=np.random.SeedSequence(5))
    assert np.allclose(generator_seeded, expected, rtol=0, atol=TOLERANCE)


def test_cached_index_matrices_are_read_only():
    rows, cols = metrics._seeded_resamples(0, 3, 16, 50)
    with pytest.raises(ValueError):
        rows[0, 0] = 1
    with pytest.raises(ValueError):
        cols[0, 0] = 1


@pytest.mark.parametrize("n", [0, 1, 2, 3, 5, 10, 16, 17, 20])
def test_sign_flip_equals_the_loop(n):
    rng = np.random.default_rng(n)
    for differences in (rng.normal(0.05, 0.1, n), np.zeros(n), np.round(rng.normal(0, 1, n), 1)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # no seeds: the mean of an empty slice
            expected, got = loop_sign_flip(differences), sign_flip_test(differences)
        assert got == expected or (np.isnan(got) and np.isnan(expected))


ALL_CONDITIONS = ("base", "sft", "slcai", "dpo", "dpo_aif", "instruct_ref")


def judged_records(seed=0, seeds=(1, 2, 3), n_prompts=12, samples=1, conditions=ALL_CONDITIONS):
    """Judged records of several conditions and prompt sets, with judge failures, categories, scores and k
    samples."""
    rng = np.random.default_rng(seed)
    sets = {"jailbreak": "c", "harmful_direct": "c", "benign": None, "helpful": "c", "style": "c"}
    rows = []
    for condition_index, condition in enumerate(conditions):
        for s in seeds:
            for prompt_set, category in sets.items():
                for p in range(n_prompts):
                    for k in range(samples):
                        refused = bool(rng.random() < 0.3 + 0.08 * condition_index)
                        rows.append({
                            "condition": condition, "seed": s, "prompt_set": prompt_set,
                            "prompt_id": f"{prompt_set}-{p}", "sample": k,
                            "category": category or ("benign", "borderline")[p % 2],
                            "status": "ok" if rng.random() > 0.08 else "parse_error",
                            "refused": refused if prompt_set in ("jailbreak", "harmful_direct", "benign") else None,
                            "attack_success": (not refused) if prompt_set in ("jailbreak", "harmful_direct") else None,
                            "score": int(rng.integers(1, 6)) if prompt_set in ("helpful", "style") else None,
                            "response_tokens": int(rng.integers(5, 65)),
                        })
    return pd.DataFrame(rows)


@pytest.mark.filterwarnings("ignore:Mean of empty slice")  # a seed with no judged item in a pair, as before
@pytest.mark.parametrize("design", [{}, {"samples": 2, "conditions": ("base", "sft", "dpo")},
                                    {"seeds": (4,), "conditions": ("base", "sft", "dpo")},
                                    {"seeds": tuple(range(18)), "n_prompts": 4, "conditions": ("base", "sft", "dpo")}])
def test_summarize_and_paired_table_equal_the_loops(design):
    judged = judged_records(**design)
    conditions = list(design.get("conditions", ALL_CONDITIONS))
    expected, got = loop_summarize(judged, 100), summarize(judged, n_boot=100)
    pd.testing.assert_frame_equal(got, expected, check_exact=False, rtol=0, atol=TOLERANCE)
    pd.testing.assert_frame_equal(metrics.per_seed(judged), loop_per_seed(judged), check_exact=True)
    expected, got = loop_paired_table(judged, conditions, 100), paired_table(judged, conditions, n_boot=100)
    pd.testing.assert_frame_equal(got, expected, check_exact=False, rtol=0, atol=TOLERANCE)
    single = paired_difference(judged, "dpo", "sft", "benign", "refused", n_boot=100, category="borderline")
    row = expected.query("metric == 'over_refusal_borderline' and treatment == 'dpo' and control == 'sft'")
    pd.testing.assert_series_equal(pd.Series(single, dtype=object), row.iloc[0].drop("metric").astype(object),
                                   check_names=False, check_exact=False, rtol=0, atol=TOLERANCE)
