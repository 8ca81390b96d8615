"""A saved checkpoint's test metrics recomputed from the checkpoint alone (``kdreg evaluate``)."""
from __future__ import annotations

import numpy as np

from kdreg.data import Dataset, Standardizer
from kdreg.inputs import model_inputs
from kdreg.io import load_checkpoint
from kdreg.metrics import task_metrics
from kdreg.models import TwoHeadOutput, create_model, select_head
from kdreg.trainer import predict


def evaluate_checkpoint(checkpoint, data) -> dict:
    """The run's identity and its test metrics on the dataset file ``data``: every saved state (cross-fit
    teachers: their mean) predicts the test inputs, in original label units."""
    ckpt = load_checkpoint(checkpoint, required=("run", "config", "model_config", "states", "y_scaler", "x_scaler"))
    ds = Dataset.load(data)
    if ckpt["run"]["dataset"] != ds.name:
        raise ValueError(f"{checkpoint} was trained on {ckpt['run']['dataset']!r}, not on {ds.name!r} ({data})")
    y_scaler = Standardizer.from_dict(ckpt["y_scaler"])
    x_scaler = Standardizer.from_dict(ckpt["x_scaler"]) if ckpt["x_scaler"] is not None else None
    x = model_inputs(ds.x_test, ds.e_test, x_scaler, "cpu")
    preds = []
    for state in ckpt["states"]:
        model = create_model(ckpt["model_config"])
        model.load_state_dict(state)
        preds.append(predict(model, x))
    if isinstance(preds[0], TwoHeadOutput):
        out = TwoHeadOutput(*(y_scaler.inverse(np.mean([p[h] for p in preds], axis=0)) for h in range(2)))
        # auto: the head chosen on the validation split when the student was trained
        pred = select_head(out, ckpt.get("head") or ckpt["config"].get("predict_head", "label"))
    else:
        pred = y_scaler.inverse(np.mean(preds, axis=0))
    return {**ckpt["run"], **task_metrics(pred, ds.y_test, ds.task)}
