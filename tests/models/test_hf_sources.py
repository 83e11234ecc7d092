"""Bad Hugging Face folders are refused before any weight is read, each with a message naming the
folder or file and what to do."""

import json
import shutil

import pytest

from msd_core.errors import CheckpointError, ConfigError
from msd_core.models.hf import source
from msd_core.models.presets import resolve_spec


@pytest.fixture
def clip(hf_families, tmp_path):
    """A copy of the tiny CLIP folder that a test may damage."""
    folder = tmp_path / "clip"
    shutil.copytree(hf_families["clip"][1]["pretrained"], folder)
    return folder


def test_each_family_is_recognised(hf_families):
    seen = {f: resolve_spec(p, o)["family"] for f, (p, o) in hf_families.items()}
    assert seen == {"clip": "dual-encoder", "siglip": "dual-encoder", "vilt": "single-stream", "pair": "pair"}
    info = source.inspect_folder(hf_families["vilt"][1]["pretrained"])
    assert info.image_size == 64 and info.vocabulary == 30522 and info.parameters > 1_000_000
    assert "vilt (single-stream)" in info.summary() and "64×64 px" in info.summary()


def test_unknown_model_type(clip):
    cfg = json.loads((clip / "config.json").read_text())
    (clip / "config.json").write_text(json.dumps({**cfg, "model_type": "no-such-model"}))
    with pytest.raises(ConfigError, match=r"config.json: model_type 'no-such-model' is not one transformers knows"):
        resolve_spec("hf", {"pretrained": str(clip)})


def test_a_text_encoder_alone_is_not_a_vision_language_model(hf_families):
    bert = hf_families["pair"][1]["pretrained"]
    with pytest.raises(ConfigError, match=r"model_type 'bert' is a text-encoder.*--model hf-pair"):
        resolve_spec("hf", {"pretrained": bert})
    with pytest.raises(ConfigError, match="needs a vision encoder: --model-option vision=FOLDER"):
        resolve_spec("hf-pair", {"pretrained": bert})
    with pytest.raises(ConfigError, match=r"model_type 'bert' is a text-encoder; here it must be any AutoModel vision"):
        resolve_spec("hf-pair", {"pretrained": bert, "vision": bert})


def test_bin_only_weights_are_refused_with_how_to_convert(clip):
    (clip / "model.safetensors").rename(clip / "pytorch_model.bin")
    with pytest.raises(ConfigError, match=r"weights only as pytorch_model.bin .*safetensors only. Convert once"):
        resolve_spec("hf", {"pretrained": str(clip)})


def test_a_truncated_weights_file_is_named_damaged_as_the_projects_own_checkpoints_are(clip, tmp_path):
    """A copy that stopped half-way: the same message a truncated MSD Studio checkpoint gets (the
    file, damaged or incomplete, what to do), before any model is built; a sharded folder with a
    shard cut short or missing too."""
    from safetensors.torch import load_file, save_file

    from msd_core.engine.checkpoint import read_metadata
    from msd_core.paths import demo_teacher

    weights = clip / "model.safetensors"
    whole = weights.read_bytes()
    weights.write_bytes(whole[: len(whole) // 2])
    damaged = r"model.safetensors: damaged or incomplete — not a whole safetensors file \(.*\); save the model again"
    with pytest.raises(CheckpointError, match=damaged):
        resolve_spec("hf", {"pretrained": str(clip)})
    own = tmp_path / "own.safetensors"
    own.write_bytes((demo_teacher("synthetic") / "model.safetensors").read_bytes()[:1000])
    with pytest.raises(CheckpointError, match=r"own.safetensors: damaged or incomplete — not a whole safetensors "
                                              r"file \(.*\); copy it again"):
        read_metadata(own)

    weights.write_bytes(whole)
    tensors = load_file(str(weights))
    names = sorted(tensors)
    half = len(names) // 2
    for i, part in enumerate((names[:half], names[half:])):
        save_file({k: tensors[k] for k in part}, str(clip / f"model-0000{i + 1}-of-00002.safetensors"))
    weights.unlink()
    (clip / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {
        k: f"model-0000{1 + (k in names[half:])}-of-00002.safetensors" for k in names}}))
    source.inspect_folder(str(clip))  # whole shards load
    second = clip / "model-00002-of-00002.safetensors"
    second.write_bytes(second.read_bytes()[:-10])
    with pytest.raises(CheckpointError, match=r"model-00002-of-00002.safetensors: damaged or incomplete"):
        resolve_spec("hf", {"pretrained": str(clip)})
    second.unlink()
    with pytest.raises(CheckpointError, match=r"model-00002-of-00002.safetensors: listed in "
                                              r"model.safetensors.index.json but missing"):
        resolve_spec("hf", {"pretrained": str(clip)})


@pytest.mark.parametrize("remove,message", [
    (("tokenizer.json", "vocab.json"), "no tokenizer files"),
    (("processor_config.json",), "no image processor settings"),
])
def test_missing_processor_files(clip, remove, message):
    for name in remove:
        (clip / name).unlink(missing_ok=True)
    shutil.rmtree(clip / "_tok", ignore_errors=True)
    with pytest.raises(ConfigError, match=f"{clip}: {message}.*processor.save_pretrained"):
        resolve_spec("hf", {"pretrained": str(clip)})


def test_a_tokenizer_larger_than_the_embedding_table(clip):
    cfg = json.loads((clip / "config.json").read_text())
    cfg["text_config"]["vocab_size"] = 10
    (clip / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ConfigError, match=r"the tokenizer has 82 tokens but the model embeds 10"):
        resolve_spec("hf", {"pretrained": str(clip)})


def test_too_large_for_memory_is_said_before_loading(clip, monkeypatch):
    n = source.inspect_folder(str(clip)).parameters
    assert source.training_bytes(n, 0) == 4 * n and source.training_bytes(n, n) == 16 * n
    monkeypatch.setattr(source, "available_memory", lambda: 8 * n)  # enough to hold it, not to train it all
    with pytest.raises(ConfigError, match=rf"{n:,} parameters need about .* GiB to train .* available — freeze"):
        resolve_spec("hf", {"pretrained": str(clip)})
    assert resolve_spec("hf", {"pretrained": str(clip), "freeze": True})["freeze"]  # frozen: weights only


def test_a_hub_id_offline_is_refused_with_what_to_do(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConfigError, match=r"openai/clip-vit-base-patch32: a hub id, and HF_HUB_OFFLINE is set.*"
                                          r"hf download openai/clip-vit-base-patch32 --local-dir FOLDER"):
        resolve_spec("hf", {"pretrained": "openai/clip-vit-base-patch32"})
    with pytest.raises(ConfigError, match="no such folder"):
        resolve_spec("hf", {"pretrained": "./not/a/folder/here"})


def test_shrinking_needs_random_init_and_builds_a_smaller_model(hf_families):
    folder = hf_families["clip"][1]["pretrained"]
    with pytest.raises(ConfigError, match="layers=1 changes the model's shape.*init=random"):
        resolve_spec("hf", {"pretrained": folder, "layers": 1})
    spec = resolve_spec("hf", {"pretrained": folder, "layers": 1, "hidden": 16, "init": "random"})
    for part in ("text_config", "vision_config"):
        assert spec["hf_config"][part]["num_hidden_layers"] == 1 and spec["hf_config"][part]["hidden_size"] == 16
    with pytest.raises(ConfigError, match=r"hidden \(15\) must be a multiple of heads \(2\)"):
        resolve_spec("hf", {"pretrained": folder, "hidden": 15, "init": "random"})
    with pytest.raises(ConfigError, match="has no setting 'colour'"):
        resolve_spec("hf", {"pretrained": folder, "colour": 1})


def test_the_model_is_checked_before_any_data_is_read(tmp_path, monkeypatch):
    from msd_core.config import DataConfig, DistillRunConfig, ModelConfig, TeacherRunConfig
    from msd_core.engine.distill import distill
    from msd_core.engine.teacher import train_teacher

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    data = DataConfig("hateful-memes", root=str(tmp_path / "no-data-here"))
    model = ModelConfig("hf", {"pretrained": "openai/clip-vit-base-patch32"})
    with pytest.raises(ConfigError, match="HF_HUB_OFFLINE is set"):
        train_teacher(TeacherRunConfig(data=data, model=model, out_dir=str(tmp_path / "t")), progress=False)
    with pytest.raises(ConfigError, match="HF_HUB_OFFLINE is set"):
        distill(DistillRunConfig(teacher=str(tmp_path / "none"), data=data, model=model, out_dir=str(tmp_path / "s")),
                progress=False, log=lambda *_: None)
    assert not (tmp_path / "t").exists() and not (tmp_path / "s").exists()
