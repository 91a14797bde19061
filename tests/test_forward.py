"""caibase.forward: the batch layout every batched forward pass uses (longest first, left-padded, positions from
each row's first real token), and the hf judge's model loaded by caibase.models.load_model in the dtype it is given."""

import torch

import caibase.models
from caibase.forward import batch_plan, common_prefix, forward, forward_shared, left_pad, token_logprobs
from caibase.judges import JudgeCache, make_judge
from caibase.models import load_model


def test_left_pad_lays_out_ragged_rows():
    batch = left_pad([[5, 6, 7], [8], [9, 10]], pad_id=0)
    assert batch.input_ids.tolist() == [[5, 6, 7], [0, 0, 8], [0, 9, 10]]
    assert batch.attention_mask.tolist() == [[1, 1, 1], [0, 0, 1], [0, 1, 1]]
    assert batch.position_ids.tolist() == [[0, 1, 2], [0, 0, 0], [0, 0, 1]]
    assert {t.dtype for t in (batch.input_ids, batch.attention_mask, batch.position_ids)} == {torch.int64}


def test_batch_plan_is_longest_first_with_ties_by_index():
    assert batch_plan([2, 5, 2, 7, 5], 2) == [[3, 1], [4, 0], [2]]


def test_a_padded_row_scores_as_it_does_alone(tiny_model_dir):
    """Padding, mask and positions leave a row's log-probabilities as they are without padding."""
    model = load_model(tiny_model_dir)
    rows = [[1, 40, 41, 42, 43], [1, 50, 51]]
    logits = forward(model, left_pad(rows, pad_id=0)).logits
    alone = forward(model, left_pad(rows[1:], pad_id=0)).logits
    targets = torch.tensor([[51]])
    assert torch.allclose(token_logprobs(logits[1:, -2:-1], targets), token_logprobs(alone[:, -2:-1], targets),
                          atol=1e-5)
    expected = torch.log_softmax(alone[0, -1], dim=-1)[7]
    assert token_logprobs(alone[:, -1:], torch.tensor([[7]])).item() == expected.item()


PREFIX = [1] + list(range(40, 70))  # BOS and 30 tokens every row begins with
RAGGED = [PREFIX + [80, 81, 82, 83, 84], PREFIX + [90], PREFIX + [95, 96, 97], PREFIX]


def test_common_prefix_is_the_longest_shared_beginning():
    assert common_prefix(RAGGED) == len(PREFIX)
    assert common_prefix([[1, 2, 3], [1, 2, 4], [1, 2]]) == 2
    assert common_prefix([[5], [6]]) == 0


def test_shared_prefix_logits_equal_the_full_forward(tiny_model_dir):
    """Prefix run once, its cache repeated, the rests padded between prefix and rest: each row's logits over its
    rest are those of the full left-padded forward."""
    model = load_model(tiny_model_dir)
    full = forward(model, left_pad(RAGGED, pad_id=0)).logits
    out, batch = forward_shared(model, RAGGED, pad_id=0, keep=1)
    shared = len(PREFIX) - 1  # the last token of the shortest row stays in its rest
    assert batch.input_ids.shape[1] == max(map(len, RAGGED)) - shared
    assert batch.attention_mask.shape[1] == shared + batch.input_ids.shape[1]
    for r, row in enumerate(RAGGED):
        n = len(row) - shared
        assert torch.allclose(out.logits[r, -n:], full[r, -n:], atol=1e-4)
        alone, _ = forward_shared(model, [row], pad_id=0, keep=n)
        assert torch.allclose(out.logits[r, -n:], alone.logits[0, -n:], atol=1e-4), "a row alone as in a batch"


def test_a_short_common_prefix_runs_the_full_forward(tiny_model_dir):
    model = load_model(tiny_model_dir)
    rows = [[1, 40, 41, 42, 43], [1, 50, 51]]
    out, batch = forward_shared(model, rows, pad_id=0)
    padded = left_pad(rows, pad_id=0)
    assert torch.equal(batch.input_ids, padded.input_ids) and torch.equal(batch.attention_mask, padded.attention_mask)
    assert torch.equal(out.logits, forward(model, padded).logits)


def test_hf_judge_loads_its_model_with_load_model_in_the_given_dtype(tiny_model_dir, monkeypatch):
    calls = []

    def spy(model_dir, adapters=(), dtype="float32", device="cpu"):
        calls.append((str(model_dir), dtype, device))
        return load_model(model_dir, adapters, dtype, device)

    monkeypatch.setattr(caibase.models, "load_model", spy)
    judge = make_judge({"backend": "hf", "constrained": True}, tiny_model_dir, dtype="bfloat16", device="cpu")
    assert calls == [(str(tiny_model_dir), "bfloat16", "cpu")]
    assert next(judge.lm.parameters()).dtype == torch.bfloat16
    assert judge.judge("q", "I can't help with that.")["status"] == "ok"
    default = make_judge({"backend": "hf", "constrained": True}, tiny_model_dir)
    assert calls[-1] == (str(tiny_model_dir), "float32", "cpu"), "the default is today's: float32 on the CPU"
    item = {"prompt": "q", "response": "I can't help with that."}
    assert JudgeCache.key(judge, "refusal", item) != JudgeCache.key(default, "refusal", item), \
        "a verdict cached in one dtype is not reused in another"


def test_hf_judge_reads_a_plain_checkpoint_folder(tiny_model_dir):
    """model_path: a checkpoint folder without model_info.json, loaded in place, judges as the prepared model."""
    weights = tiny_model_dir / "weights"
    plain = make_judge({"backend": "hf", "model_path": str(weights), "constrained": True})
    prepared = make_judge({"backend": "hf", "constrained": True}, tiny_model_dir)
    assert plain.name == "hf:weights"
    items = [{"prompt": "Hi", "response": "Hello there."}, {"prompt": "Bomb?", "response": "I'm sorry, no."}]
    assert plain.judge_many(items, "refusal") == prepared.judge_many(items, "refusal")
