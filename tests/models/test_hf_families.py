"""Hugging Face model families as classifiers: each view is independent of what it removes, modality
ablation equals captum's FeatureAblation, inputs are prepared as each model's own processor prepares
them, ViLT's adapter equals ViltModel, and checkpoints round-trip with their processor."""

from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from captum.attr import FeatureAblation
from torch import nn

from msd_core.config import DataConfig
from msd_core.data import Collator, load_split, make_view, named_views
from msd_core.engine.checkpoint import load_model, save_model
from msd_core.engine.predict import predict_views
from msd_core.errors import CheckpointError
from msd_core.method.saliency import modality_saliency
from msd_core.method.view_logits import TeacherLogits
from msd_core.models import create_model
from tests.hf_fixtures import FAMILIES

DATA = DataConfig("synthetic", options={"n": 16})


@pytest.fixture(scope="module")
def ds():
    return load_split(DATA, "train")


def build(ds, hf_families, family):
    preset, overrides = hf_families[family]
    torch.manual_seed(0)
    return create_model(preset, ds.modalities, len(ds.labels), overrides=overrides).eval()


def other_content(batch, m):
    """``batch`` with modality ``m`` taken from other examples (rolled by one)."""
    perm = torch.roll(torch.arange(len(batch)), 1)
    b = replace(batch, values={**batch.values, m: batch.values[m][perm]})
    if m in batch.token_mask:
        b = replace(b, token_mask={**batch.token_mask, m: batch.token_mask[m][perm]},
                    special_mask={**batch.special_mask, m: batch.special_mask[m][perm]})
    return b


@pytest.mark.parametrize("family", FAMILIES)
def test_a_view_does_not_depend_on_the_removed_modality(ds, hf_families, family):
    model = build(ds, hf_families, family)
    batch = Collator.for_model(ds, DATA, model)(ds.examples[:6])
    views = named_views(ds.modality_names, without=True)
    with torch.no_grad():
        base = model.forward_views(batch, views)
        for m in ds.modality_names:
            changed = model.forward_views(other_content(batch, m), views)
            torch.testing.assert_close(changed[f"without:{m}"], base[f"without:{m}"], rtol=0, atol=1e-5)
            assert not torch.allclose(changed["full"], base["full"], atol=1e-5)  # the content does matter
            # modality dropout (m absent from every example) and the drop view through forward
            dropped = replace(batch, present={**batch.present, m: torch.zeros(len(batch), dtype=torch.bool)})
            torch.testing.assert_close(model(dropped), base[f"without:{m}"], rtol=0, atol=1e-5)
            view = make_view(batch, [x for x in ds.modality_names if x != m])
            torch.testing.assert_close(model(view), base[f"without:{m}"], rtol=0, atol=1e-5)


@pytest.mark.parametrize("family", FAMILIES)
def test_drop_saliency_equals_captum_feature_ablation(ds, hf_families, family):
    model = build(ds, hf_families, family)
    collator = Collator.for_model(ds, DATA, model)
    batch = collator(ds.examples)
    mods = batch.modalities

    def loss_with_presence(*presence):
        b = replace(batch, present={m: p[:, 0] > 0.5 for m, p in zip(mods, presence)})
        return F.cross_entropy(model(b), batch.targets, reduction="none")

    ones = tuple(torch.ones(len(batch), 1) for _ in mods)
    masks = tuple(torch.tensor([[i]]) for i in range(len(mods)))
    with torch.no_grad():
        attr = FeatureAblation(loss_with_presence).attribute(ones, baselines=(0.0,) * len(mods), feature_mask=masks)
    logits, targets = predict_views(model, ds, collator, "cpu", named_views(mods, without=True), batch_size=len(ds))
    sal = modality_saliency(TeacherLogits([e.id for e in ds.examples], targets, logits, ds.labels, mods, "drop"),
                            "loss-drop")
    for m, a in zip(mods, attr):  # captum: f(x) − f(x ablated) = −(loss-drop saliency)
        torch.testing.assert_close(sal[m], -a[:, 0], rtol=0, atol=1e-5)
        assert a.abs().max() > 0


def test_inputs_are_prepared_as_the_models_processor_prepares_them(ds, hf_families):
    from transformers import AutoProcessor

    model = build(ds, hf_families, "clip")
    folder = hf_families["clip"][1]["pretrained"]
    processor = AutoProcessor.from_pretrained(folder, local_files_only=True)
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)  # the model's size: no resize on either side
    from msd_core.data.example import Example

    collator = Collator.for_model(ds, DATA, model)
    batch = collator([Example("x", {"image": image, "text": "a red square?"}, 0)])
    ref = processor(images=image, text=["a red square?"], return_tensors="pt")
    assert collator.image_size == 32 and collator.max_text_len == min(DATA.max_text_len, 40)
    torch.testing.assert_close(batch.values["image"], ref["pixel_values"], rtol=0, atol=1e-5)
    assert batch.values["text"].tolist() == ref["input_ids"].tolist()


def test_vilt_adapter_equals_vilt_model_on_the_full_view(ds, hf_families):
    model = build(ds, hf_families, "vilt")
    batch = Collator.for_model(ds, DATA, model)(ds.examples[:4])
    model.head = nn.Identity()  # read the pooled output
    with torch.no_grad():
        ours = model(batch)
        ref = model.backbone(input_ids=batch.values["text"], attention_mask=batch.token_mask["text"].long(),
                             pixel_values=batch.values["image"]).pooler_output
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-5)


@pytest.mark.parametrize("family", FAMILIES)
def test_checkpoint_round_trip_keeps_the_processor(ds, hf_families, family, tmp_path):
    model = build(ds, hf_families, family)
    save_model(tmp_path / "model.safetensors", model, ds.labels)
    model.save_processor(tmp_path)
    loaded, meta = load_model(tmp_path / "model.safetensors")
    collator = Collator.for_model(ds, DATA, loaded)
    batch = collator(ds.examples[:4])
    with torch.no_grad():
        torch.testing.assert_close(loaded(batch), model(batch), rtol=0, atol=1e-6)
    assert (tmp_path / "processor").is_dir() and not list((tmp_path / "processor").rglob("*.safetensors"))
    import shutil

    shutil.rmtree(tmp_path / "processor")
    loaded, _ = load_model(tmp_path / "model.safetensors")
    with pytest.raises(CheckpointError, match="processor.*missing"):
        Collator.for_model(ds, DATA, loaded)


@pytest.mark.parametrize("family", FAMILIES)
def test_token_attributions_add_up_to_the_logit_change(ds, hf_families, family):
    """Integrated gradients' completeness: the tokens' scores sum to the target logit on the text
    minus on its baseline (every real token replaced by padding), through each family's own word
    embeddings."""
    from msd_core.engine.attributions import text_attribution

    model = build(ds, hf_families, family)
    collator = Collator.for_model(ds, DATA, model)
    batch = collator(ds.examples[:1])
    ids, real = batch.values["text"], batch.token_mask["text"]
    pad = torch.full_like(ids, collator.tokenizer.pad_token_id)
    baseline = torch.where(batch.special_mask["text"] | ~real, ids, pad)
    with torch.no_grad():
        change = (model(batch)[0, 1] - model(replace(batch, values={**batch.values, "text": baseline}))[0, 1]).item()
    scores = [s for _, s in text_attribution(model, batch, 1, collator.tokenizer, n_steps=64)]
    assert abs(change) > 1e-3
    assert sum(scores) == pytest.approx(change, rel=0.05, abs=1e-4)


def test_mask_removal_of_text_is_refused_without_a_mask_token(ds, hf_families):
    from msd_core.errors import ConfigError

    model = build(ds, hf_families, "clip")
    batch = Collator.for_model(ds, DATA, model)(ds.examples[:2])
    with pytest.raises(ConfigError, match="tokenizer has none.*use --removal drop, mean or swap"):
        make_view(batch, ["image"], "mask")
    vilt = build(ds, hf_families, "vilt")  # a BERT tokenizer has [MASK]
    vb = Collator.for_model(ds, DATA, vilt)(ds.examples[:2])
    assert (make_view(vb, ["image"], "mask").values["text"] == vb.mask_token_id).any()


def test_a_smaller_siglip_keeps_its_two_embeddings_the_same_width(ds, hf_families):
    preset, overrides = hf_families["siglip"]
    torch.manual_seed(0)
    small = create_model(preset, ds.modalities, len(ds.labels),
                         overrides={**overrides, "hidden": 16, "layers": 1, "init": "random"})
    assert small.spec["image_dim"] == small.spec["text_dim"] == 16
    assert isinstance(small.image_proj, nn.Identity) and isinstance(small.text_proj, nn.Identity)


def test_a_checkpoint_given_as_a_string_finds_its_processor(ds, hf_families, tmp_path):
    model = build(ds, hf_families, "clip")
    save_model(tmp_path / "model.safetensors", model, ds.labels)
    model.save_processor(tmp_path)
    loaded, _ = load_model(str(tmp_path / "model.safetensors"))
    assert Collator.for_model(ds, DATA, loaded).image_size == 32


def test_a_frozen_backbone_does_not_move_while_the_head_trains(ds, hf_families):
    preset, overrides = hf_families["clip"]
    torch.manual_seed(0)
    model = create_model(preset, ds.modalities, len(ds.labels), overrides={**overrides, "freeze": True})
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.01)  # as the trainer builds it
    batch = Collator.for_model(ds, DATA, model)(ds.examples)
    for _ in range(3):
        opt.zero_grad()
        F.cross_entropy(model(batch), batch.targets).backward()
        opt.step()
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("backbone."))
    assert not torch.equal(before["head.mlp.0.weight"], after["head.mlp.0.weight"])
