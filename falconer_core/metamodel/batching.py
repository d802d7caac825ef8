"""Turning encoded windows into padded tensor batches, for inference and training alike."""

from __future__ import annotations

import torch

from falconer_core.metamodel.prompt import Window


def collate(windows: list[Window], pad_id: int, device) -> dict[str, torch.Tensor]:
    """Pad a batch to its longest window; labels too, when the windows carry them, and the
    parent's probabilities of those that carry them."""
    width = max(len(w.input_ids) for w in windows)
    ids = torch.full((len(windows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(windows), width), dtype=torch.long)
    labels = torch.full((len(windows), width), -100, dtype=torch.long)
    shapes = torch.zeros((len(windows), width), dtype=torch.long)
    for row, w in enumerate(windows):
        ids[row, : len(w.input_ids)] = torch.tensor(w.input_ids)
        mask[row, : len(w.input_ids)] = 1
        if w.labels is not None:
            labels[row, : len(w.labels)] = torch.tensor(w.labels)
        if w.shape_ids is not None:
            shapes[row, : len(w.shape_ids)] = torch.tensor(w.shape_ids)
    batch = {"input_ids": ids.to(device), "attention_mask": mask.to(device)}
    if windows[0].labels is not None:
        batch["labels"] = labels.to(device)
    if windows[0].shape_ids is not None:
        batch["shape_ids"] = shapes.to(device)
    taught = [row for row, w in enumerate(windows) if w.teacher is not None and w.labels is not None]
    if taught:  # replayed windows with the parent's probabilities (`training/distill.py`)
        teacher = torch.zeros((len(windows), width, windows[taught[0]].teacher.shape[-1]))
        for row in taught:
            teacher[row, : len(windows[row].input_ids)] = windows[row].teacher
        teacher_mask = torch.zeros((len(windows), width), dtype=torch.bool)
        teacher_mask[taught] = labels[taught] != -100
        batch["teacher"], batch["teacher_mask"] = teacher.to(device), teacher_mask.to(device)
    return batch


__all__ = ["collate"]
