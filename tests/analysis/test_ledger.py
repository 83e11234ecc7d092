"""The modality ledger (docs/METHOD.md §14): perceptual score, EMAP gap and collapse flags on
hand-made models with known answers, and the whole ledger of a tiny teacher and student."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from msd_core.analysis.catalog import find_students
from msd_core.analysis.ledger import (additive_projection, collapse_flags, emap_gap, flag_collapse,
                                      modality_ledger, perceptual_score, reliance_frame, reliance_shares)
from msd_core.config import DataConfig
from msd_core.data import Collator, load_split
from msd_core.data.example import Example, ModalitySpec, MultimodalDataset
from msd_core.engine.checkpoint import save_model
from msd_core.errors import ConfigError
from tests.conftest import tiny_model


def xor_data(target: str, n: int = 64) -> MultimodalDataset:
    """Image: a dark or bright square (bit a); text: "alpha" or "bravo" (bit b); the target is
    ``a`` (``target="image"``) or ``a xor b``."""
    examples = []
    for i in range(n):
        a, b = i % 2, (i // 2) % 2
        image = np.full((8, 8, 3), 200 if a else 50, dtype=np.uint8)
        text = ("look at " if i % 3 else "") + ("bravo" if b else "alpha")
        examples.append(Example(str(i), {"image": image, "text": text}, a if target == "image" else a ^ b))
    return MultimodalDataset("xor", "val", [ModalitySpec("image", "image"), ModalitySpec("text", "text")],
                             ["zero", "one"], examples)


class HandMade(nn.Module):
    """``s_a`` = mean normalised pixel (its sign is bit a), ``s_b`` = ±1 from the word (bit b);
    ``kind`` picks the logits: ``image`` [−s_a, s_a]; ``additive`` g(image) + h(text);
    ``product`` [0, −s_a·s_b] (a xor b, an interaction no additive model has)."""

    def __init__(self, kind: str, tokenizer):
        super().__init__()
        self.kind = kind
        lookup = torch.zeros(tokenizer.vocab_size)
        alpha, bravo = tokenizer.convert_tokens_to_ids(["alpha", "bravo"])
        lookup[alpha], lookup[bravo] = -1.0, 1.0
        self.register_buffer("lookup", lookup)
        torch.manual_seed(0)
        self.g, self.h = torch.randn(2, 2), torch.randn(2, 2)

    def forward(self, batch):
        s_a = batch.values["image"].mean((1, 2, 3))
        s_b = (self.lookup[batch.values["text"]] * batch.token_mask["text"]).sum(1)
        if self.kind == "image":
            return torch.stack([-s_a, s_a], 1) * 3
        if self.kind == "additive":
            return torch.stack([s_a, s_a ** 2], 1) @ self.g + torch.stack([s_b, s_b.abs() * 0.3], 1) @ self.h
        return torch.stack([torch.zeros_like(s_a), -s_a * s_b], 1) * 3

    def forward_views(self, batch, views):
        assert all(set(keep) == set(batch.modalities) for keep in views.values())
        return {name: self(batch) for name in views}


def test_perceptual_score_is_zero_for_an_ignored_modality_and_positive_for_the_used_one():
    ds = xor_data("image")
    collator = Collator(ds.modalities)
    model = HandMade("image", collator.tokenizer)
    perc = perceptual_score(model, ds, collator, "cpu", permutations=3, seed=0)
    assert perc.metric == 1.0
    assert perc.score["text"] == 0.0 and perc.permuted_metric["text"] == [1.0, 1.0, 1.0]
    assert torch.equal(perc.loss_increase["text"], torch.zeros(len(ds)))
    assert perc.score["image"] > 0.25  # permuted images are right about half the time
    assert perc.loss_increase["image"].mean() > 0 and len(perc.permuted_metric["image"]) == 3
    again = perceptual_score(model, ds, collator, "cpu", permutations=3, seed=0)
    assert again.score == perc.score  # seeded permutations
    with pytest.raises(ConfigError):
        perceptual_score(model, ds, collator, "cpu", permutations=0)


def test_emap_gap_is_zero_for_an_additive_model_and_positive_with_an_interaction():
    ds = xor_data("xor")
    collator = Collator(ds.modalities)
    additive = emap_gap(HandMade("additive", collator.tokenizer), ds, collator, "cpu", n=32, seed=0)
    assert len(additive.rows) == 32
    torch.testing.assert_close(additive.projected, additive.logits, rtol=0, atol=1e-5)
    assert abs(additive.gap) <= 1e-5
    product = emap_gap(HandMade("product", collator.tokenizer), ds, collator, "cpu", n=32, seed=0)
    assert product.metric == 1.0 and product.gap > 0.3  # the projection cannot express a xor b
    f = torch.randn(5, 5, 3)
    proj = additive_projection(f)
    torch.testing.assert_close(additive_projection(proj), proj)  # a projection: applying it twice changes nothing


def test_emap_says_it_needs_two_modalities(synthetic3):
    with pytest.raises(ConfigError, match="two modalities"):
        emap_gap(tiny_model(synthetic3), synthetic3, Collator(synthetic3.modalities), "cpu", n=4)


def test_collapse_flags_on_hand_built_saliency():
    teacher = {"image": torch.tensor([2.0, 0.1, 1.0, -1.0]), "text": torch.tensor([0.0, 2.0, 1.0, -1.0])}
    student = {"image": torch.tensor([0.0, 1.0, 1.0, 0.0]), "text": torch.tensor([1.0, 0.0, 1.0, 0.0])}
    shares = reliance_shares(teacher)
    torch.testing.assert_close(shares["image"], torch.tensor([1.0, 0.1 / 2.1, 0.5, 0.0]))
    flags = collapse_flags(teacher, student, relies=0.5, ignores=0.1)
    assert flags["image"].tolist() == [True, False, False, False]  # teacher on image, student on text
    assert flags["text"].tolist() == [False, True, False, False]
    frame = reliance_frame(list("abcd"), ["x"] * 4, teacher, student, relies=0.5, ignores=0.1, student="s")
    assert sorted(map(tuple, frame[frame["collapsed"]][["id", "modality"]].to_numpy())) == [("a", "image"),
                                                                                         ("b", "text")]
    stricter = flag_collapse(frame, relies=0.99, ignores=0.05)  # new thresholds, saliency not recomputed
    assert stricter[stricter["collapsed"]][["id", "modality"]].values.tolist() == [["a", "image"]]
    assert frame["collapsed"].sum() == 2  # b's teacher text share is 2/2.1 < 0.99
    with pytest.raises(ConfigError):
        collapse_flags(teacher, student, relies=0.1, ignores=0.5)


def test_ledger_of_a_teacher_and_its_copy_as_student(tmp_path, monkeypatch):
    """A student that is the teacher's own weights: the same rows, no collapse; swap removal
    exercises the student taking the teacher cache's partners."""
    monkeypatch.setenv("MSD_STUDIO_CACHE", str(tmp_path / "cache"))
    cfg = DataConfig("synthetic", options={"n": 64})
    ds = load_split(cfg, "train")
    model = tiny_model(ds)
    for folder in ("teacher", "runs/copy", "runs/other"):
        (tmp_path / folder).mkdir(parents=True)
        save_model(tmp_path / folder / "model.safetensors", model, ds.labels)
    run = {"kind": "student", "status": "finished",
           "config": {"data": json.loads(cfg.to_json()),
                      "teacher": str(tmp_path / "teacher"), "distill": {"method": "kd"}}}
    (tmp_path / "runs/copy/run.json").write_text(json.dumps(run))
    run["config"]["data"] = {**run["config"]["data"], "options": {"n": 65}}
    (tmp_path / "runs/other/run.json").write_text(json.dumps(run))
    # both fit the teacher's data (its labels and modalities); the ledger runs them on the teacher's examples
    found = find_students(ds.labels, ds.modality_names, "synthetic", tmp_path / "runs", teacher=tmp_path / "teacher")
    assert [(Path(s["path"]).name, s["of_teacher"], s["method"]) for s in found] == [("copy", True, "kd"),
                                                                                      ("other", True, "kd")]

    steps = []
    ledger = modality_ledger(tmp_path / "teacher", cfg, ds, [found[0]["path"]], removal="swap", permutations=2,
                             emap_examples=6, max_examples=20, progress=lambda f, text: steps.append(f))
    table = ledger.table.set_index("model")
    assert list(table.index) == ["teacher", "copy"] and steps[-1] == 1.0
    for col in ["metric", "saliency image", "shapley text", "interaction image×text", "perceptual image",
                "EMAP gap", "EMAP metric"]:
        assert np.isfinite(table[col]).all(), col
        assert table.loc["teacher", col] == pytest.approx(table.loc["copy", col], abs=1e-4), col
    assert len(ledger.examples) == 2 * 20 * 2 and not ledger.collapsed.shape[0]
    assert set(ledger.reliance["student"]) == {"copy"} and len(ledger.reliance) == 20 * 2


def test_ledger_with_three_modalities_says_emap_needs_two(tmp_path, monkeypatch):
    monkeypatch.setenv("MSD_STUDIO_CACHE", str(tmp_path / "cache"))
    cfg = DataConfig("synthetic", options={"n": 32, "with_vector": True})
    ds = load_split(cfg, "train")
    save_model(tmp_path / "model.safetensors", tiny_model(ds), ds.labels)
    ledger = modality_ledger(tmp_path, cfg, ds, permutations=1, max_examples=8)
    row = ledger.table.iloc[0]
    assert np.isnan(row["EMAP gap"]) and "two modalities" in ledger.notes[0]
    assert np.isfinite(row["perceptual tabular"]) and "interaction text×tabular" in ledger.table
    assert ledger.reliance.empty and len(ledger.examples) == 8 * 3
