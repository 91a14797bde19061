"""Per-pair soft labels reach the DPO loss (`caibase.cdpo`: conservative DPO with eps = 1 - p_chosen per pair)."""

import math

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from caibase.models import load_model, load_tokenizer
from caibase.prompts import dialogue_prompt

CFG = {"max_steps": 4, "learning_rate": 5e-2, "batch_size": 4, "max_length": 64, "beta": 0.1,
       "lora": {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]}}


def make_pairs(labels):
    return [{"id": f"p{i}", "prompt": dialogue_prompt(f"question {i}"), "chosen": " I can't help with that.",
             "rejected": f" Sure, step {i}.", **({} if p is None else {"p_chosen": p})} for i, p in enumerate(labels)]


def gradient_at_reference(tiny_model_dir, tmp_path, labels, beta=0.1, precompute=True):
    """d loss / d LoRA weights on one batch of all pairs, at the reference (a fresh adapter: policy == reference)."""
    from caibase.cdpo import SoftLabelDPOTrainer
    from caibase.training import dpo_args, lora_config, preference_dataset

    cfg = {**CFG, "beta": beta, "batch_size": len(labels), "precompute_ref_log_probs": precompute}
    trainer = SoftLabelDPOTrainer(
        model=load_model(tiny_model_dir), ref_model=None, args=dpo_args(cfg, 0, tmp_path / "work"),
        processing_class=load_tokenizer(tiny_model_dir), train_dataset=preference_dataset(make_pairs(labels)),
        peft_config=lora_config(cfg["lora"]))
    batch = next(iter(trainer.get_train_dataloader()))
    model = trainer.model.train()
    model.zero_grad()
    loss = trainer.compute_loss(model, batch)
    loss.backward()
    grads = torch.cat([p.grad.flatten() for n, p in sorted(model.named_parameters()) if p.requires_grad])
    return loss.item(), grads


def test_label_one_half_has_no_gradient_at_the_reference(tiny_model_dir, tmp_path):
    loss, grads = gradient_at_reference(tiny_model_dir, tmp_path, [0.5] * 4)
    _, hard = gradient_at_reference(tiny_model_dir, tmp_path, [1.0] * 4)
    assert loss == pytest.approx(math.log(2), abs=1e-6)  # -log sigmoid(0), whatever the label
    assert hard.norm() > 0  # LoRA's B starts at 0; its gradient (and so the first step) is not 0 for a hard label
    assert grads.norm() <= 1e-6 * hard.norm()


def test_labels_point_nine_and_point_six_give_different_gradients(tiny_model_dir, tmp_path):
    _, hard = gradient_at_reference(tiny_model_dir, tmp_path, [1.0] * 4)
    _, g9 = gradient_at_reference(tiny_model_dir, tmp_path, [0.9] * 4)
    _, g6 = gradient_at_reference(tiny_model_dir, tmp_path, [0.6] * 4)
    assert not torch.allclose(g9, g6)
    # at the reference the cDPO gradient is beta * (sigmoid(0) - p) times d delta: proportional to p - 0.5
    assert torch.allclose(g9, hard * 0.4 / 0.5, rtol=1e-3, atol=1e-9)
    assert torch.allclose(g6, hard * 0.1 / 0.5, rtol=1e-3, atol=1e-9)


def test_reference_computed_per_step_gives_the_same_gradient(tiny_model_dir, tmp_path):
    """Without precomputed reference log-probs the reference forward of the same step is used."""
    labels = [0.9, 0.6, 0.75, 1.0]
    loss, precomputed = gradient_at_reference(tiny_model_dir, tmp_path, labels)
    loss_live, live = gradient_at_reference(tiny_model_dir, tmp_path, labels, precompute=False)
    assert loss_live == pytest.approx(loss, abs=1e-6)
    assert torch.allclose(live, precomputed, rtol=1e-4, atol=1e-8)


def train(tiny_model_dir, path, labels):
    from caibase.training import train_dpo

    train_dpo(load_model(tiny_model_dir), load_tokenizer(tiny_model_dir), make_pairs(labels), CFG, 0,
              path / "adapter", path / "history.csv", path / "work")
    return load_file(path / "adapter" / "adapter_model.safetensors"), pd.read_csv(path / "history.csv")


def test_changing_one_label_changes_the_trained_adapter(tiny_model_dir, tmp_path):
    labels = [0.9, 0.8, 0.7, 0.95, 0.6, 0.85, 0.75, 0.65]
    base, base_history = train(tiny_model_dir, tmp_path / "a", labels)
    changed, _ = train(tiny_model_dir, tmp_path / "b", [0.55, *labels[1:]])
    again, again_history = train(tiny_model_dir, tmp_path / "c", labels)
    assert base.keys() == changed.keys()
    assert any(not torch.equal(base[k], changed[k]) for k in base)
    assert all(torch.equal(base[k], again[k]) for k in base)  # the difference is the label, not noise
    assert base_history["loss"].tolist() == again_history["loss"].tolist()
    assert "label_smoothing" in base_history  # the mean eps = 1 - p_chosen of each step's pairs is logged


def test_hard_labels_train_exactly_as_plain_dpo(tiny_model_dir, tmp_path):
    """Revision pairs (no p_chosen) and p_chosen = 1 give the same adapter and losses; soft labels do not."""
    plain, plain_history = train(tiny_model_dir, tmp_path / "plain", [None] * 8)
    ones, ones_history = train(tiny_model_dir, tmp_path / "ones", [1.0] * 8)
    soft, soft_history = train(tiny_model_dir, tmp_path / "soft", [0.7] * 8)
    assert all(torch.equal(plain[k], ones[k]) for k in plain)
    assert plain_history["loss"].tolist() == ones_history["loss"].tolist()
    assert any(not torch.equal(plain[k], soft[k]) for k in plain)
    assert plain_history["loss"].tolist() != soft_history["loss"].tolist()


def test_p_chosen_outside_zero_one_is_rejected():
    from caibase.training import preference_dataset

    with pytest.raises(ValueError, match="p_chosen must lie in"):
        preference_dataset(make_pairs([0.7, 1.2]))


# AI-feedback pairs: position-inconsistent labels (the two option orders disagree) under feedback.position_inconsistent


def label(i, ab, ba):
    return {"id": f"l{i}", "prompt": f"question {i}", "response_1": f"one {i}", "response_2": f"two {i}",
            "p_first_order_ab": ab, "p_first_order_ba": ba, "p_first": (ab + ba) / 2,
            "position_consistent": (ab > 0.5) == (ba > 0.5)}


LABELS = [label(0, 0.9, 0.8), label(1, 0.9, 0.2), label(2, 0.3, 0.1), label(3, 0.6, 0.45)]


def test_position_inconsistent_labels_are_dropped_and_counted():
    from caibase.feedback import position_filter, soft_label_pairs

    marked, counts = position_filter(LABELS, "drop")
    assert counts == {"rule": "drop", "total": 4, "position_inconsistent": 2, "dropped": 2, "kept": 2}
    assert [x["kept"] for x in marked] == [True, False, True, False]
    assert all(x["position_rule"] == "drop" for x in marked)
    pairs = soft_label_pairs(marked, dialogue_prompt)
    assert [p["id"] for p in pairs] == ["l0", "l2"]
    assert pairs[0]["p_chosen"] == pytest.approx(0.85) and pairs[1]["p_chosen"] == pytest.approx(0.8)
    assert pairs[1]["chosen"] == " two 2"  # the second response wins both orders

    kept, counts = position_filter(LABELS, "keep")
    assert counts == {"rule": "keep", "total": 4, "position_inconsistent": 2, "dropped": 0, "kept": 4}
    assert len(soft_label_pairs(kept, dialogue_prompt)) == 4


def test_dropping_every_label_fails_with_a_clear_message():
    from caibase.feedback import NoPairsError, position_filter

    message = "all 2 AI-feedback labels are position-inconsistent.*position_inconsistent: keep"
    with pytest.raises(NoPairsError, match=message):
        position_filter([LABELS[1], LABELS[3]], "drop")
    assert position_filter([], "drop")[1]["total"] == 0  # no labels at all is not this error
    with pytest.raises(ValueError, match="position_inconsistent"):
        position_filter(LABELS, "weight")
