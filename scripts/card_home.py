"""A Falconer home with one registered version (the packaged base encoder, the demo plan) and its model
card, for `scripts/model_card_screenshot.sh`."""
import sys
from pathlib import Path

from mlflow import MlflowClient

from falconer_core.data import demo_plan
from falconer_core.metamodel import Metamodel
from falconer_core.registry import Registry
from falconer_core.registry.card import write_card
from falconer_core.settings import Settings

home = Path(sys.argv[1])
home.mkdir(parents=True, exist_ok=True)
MlflowClient(tracking_uri=f"sqlite:///{home / 'mlflow.db'}").search_experiments()
checkpoint = Metamodel.from_base().save(home / "work" / "metamodel")
registry = Registry.from_settings(Settings(home=home))
plan = demo_plan()
ref = registry.log_fine_tune(
    checkpoint, model_name="falconer-metamodel", parent=None, base_model="all-MiniLM-L6-v2", plan=plan,
    annotation_set_hash="fb611a6b1084aa14", n_annotations=240, annotator="human", corpus_id="demo-tweets",
    settings={"epochs": 6},
    metrics={"mean_f1": 0.42, "mean_f1_lo": 0.31, "mean_f1_hi": 0.52, "f1.people": 0.36, "f1.people_lo": 0.22,
             "f1.people_hi": 0.49, "f1.mentions_place": 0.48, "f1.mentions_place_lo": 0.35,
             "f1.mentions_place_hi": 0.6, "heldout_texts": 48.0},
)
registry.promote("falconer-metamodel", ref.version, None, {"mean_f1": 0.3})
write_card(registry, ref, cost={"calls": 0, "total_tokens": 0, "cost_usd": 0.0})
print(ref)
