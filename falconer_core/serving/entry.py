"""The file MLflow runs to build the model when it loads one ("models from code": no pickled
object in the model folder). Only MLflow's loader should import it."""

import mlflow.models

from falconer_core.serving.model import FalconerModel

mlflow.models.set_model(FalconerModel())
