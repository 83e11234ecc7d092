import numpy as np
import torch

from msd_core.engine.attributions import explain
from msd_core.data import Collator
from tests.conftest import tiny_model


def test_attributions_have_the_right_shapes_and_satisfy_completeness(synthetic3):
    model = tiny_model(synthetic3)
    batch = Collator(synthetic3.modalities)(synthetic3.examples[:1])
    out = explain(model, batch, n_steps=64)
    assert out["image"].shape == (64, 64) and np.isfinite(out["image"]).all()
    tokens = [t for t, _ in out["text"]]
    assert tokens[0] == "[CLS]" and tokens[-1] == "[SEP]" and len(tokens) == int(batch.token_mask["text"].sum())
    # IG completeness: attributions sum to f(input) − f(baseline) for the target logit
    with torch.no_grad():
        full = model(batch)[0, out["target"]]
        base_batch = Collator(synthetic3.modalities)(synthetic3.examples[:1])
        base_batch.values = {**base_batch.values, "image": torch.zeros_like(batch.values["image"])}
        base = model(base_batch)[0, out["target"]]
    assert abs(out["image"].sum() - (full - base).item()) < 0.05 * max(1.0, abs((full - base).item()))


def test_occlusion_map_is_constant_on_each_patch(synthetic3):
    model = tiny_model(synthetic3)
    batch = Collator(synthetic3.modalities)(synthetic3.examples[:1])
    img = explain(model, batch, image_method="ablation")["image"]
    assert img.shape == (64, 64)
    patch = img[:8, :8]
    assert np.allclose(patch, patch[0, 0])
