"""The corpus's unannotated texts, for self-training (`Metamodel.fine_tune(unlabeled_texts=...)`).

A run annotates about 5% of the corpus; the rest is free signal. A seeded random draw of at most
`TrainingSettings.max_unlabeled` of the texts nobody annotated is read from the snapshot (by id,
so the flow never holds the corpus). Held-out texts are left out as well as training ones: a
model trained on its own guesses about the evaluation texts would be graded on them too.
"""

from __future__ import annotations

import random
from collections.abc import Collection

from falconer_core.corpus import CorpusSnapshot
from falconer_core.corpus.loading import TEXT


def unannotated_texts(snapshot: CorpusSnapshot, annotated_ids: Collection[str], cap: int, seed: int) -> list[str]:
    """At most `cap` texts of `snapshot` whose ids are not in `annotated_ids`, drawn by `seed`,
    in corpus order."""
    if cap <= 0:
        return []
    taken = {str(i) for i in annotated_ids}
    ids = [i for i in snapshot.ids() if str(i) not in taken]
    if len(ids) > cap:
        ids = [ids[k] for k in sorted(random.Random(seed).sample(range(len(ids)), cap))]
    if not ids:
        return []
    return [str(t) for t in snapshot.rows_by_id(ids)[TEXT].tolist()]


__all__ = ["unannotated_texts"]
