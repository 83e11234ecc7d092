"""Modality saliency: equal to captum's FeatureAblation, Shapley identities, the cache."""

import pytest
import torch
import torch.nn.functional as F
from captum.attr import FeatureAblation

from msd_core.engine.checkpoint import save_model
from msd_core.config import DataConfig
from msd_core.data import Collator, load_split, make_view, named_views
from msd_core.method.saliency import (dominance_share, interactions, modality_saliency, population_saliency,
                               shapley_values, subset_losses)
from msd_core.engine.predict import predict_views
from msd_core.engine.teacher_cache import TeacherLogits, teacher_logits
from msd_core.method.view_logits import dense
from tests.conftest import tiny_model


def cache_for(model, ds, removal, subsets=False):
    collator = Collator(ds.modalities)
    logits, targets = predict_views(model, ds, collator, "cpu",
                                    named_views(ds.modality_names, without=True, subsets=subsets),
                                    removal=removal, batch_size=len(ds))
    return TeacherLogits([e.id for e in ds.examples], targets, logits, ds.labels, ds.modality_names, removal)


@pytest.fixture(scope="module")
def small3():
    return load_split(DataConfig("synthetic", options={"n": 16, "with_vector": True}), "train")


def test_drop_saliency_equals_captum_feature_ablation(small3):
    model = tiny_model(small3)
    batch = Collator(small3.modalities)(small3.examples)
    mods = batch.modalities

    def loss_with_presence(*presence):
        b = make_view(batch, mods)
        b.present = {m: p[:, 0] > 0.5 for m, p in zip(mods, presence)}
        return F.cross_entropy(model(b), batch.targets, reduction="none")

    ones = tuple(torch.ones(len(batch), 1) for _ in mods)
    masks = tuple(torch.tensor([[i]]) for i in range(len(mods)))
    with torch.no_grad():
        attr = FeatureAblation(loss_with_presence).attribute(ones, baselines=(0.0,) * len(mods), feature_mask=masks)
    sal = modality_saliency(cache_for(model, small3, "drop"), "loss-drop")
    for m, a in zip(mods, attr):  # captum: f(x) − f(x ablated) = −(loss-drop saliency)
        torch.testing.assert_close(sal[m], -a[:, 0], rtol=0, atol=1e-5)


def test_mask_saliency_equals_captum_feature_ablation(small3):
    model = tiny_model(small3)
    batch = Collator(small3.modalities)(small3.examples)
    blank = batch.token_mask["text"] & ~batch.special_mask["text"]
    text_baseline = torch.where(blank, batch.mask_token_id, batch.values["text"]).float()

    def loss_of(image, text, tabular):
        b = make_view(batch, batch.modalities)
        b.values = {"image": image, "text": text.round().long(), "tabular": tabular}
        return F.cross_entropy(model(b), batch.targets, reduction="none")

    inputs = (batch.values["image"], batch.values["text"].float(), batch.values["tabular"])
    baselines = (0.0, text_baseline, 0.0)
    masks = (torch.zeros(1, 1, 1, 1, dtype=torch.long), torch.ones(1, 1, dtype=torch.long),
             torch.full((1, 1), 2, dtype=torch.long))
    with torch.no_grad():
        attr = FeatureAblation(loss_of).attribute(inputs, baselines=baselines, feature_mask=masks)
    sal = modality_saliency(cache_for(model, small3, "mask"), "loss-drop")
    for m, a in zip(["image", "text", "tabular"], attr):
        per_example = a.reshape(len(batch), -1)[:, 0]
        torch.testing.assert_close(sal[m], -per_example, rtol=0, atol=1e-5)


def test_measures_on_known_logits():
    full = torch.tensor([[3.0, 0.0], [0.0, 3.0]])
    without_a = torch.tensor([[0.0, 0.0], [0.0, 3.0]])  # removing a hurts example 0 only
    cache = TeacherLogits(["0", "1"], torch.tensor([0, 1]), {"full": full, "without:a": without_a,
                          "without:b": full.clone()}, ["x", "y"], ["a", "b"], "drop")
    ld = modality_saliency(cache, "loss-drop")
    assert ld["a"][0] == pytest.approx(F.cross_entropy(without_a[:1], torch.tensor([0])).item()
                                       - F.cross_entropy(full[:1], torch.tensor([0])).item())
    assert ld["a"][1] == 0 and ld["b"].abs().max() == 0
    assert modality_saliency(cache, "kl-shift")["a"][0] > 0
    cd = modality_saliency(cache, "confidence-drop")["a"][0]
    assert cd == pytest.approx(torch.sigmoid(torch.tensor(3.0)).item() - 0.5)
    assert population_saliency(ld)["a"] == pytest.approx(ld["a"].mean().item())
    # example 0: a dominates; example 1: a tie at 0, which argmax gives to the first modality
    assert dominance_share(ld) == {"a": 1.0, "b": 0.0}
    assert dominance_share({"a": torch.tensor([0.1, -1.0]), "b": torch.tensor([0.0, 2.0])}) == {"a": 0.5, "b": 0.5}


def test_shapley_values_are_efficient_and_interaction_matches_definition(small3):
    model = tiny_model(small3)
    cache = cache_for(model, small3, "drop", subsets=True)
    phi = shapley_values(cache)
    loss = subset_losses(cache)
    everything = frozenset(small3.modality_names)
    torch.testing.assert_close(sum(phi.values()), loss[frozenset()] - loss[everything], rtol=0, atol=1e-5)
    inter = interactions(cache)
    assert set(inter) == {"image×text", "image×tabular", "text×tabular"}
    a, b = frozenset({"image"}), frozenset({"text"})
    torch.testing.assert_close(inter["image×text"], loss[frozenset()] - loss[a] - loss[b] + loss[a | b])


def test_cache_is_hit_the_second_time_and_invalidated_by_a_new_teacher(small3, tmp_path, monkeypatch):
    monkeypatch.setenv("MSD_STUDIO_CACHE", str(tmp_path / "cache"))
    model = tiny_model(small3)
    ckpt = tmp_path / "teacher.safetensors"
    save_model(ckpt, model, small3.labels)
    cfg = DataConfig("synthetic", options={"n": 16, "with_vector": True})
    first = teacher_logits(ckpt, cfg, small3, device="cpu")
    second = teacher_logits(ckpt, cfg, small3, device="cpu")
    assert not first.hit and second.hit
    for k in first.logits:
        assert torch.equal(dense(first.logits[k]), dense(second.logits[k]))
    assert teacher_logits(ckpt, cfg, small3, removal="mask", device="cpu").hit is False
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01)
    save_model(ckpt, model, small3.labels)
    third = teacher_logits(ckpt, cfg, small3, device="cpu")
    assert not third.hit and not torch.equal(dense(third.logits["full"]), dense(first.logits["full"]))


@pytest.mark.slow
def test_saliency_finds_the_modality_each_example_truly_needs(tmp_path, monkeypatch):
    """A briefly trained tiny teacher on synthetic image-only / text-only examples: the dominant
    modality by loss-drop saliency matches the ground-truth reliance for most held-out examples."""
    from msd_core.config import ModelConfig, TeacherRunConfig, TrainConfig
    from msd_core.method.saliency import dominant_modality
    from msd_core.engine.teacher import train_teacher

    monkeypatch.setenv("MSD_STUDIO_CACHE", str(tmp_path / "cache"))
    data = DataConfig("synthetic", options={"n": 640, "mixture": {"image-only": 1, "text-only": 1}},
                      max_eval_examples=160)
    model = ModelConfig("student-small", {"hidden": 64, "heads": 2, "layers": 1, "intermediate": 128, "dropout": 0.0})
    cfg = TeacherRunConfig(data=data, model=model, out_dir=str(tmp_path / "t"),
                           train=TrainConfig(epochs=4, batch_size=32, lr=3e-3, modality_dropout=0.3))
    train_teacher(cfg, progress=False)
    ds = load_split(data, "val")
    dom = dominant_modality(modality_saliency(teacher_logits(tmp_path / "t", data, ds, device="cpu")))
    truth = [e.meta["reliance"].removesuffix("-only") for e in ds.examples]
    agreement = sum(d == t for d, t in zip(dom, truth)) / len(ds)
    assert agreement > 0.7, agreement


def test_building_the_cache_leaves_the_callers_random_state_alone(small3, tmp_path, monkeypatch):
    """A miss builds the teacher, whose initialisation draws random numbers; the caller's next draws
    (in distill(), the ``learned`` weight network's initialisation) must not depend on that."""
    monkeypatch.setenv("MSD_STUDIO_CACHE", str(tmp_path / "cache"))
    ckpt = tmp_path / "teacher.safetensors"
    save_model(ckpt, tiny_model(small3), small3.labels)
    cfg = DataConfig("synthetic", options={"n": 16, "with_vector": True})
    draws = []
    for expect_hit in (False, True):
        torch.manual_seed(123)
        assert teacher_logits(ckpt, cfg, small3, removal="mask", device="cpu").hit is expect_hit
        draws.append(torch.rand(4))
    torch.manual_seed(123)
    torch.testing.assert_close(draws[0], torch.rand(4))
    torch.testing.assert_close(draws[1], draws[0])


def test_walking_the_cache_in_small_blocks_of_only_the_views_needed_gives_one_pass(small3, tmp_path, monkeypatch):
    """Saliency, Shapley values and interactions walk the cache a block of rows at a time, with
    blocks sized by ``CHUNK_BYTES`` and only the views each measure reads: blocks of 7 rows give
    the numbers of one pass over in-memory tensors, and no block holds a view it does not use."""
    from dataclasses import replace

    from msd_core.method import view_logits
    from msd_core.method.saliency import MEASURES, shapley_values

    monkeypatch.setenv("MSD_STUDIO_CACHE", str(tmp_path / "cache"))
    ds = small3
    ckpt = tmp_path / "teacher.safetensors"
    save_model(ckpt, tiny_model(ds), ds.labels)
    cache = teacher_logits(ckpt, DataConfig("synthetic", options={"n": 16, "with_vector": True}), ds, subsets=True,
                           device="cpu")  # read from disk
    whole = replace(cache, targets=dense(cache.targets), logits={k: dense(v) for k, v in cache.logits.items()})
    want = {measure: modality_saliency(whole, measure) for measure in MEASURES.names()}
    want_shapley, want_interactions = shapley_values(whole), interactions(whole)
    assert view_logits.chunk_rows(len(ds.labels), 3) == view_logits.CHUNK_ROWS  # small: one block
    monkeypatch.setattr(view_logits, "CHUNK_BYTES", 7 * 4 * len(ds.labels) * 3)  # 7 rows of 3 views
    held = []
    chunks = view_logits.TeacherLogits.chunks
    monkeypatch.setattr(view_logits.TeacherLogits, "chunks",
                        lambda self, size=None, views=None: (held.append(c.logits.keys()) or c
                                                             for c in chunks(self, size, views)))
    for measure in MEASURES.names():
        held.clear()
        got = modality_saliency(cache, measure)
        assert all(torch.equal(got[m], want[measure][m]) for m in ds.modality_names)
        assert len(held) > 1 and all(set(h) == {"full", *(f"without:{m}" for m in ds.modality_names)} for h in held)
    held.clear()
    got_shapley, got_interactions = shapley_values(cache), interactions(cache)
    subsets = 2 ** len(ds.modality_names) - 1  # one view per non-empty subset of the modalities, each once
    assert len(held) > 1 and all(len(h) == subsets for h in held)
    for m in ds.modality_names:
        torch.testing.assert_close(got_shapley[m], want_shapley[m], rtol=0, atol=1e-6)
    for k in want_interactions:
        torch.testing.assert_close(got_interactions[k], want_interactions[k], rtol=0, atol=1e-6)
