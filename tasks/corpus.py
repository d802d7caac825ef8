"""Snapshotting the corpus: streamed once per file version, then found by its fingerprint."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from falconer_core.corpus import CorpusSnapshot, CorpusSource, snapshot_corpus
from falconer_core.settings import Settings
from tasks.policies import RETRY_DELAYS, retry_transient


@task(name="snapshot-corpus", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=RETRY_DELAYS[:2], retry_condition_fn=retry_transient)
def snapshot(source: CorpusSource) -> CorpusSnapshot:
    """The corpus as a Parquet snapshot under the Falconer home (made now if this version of the
    file has none); stages read from it what they need, never the whole corpus."""
    found = snapshot_corpus(source, Settings().corpora_dir)
    get_run_logger().info("corpus %s: %d texts from %s (snapshot %s)", found.corpus_id, found.n_texts, source.path, found.path)
    return found
