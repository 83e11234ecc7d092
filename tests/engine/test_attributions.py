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


def test_attributions_kept_on_disk_equal_a_fresh_computation_and_follow_the_model(tmp_path, monkeypatch):
    from msd_core.config import DataConfig
    from msd_core.data import load_split
    from msd_core.engine import attribution_cache
    from msd_core.engine.checkpoint import save_model

    monkeypatch.setenv("MSD_STUDIO_CACHE", str(tmp_path / "cache"))
    cfg = DataConfig("synthetic", options={"n": 32})
    ds = load_split(cfg, "val")
    model = tiny_model(ds)
    save_model(tmp_path / "m" / "model.safetensors", model, ds.labels)
    first = attribution_cache.cached_explain(tmp_path / "m", cfg, ds, 3, "ig")
    files = list((tmp_path / "cache" / "attributions").glob("*.json"))
    assert len(files) == 1

    def never(*a, **k):
        raise AssertionError("computed again instead of read from disk")

    monkeypatch.setattr(attribution_cache, "explain", never)
    again = attribution_cache.cached_explain(tmp_path / "m", cfg, ds, 3, "ig")
    assert again["target"] == first["target"] and np.array_equal(again["image"], first["image"])
    assert again["text"] == first["text"]
    monkeypatch.undo()
    monkeypatch.setenv("MSD_STUDIO_CACHE", str(tmp_path / "cache"))
    with torch.no_grad():  # new weights in the same folder: a new key, computed again
        next(model.parameters()).add_(1.0)
    save_model(tmp_path / "m" / "model.safetensors", model, ds.labels)
    attribution_cache.cached_explain(tmp_path / "m", cfg, ds, 3, "ig")
    assert len(list((tmp_path / "cache" / "attributions").glob("*.json"))) == 2
