"""A model family is one registration: a toy family defined here, registered with
``register_family``, trains a teacher and distils a student through the ``msd`` command, and its
checkpoints load by name. The built-in families are registered the same way."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from msd_core.cli import main
from msd_core.models.base import MultimodalClassifier
from msd_core.models.registry import ARCHITECTURES, PRESETS, Preset, register_family, unregister_family

TOY_PRESETS = {
    "toy-teacher": Preset("toy-gated", "a toy: each modality pooled, mixed by a learned gate", {"hidden": 32}),
    "toy-student": Preset("toy-gated", "a smaller toy", {"hidden": 8}),
}


class GatedBag(MultimodalClassifier):
    """Each modality pooled to one vector (an image's 4×4 average, a text's mean word embedding, a
    feature vector as it is), projected, weighted by a softmax gate over the modalities present."""

    def __init__(self, spec: dict, modalities, num_labels: int, load_pretrained: bool = True):
        super().__init__(spec, modalities, num_labels)
        h = spec["hidden"]
        self.kinds = {m.name: m.kind for m in modalities}
        self.encoders = nn.ModuleDict({
            m.name: nn.Sequential(nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(48, h)) if m.kind == "image"
            else nn.Embedding(spec["full_vocab_size"], h) if m.kind == "text" else nn.Linear(m.dim, h)
            for m in modalities})
        self.gate = nn.Parameter(torch.zeros(len(modalities)))
        self.head = nn.Linear(h, num_labels)

    def word_embeddings(self) -> nn.Module:
        return next(self.encoders[m] for m, kind in self.kinds.items() if kind == "text")

    def logits(self, batch) -> torch.Tensor:
        weights = torch.softmax(self.gate, 0)
        total = torch.zeros(len(batch), self.head.in_features)
        for i, m in enumerate(self.modality_names):
            if m not in batch.values:
                continue
            x = self.encoders[m](batch.values[m])
            if self.kinds[m] == "text":
                mask = batch.token_mask[m].unsqueeze(-1).to(x.dtype)
                x = (x * mask).sum(1) / mask.sum(1).clamp_min(1.0)
            total = total + weights[i] * x * batch.present[m].unsqueeze(1).to(x.dtype)
        return self.head(torch.tanh(total))


@pytest.fixture
def toy_family():
    register_family("toy-gated", GatedBag, {name: p for name, p in TOY_PRESETS.items()})
    yield
    unregister_family("toy-gated", TOY_PRESETS)


def test_a_family_registered_here_trains_a_teacher_and_distils_a_student(toy_family, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MSD_STUDIO_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("MSD_STUDIO_CACHE", str(tmp_path / "cache"))
    data = ["--data", "synthetic", "--data-option", "n=160", "--max-eval", "32", "--epochs", "2",
            "--batch-size", "16"]
    assert main(["presets"]) == 0
    listed = capsys.readouterr().out
    assert "toy-teacher" in listed and "a toy: each modality pooled" in listed

    teacher = tmp_path / "runs" / "toy-teacher"
    assert main(["train-teacher", "--model", "toy-teacher", *data, "--out", str(teacher)]) == 0
    student = tmp_path / "runs" / "toy-student"
    assert main(["distill", "--teacher", str(teacher), "--model", "toy-student", "--method", "msd", *data,
                 "--out", str(student)]) == 0
    capsys.readouterr()
    for folder, hidden in ((teacher, 32), (student, 8)):
        from msd_core.engine.checkpoint import load_model

        model, meta = load_model(folder / "model.safetensors")  # rebuilt by the architecture's name
        assert isinstance(model, GatedBag) and meta["spec"]["arch"] == "toy-gated"
        assert meta["spec"]["hidden"] == hidden and model.head.in_features == hidden
        metrics = json.loads((folder / "metrics.json").read_text())
        assert 0.0 <= metrics["test"]["full"]["accuracy"] <= 1.0 and len(metrics["history"]) == 2
    assert main(["evaluate", "--checkpoint", str(student), "--data", "synthetic", "--data-option", "n=160",
                 "--max-eval", "32"]) == 0


def test_the_registries_hold_the_built_in_families_in_order_and_refuse_a_name_twice(toy_family):
    assert PRESETS.names()[:7] == ["minilm-teacher", "hf-bert-teacher", "teacher-small", "student-small",
                                   "student-two-tower", "hf", "hf-pair"]
    assert {"single-stream", "two-tower", "hf-dual", "hf-vilt", "hf-pair", "toy-gated"} <= set(ARCHITECTURES)
    with pytest.raises(ValueError, match="architecture 'toy-gated' is registered twice"):
        register_family("toy-gated", GatedBag, {})
    from msd_core.errors import ConfigError
    from msd_core.models.presets import resolve_spec

    with pytest.raises(ConfigError, match="unknown model preset 'toy-large'; choose one of minilm-teacher"):
        resolve_spec("toy-large")
