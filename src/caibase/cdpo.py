"""Per-pair soft labels in DPO: the conservative DPO loss (cDPO; Mitchell 2023) with a label per pair.

A pair whose chosen response is preferred with probability p (the AI-feedback label, `p_chosen`) is trained with
eps = 1 - p on

    loss = -(1 - eps) * logsigmoid(beta * delta) - eps * logsigmoid(-beta * delta)
         = -logsigmoid(beta * delta) + eps * beta * delta

where delta = (log pi(chosen) - log ref(chosen)) - (log pi(rejected) - log ref(rejected)). Its gradient in delta is
beta * (sigmoid(beta * delta) - p): zero where the implicit reward model's preference equals the label, so a pair
labelled 0.5 carries no preference at all, and a pair labelled 1 (eps = 0) is ordinary DPO.

TRL 1.16.0 has no per-example label: `label_smoothing` is one float, and its default `sigmoid` loss does not read it
(only `robust`, `exo_pair`, `aot` and `aot_unpaired` do). `SoftLabelDPOTrainer` therefore extends `DPOTrainer` by the
second term only, reusing everything else TRL does:

- the dataset keeps a `p_chosen` column (added to the signature columns, so `remove_unused_columns` keeps it), and
  the collator TRL builds is wrapped to pass it on as a tensor, which is taken out of the batch before TRL sees it;
- TRL's `_compute_loss` computes the sigmoid loss, the reference log-probs (precomputed or not) and every metric as
  always; the policy's per-token log-probs of that same forward pass are read with a forward hook on the model, so
  the added term `mean(eps * beta * delta)` uses the forward TRL ran (no second pass, same graph);
- a batch whose labels are all hard (eps = 0: revision pairs, or a dataset without `p_chosen`) runs TRL's loss
  untouched, so hard-label training is bit-identical to plain `DPOTrainer`.

Both terms are means over the batch, so their sum is the mean per-pair cDPO loss. The correction needs delta as TRL
computes it for the default settings (`loss_type` sigmoid, reverse-KL, no `ld_alpha`, no WPO weighting); the trainer
refuses other settings rather than computing something else.
"""

from __future__ import annotations

import torch
from trl import DPOTrainer

LABEL_COLUMN = "p_chosen"


class _WithLabels:
    """A collator that adds each example's `p_chosen` (float32) to what TRL's preference collator returns."""

    def __init__(self, collator):
        self.collator = collator

    def __call__(self, examples):
        batch = self.collator(examples)
        if LABEL_COLUMN in examples[0]:
            batch[LABEL_COLUMN] = torch.tensor([float(e[LABEL_COLUMN]) for e in examples], dtype=torch.float32)
        return batch


class SoftLabelDPOTrainer(DPOTrainer):
    """`DPOTrainer` with the per-pair cDPO loss for datasets that have a `p_chosen` column (see the module doc)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        unsupported = {
            "loss_type": self.loss_types != ["sigmoid"],
            "f_divergence_type": self.f_divergence_type != "reverse_kl",
            "ld_alpha": self.ld_alpha is not None,
            "use_weighting": bool(self.use_weighting),
        }
        bad = [name for name, is_bad in unsupported.items() if is_bad]
        if bad:
            raise ValueError(f"SoftLabelDPOTrainer adds the cDPO term to TRL's sigmoid DPO loss only; unsupported "
                             f"DPOConfig settings: {', '.join(bad)}")
        # TRL built its collator (pad token set up) and precomputed the reference log-probs with it; from here on
        # the batches carry the labels too.
        self.data_collator = _WithLabels(self.data_collator)

    def _set_signature_columns_if_needed(self):
        super()._set_signature_columns_if_needed()
        if LABEL_COLUMN not in self._signature_columns:
            self._signature_columns = [*self._signature_columns, LABEL_COLUMN]

    def compute_ref_log_probs(self, model, inputs):
        return super().compute_ref_log_probs(model, {k: v for k, v in inputs.items() if k != LABEL_COLUMN})

    def _compute_loss(self, model, inputs, return_outputs):
        inputs = dict(inputs)
        p_chosen = inputs.pop(LABEL_COLUMN, None)
        if p_chosen is None:  # a dataset without labels: TRL's loss, untouched
            return super()._compute_loss(model, inputs, return_outputs)
        eps = (1 - p_chosen).to(self.accelerator.device)
        mode = "train" if self.model.training else "eval"
        self._metrics[mode]["label_smoothing"].append(self.accelerator.gather_for_metrics(eps).mean().item())
        if not bool((eps != 0).any()):  # hard labels only: TRL's loss, untouched
            return super()._compute_loss(model, inputs, return_outputs)
        forwards = []  # the policy forward, then (without precomputed reference log-probs) the reference forward
        hook = self.accelerator.unwrap_model(model).register_forward_hook(
            lambda _module, _args, output: forwards.append(getattr(output, "log_probs", None)))
        try:
            result = super()._compute_loss(model, inputs, return_outputs)
        finally:
            hook.remove()
        seq_len = inputs["completion_mask"].size(1) - 1
        # as TRL sums them: log-probs of the completion tokens (the others are 0), chosen half then rejected half
        chosen_logps, rejected_logps = forwards[0][:, -seq_len:].sum(dim=1).chunk(2, dim=0)
        if self.precompute_ref_logps:
            ref_chosen_logps, ref_rejected_logps = inputs["ref_chosen_logps"], inputs["ref_rejected_logps"]
        else:
            ref_chosen_logps, ref_rejected_logps = forwards[1][:, -seq_len:].sum(dim=1).chunk(2, dim=0)
        delta = (chosen_logps - ref_chosen_logps) - (rejected_logps - ref_rejected_logps)
        correction = (eps.to(delta.dtype) * self.beta * delta).mean()
        if return_outputs:
            loss, outputs = result
            return loss + correction, outputs
        return result + correction
