"""Distillation on replayed windows: the child keeps the parent's answers, not only the gold ones.

Replay alone rehearses an earlier task's gold tags, but a re-tune on a task that shares an
instruction or a domain with it (the demo plan's "Extract the names of people." on the place
tweets of BTC, after BTC persons) still moves the earlier task's probabilities: its threshold,
calibrated when it was learned, stops fitting, and recall falls. So each replayed window also
carries the parent's tag distribution at its supervised positions, computed once before
training, and the loss adds `replay_distill` times the KL divergence from it (dark experience
replay, Buzzega et al. 2020). A parent forward pass per distinct replayed window is the cost.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from falconer_core.metamodel.batching import collate
from falconer_core.metamodel.prompt import Window


@torch.no_grad()
def teach(metamodel, windows: Sequence[Window], batch_size: int) -> int:
    """Attach the model's tag probabilities (as it is now: the parent) to each window that has
    none yet, at every position (the loss reads the supervised ones); returns how many it ran."""
    todo = list({id(w): w for w in windows if w.teacher is None}.values())
    todo.sort(key=lambda w: len(w.input_ids))  # similar lengths pad less
    for module in metamodel.modules():
        module.eval()
    for start in range(0, len(todo), batch_size):
        chunk = todo[start : start + batch_size]
        batch = collate(chunk, metamodel.tokenizer.pad_token_id, metamodel.device)
        probs = torch.softmax(metamodel.forward(batch).logits.float(), dim=-1).cpu()
        for row, w in enumerate(chunk):
            w.teacher = probs[row, : len(w.input_ids)].clone()
    return len(todo)


def distill_loss(logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor | None:
    """Mean KL(parent || child) over the supervised positions of the windows that carry the
    parent's probabilities; None when the batch has none."""
    mask = batch.get("teacher_mask")
    if mask is None or not bool(mask.any()):
        return None
    target = batch["teacher"][mask]
    log_child = torch.log_softmax(logits[mask].float(), dim=-1)
    return torch.sum(target * (torch.log(target.clamp_min(1e-12)) - log_child), dim=-1).mean()


__all__ = ["distill_loss", "teach"]
