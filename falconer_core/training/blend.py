"""Blending a re-tuned child's weights with its parent's: the cheapest guard against forgetting.

A child re-tuned from a parent sits close to it in weight space, and the straight line between
the two passes through weights that keep much of both: the parent's earlier tasks and the
child's new one (weight-space ensembling, as in WiSE-FT, Wortsman et al. 2022). After a
replaying re-tune, `blend_with_parent` steps along that line from the child toward the parent
while the score on the new task's dev texts stays within `replay_blend_tolerance` of the
re-tuned weights'. Only the new task's dev texts choose: every earlier task's examples were
trained on by some ancestor, so their scores would flatter the parent. A try costs one scoring
pass of the new task's dev texts, no training.

Opt-in (`TrainingSettings.replay_blend`, e.g. (0.9, 0.8)). On the continual benchmark a task the
parent had never seen lost 1-5% of its F1 at 0.8 of the child and 18% at 0.6 (BTC persons after
BC2GM genes), while 0.85 after the demo plan kept 3% more of BTC persons and of SMS spam for 1.4%
of the demo's. With (0.9, 0.8) over three seeds, BTC persons kept 0.968 of its specialist (0.954
without), but the dev split (some fifty texts) could not see what the blends cost the new task:
the demo plan kept 0.988 (1.061 without), 10% less on one seed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

State = list[dict[str, torch.Tensor]]


def state_of(modules: Sequence[torch.nn.Module]) -> State:
    """A detached copy of every module's weights."""
    return [{k: v.detach().clone() for k, v in module.state_dict().items()} for module in modules]


def blended_state(parent: State, child: State, share: float) -> State:
    """`share` of the child's floating-point weights plus the rest of the parent's; other
    tensors (integer buffers such as position ids) are the child's."""
    return [
        {k: share * c[k] + (1 - share) * p[k] if c[k].is_floating_point() else c[k] for k in c}
        for p, c in zip(parent, child)
    ]


def load_state(modules: Sequence[torch.nn.Module], state: State) -> None:
    for module, weights in zip(modules, state):
        module.load_state_dict(weights)


def blend_with_parent(
    modules: Sequence[torch.nn.Module], parent: State, score: Callable[[], float],
    shares: Sequence[float], tolerance: float,
) -> dict:
    """Load into `modules` (the re-tuned child's) the blend with the smallest share of the child
    reached by stepping down `shares` from the child's end while `score` (the new task's dev
    score of the weights loaded) stays at least `(1 - tolerance)` of the child's own; the first
    blend below stops the walk, so one lucky score on a small dev split cannot jump far from
    the child. The child itself when none passes. Returns what was tried:
    `{"share": chosen, "scores": [[share, score], ...]}`."""
    child = state_of(modules)
    own = score()
    tried, chosen, kept = [[1.0, round(own, 5)]], 1.0, child
    for share in sorted((s for s in shares if 0 < s < 1), reverse=True):
        load_state(modules, state := blended_state(parent, child, share))
        tried.append([share, round(value := score(), 5)])
        if value < (1 - tolerance) * own:
            break
        chosen, kept = share, state
    load_state(modules, kept)
    return {"share": chosen, "scores": tried}


__all__ = ["blend_with_parent", "blended_state", "load_state", "state_of"]
