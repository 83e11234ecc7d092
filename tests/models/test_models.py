import pytest
import torch
from safetensors.torch import load_file

from msd_core.engine.checkpoint import load_model, read_metadata, save_model
from msd_core.data import make_view
from msd_core.data.text import minilm_path
from msd_core.errors import CheckpointError, ConfigError
from msd_core.models import build_model, count_parameters, create_model, resolve_spec
from msd_core.models.presets import spec_changes
from tests.conftest import tiny_model


def test_minilm_teacher_loads_offline_with_the_pretrained_weights(synthetic3, batch3):
    model = create_model("minilm-teacher", synthetic3.modalities, 4).eval()
    shipped = load_file(f"{minilm_path()}/model.safetensors")
    key = next(k for k in shipped if k.endswith("word_embeddings.weight"))
    assert torch.equal(model.encoders["text"].word.weight, shipped[key])
    assert len(model.encoder.layer) == 6 and count_parameters(model) > 20_000_000
    with torch.no_grad():
        assert model(batch3).shape == (8, 4)


def test_trimmed_vocabulary_maps_unseen_words_to_unk(synthetic3):
    from msd_core.data.text import default_tokenizer

    tok = default_tokenizer()
    model = tiny_model(synthetic3)
    emb = model.encoders["text"]
    assert emb.word.num_embeddings < 200  # versus 30,522 in the full vocabulary
    seen = tok.convert_tokens_to_ids("alpha")
    unseen = tok.convert_tokens_to_ids("zebra")
    unk = emb.vocab_map[tok.unk_token_id]
    assert emb.vocab_map[unseen] == unk and emb.vocab_map[seen] != unk


@pytest.mark.parametrize("fusion", ["concat", "concat+product"])
def test_two_tower_forward_views_equals_one_forward_per_view(synthetic3, batch3, fusion):
    model = tiny_model(synthetic3, "student-two-tower", fusion=fusion)
    assert model.head[0].in_features == 32 * (3 if fusion == "concat" else 6)  # 3 modalities, 3 pairs
    views = {"full": ("image", "text", "tabular"), "only:text": ("text",), "img+tab": ("image", "tabular")}
    with torch.no_grad():
        shared = model.forward_views(batch3, views)
        for name, keep in views.items():
            torch.testing.assert_close(shared[name], model(make_view(batch3, keep, "drop")), rtol=1e-6, atol=1e-6)


def test_checkpoint_round_trip(tmp_path, synthetic3, batch3):
    model = tiny_model(synthetic3, "student-two-tower")
    save_model(tmp_path / "m.safetensors", model, synthetic3.labels, extra={"data": "synthetic"})
    loaded, meta = load_model(tmp_path / "m.safetensors")
    assert meta["labels"] == synthetic3.labels and meta["extra"]["data"] == "synthetic"
    assert [m.name for m in meta["modalities"]] == ["image", "text", "tabular"]
    with torch.no_grad():
        torch.testing.assert_close(loaded(batch3), model(batch3), rtol=0, atol=0)
    assert not list(tmp_path.glob("*.tmp"))  # the temporary file was renamed


def test_bad_checkpoints_give_clear_errors(tmp_path, synthetic3):
    with pytest.raises(CheckpointError, match="not found"):
        load_model(tmp_path / "nope.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError, match="damaged or incomplete — not a whole safetensors file"):
        read_metadata(tmp_path / "junk.safetensors")
    model = tiny_model(synthetic3)
    save_model(tmp_path / "m.safetensors", model, synthetic3.labels)
    data = (tmp_path / "m.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) - 1000])
    with pytest.raises(CheckpointError):
        load_model(tmp_path / "cut.safetensors")


def test_presets_reject_bad_settings(synthetic3):
    with pytest.raises(ConfigError, match="unknown model preset"):
        resolve_spec("giant")
    with pytest.raises(ConfigError, match="has no setting 'depth'"):
        resolve_spec("student-small", {"depth": 3})
    with pytest.raises(ConfigError, match="multiple of heads"):
        resolve_spec("student-small", {"hidden": 30, "heads": 4})
    with pytest.raises(ConfigError, match="training texts"):
        create_model("student-small", synthetic3.modalities, 4)


def test_build_model_from_spec_is_reproducible(synthetic3):
    spec = resolve_spec("student-small", {"hidden": 32, "heads": 2})
    spec["vocab_size"] = 100
    torch.manual_seed(1)
    a = build_model(spec, synthetic3.modalities, 4)
    torch.manual_seed(1)
    b = build_model(spec, synthetic3.modalities, 4)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)


def test_image_encoder_setting_and_checkpoints_written_before_it(tmp_path, synthetic3, batch3):
    assert resolve_spec("teacher-small")["image_encoder"] == "maxpool"
    assert resolve_spec("student-small")["image_encoder"] == "strided"
    with pytest.raises(ConfigError, match="unknown image_encoder 'round'"):
        resolve_spec("student-small", {"image_encoder": "round"})
    with pytest.raises(ConfigError, match="unknown fusion 'sum'"):
        resolve_spec("student-two-tower", {"fusion": "sum"})
    for kind, last in (("strided", torch.nn.AdaptiveAvgPool2d), ("maxpool", torch.nn.AdaptiveMaxPool2d)):
        encoder = tiny_model(synthetic3, image_encoder=kind).encoders["image"]
        assert isinstance(encoder.cnn[-1], last)
        for size in (64, 24):
            assert encoder(torch.zeros(2, 3, size, size)).shape == (2, 16, 32)
    legacy = {k: v for k, v in resolve_spec("teacher-small").items() if k not in ("image_encoder", "fusion")}
    assert spec_changes(legacy) == {"image_encoder": "strided"}  # how such a checkpoint was built
    assert spec_changes(resolve_spec("student-two-tower", {"hidden": 64, "fusion": "concat+product"})) == {
        "hidden": 64, "fusion": "concat+product"}
    old = tiny_model(synthetic3)
    del old.spec["image_encoder"]  # as saved before the setting existed
    save_model(tmp_path / "old.safetensors", old, synthetic3.labels)
    loaded, meta = load_model(tmp_path / "old.safetensors")
    assert "image_encoder" not in meta["spec"] and isinstance(loaded.encoders["image"].cnn[-1],
                                                              torch.nn.AdaptiveAvgPool2d)
    with torch.no_grad():
        torch.testing.assert_close(loaded(batch3), old(batch3), rtol=0, atol=0)
