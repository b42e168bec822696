"""The Glue scoring function: predict every catalogue item's outcome, one Arrow batch at a time.

``score(batch, model)`` is what ``steps.backends.glue.batch_infer`` calls for each batch, in a Glue job on
the aws profile and over local Arrow batches on the embedded default, with the model that
``model/train.py`` saved (loaded once per worker by the backend). It is a plain function of a
DataFrame and an estimator, so it runs anywhere and is tested on its own. It needs only pandas,
numpy and scikit-learn, which Glue's Python ships.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported when scoring, not when the pipeline module is loaded for another task
    import pandas as pd

#: Installed on the Glue workers (``--additional-python-modules``): the scikit-learn of the
#: SageMaker training container (framework version 1.2-1), so the pickled model loads as trained.
glue_python_modules = ["scikit-learn==1.2.1"]

#: Columns of every scored batch, in order; the Athena SQL reads these names.
OUTPUT_COLUMNS = ("snapshot_date", "recipe_id", "cuisine", "predicted_class", "confidence")


def _estimator(model: Any) -> Any:
    """The estimator itself; a path to a model folder or ``model.joblib`` is loaded (handy in a
    notebook; the backends pass the loaded model)."""
    if isinstance(model, str | os.PathLike):
        import joblib

        path = os.fspath(model)
        return joblib.load(os.path.join(path, "model.joblib") if os.path.isdir(path) else path)
    return model


def score(batch: pd.DataFrame, model: Any) -> pd.DataFrame:
    """Predicted class and its probability for every row of ``batch``.

    The model selects its own feature columns by name, so whole item rows go in. Rows keep
    their order and identity (``recipe_id``); an empty batch gives an empty frame with the same
    columns, so a partition without rows does not change the output's schema.
    """
    import numpy as np
    import pandas as pd

    estimator = _estimator(model)
    passthrough = {name: batch[name].to_numpy() for name in ("snapshot_date", "recipe_id") if name in batch}
    cuisine = batch["cuisine"].astype("string").to_numpy() if "cuisine" in batch else None
    probabilities = np.zeros((0, len(estimator.classes_))) if batch.empty else estimator.predict_proba(batch)
    best = np.argmax(probabilities, axis=1)
    classes = np.asarray(estimator.classes_).astype(str)
    return pd.DataFrame(
        {
            "snapshot_date": passthrough.get("snapshot_date"),
            "recipe_id": passthrough.get("recipe_id"),
            "cuisine": cuisine,
            "predicted_class": pd.array(classes[best], dtype="string"),
            "confidence": probabilities[np.arange(len(best)), best].astype(np.float32),
        },
        columns=list(OUTPUT_COLUMNS),
    )
