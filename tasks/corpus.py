"""Reading the corpus."""

from __future__ import annotations

import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from falconer_core import corpus
from tasks.policies import RETRY_DELAYS, retry_transient


@task(name="load-corpus", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=RETRY_DELAYS[:2], retry_condition_fn=retry_transient)
def load_corpus(source: corpus.CorpusSource) -> pd.DataFrame:
    """Read the corpus file or folder; ids and texts become strings, other columns are kept."""
    frame = corpus.load_corpus(source.path, source.text_column, source.id_column)
    get_run_logger().info("loaded %d texts from %s", len(frame), source.path)
    return frame
