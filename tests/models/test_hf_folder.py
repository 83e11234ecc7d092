"""A local Hugging Face BERT folder as a teacher's pretrained text encoder."""

import shutil

import pytest
import torch
from safetensors.torch import load_file

from msd_core.engine.checkpoint import is_msd_checkpoint, load_model, read_metadata, save_model
from msd_core.cli import main
from msd_core.data.text import minilm_path
from msd_core.errors import CheckpointError, ConfigError
from msd_core.models import create_model, resolve_spec
from msd_core.models.hf.source import looks_like_model
from msd_core.models.hf.bert_folder import inspect_hf_folder


def save_tiny_bert(folder, **config):
    """What a user's ``save_pretrained`` writes: config.json, model.safetensors (+ vocab.txt)."""
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=48, max_position_embeddings=64, hidden_act="gelu_new",
                     layer_norm_eps=1e-6, num_labels=3, **config)
    BertForSequenceClassification(cfg).save_pretrained(folder)
    shutil.copy(f"{minilm_path()}/vocab.txt", folder / "vocab.txt")
    return folder


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory):
    return save_tiny_bert(tmp_path_factory.mktemp("hf") / "tiny-bert")


def test_the_folder_supplies_shape_and_weights_and_the_checkpoint_stands_alone(hf_folder, tmp_path, synthetic3,
                                                                               batch3):
    spec = resolve_spec("hf-bert-teacher", {"pretrained": str(hf_folder)})
    assert (spec["hidden"], spec["layers"], spec["heads"], spec["intermediate"]) == (32, 2, 2, 48)
    assert spec["bert_config"]["hidden_act"] == "gelu_new" and spec["vocab"] == "full"
    model = create_model("hf-bert-teacher", synthetic3.modalities, 4,
                         overrides={"pretrained": str(hf_folder)}).eval()
    saved = load_file(str(hf_folder / "model.safetensors"))
    assert torch.equal(model.encoders["text"].word.weight, saved["bert.embeddings.word_embeddings.weight"])
    assert torch.equal(model.encoder.layer[1].attention.self.query.weight,
                       saved["bert.encoder.layer.1.attention.self.query.weight"])
    assert model.encoder.layer[0].intermediate.intermediate_act_fn.__class__.__name__ == "NewGELUActivation"

    save_model(tmp_path / "model.safetensors", model, synthetic3.labels)
    copy = tmp_path / "moved"
    shutil.move(str(hf_folder), copy)  # the checkpoint must not need the folder any more
    try:
        loaded, meta = load_model(tmp_path / "model.safetensors")
    finally:
        shutil.move(str(copy), hf_folder)
    assert meta["spec"]["preset"] == "hf-bert-teacher"
    with torch.no_grad():
        torch.testing.assert_close(loaded(batch3), model(batch3), rtol=0, atol=0)


def test_the_packaged_minilm_folder_is_accepted_as_a_hugging_face_folder():
    folder = inspect_hf_folder(minilm_path())
    assert folder.shape["layers"] == 6 and folder.shape["hidden"] == 384 and folder.weights == "model.safetensors"
    assert "6 layers, 384 wide" in folder.summary()


def test_bad_folders_say_what_is_wrong(hf_folder, tmp_path):
    with pytest.raises(ConfigError, match="no such folder"):
        inspect_hf_folder(tmp_path / "absent")
    with pytest.raises(ConfigError, match="no config.json"):
        inspect_hf_folder(tmp_path)
    bad = tmp_path / "bad"
    shutil.copytree(hf_folder, bad)
    (bad / "config.json").write_text((hf_folder / "config.json").read_text().replace('"bert"', '"gpt2"'))
    with pytest.raises(ConfigError, match="model_type 'gpt2' is not supported"):
        inspect_hf_folder(bad)
    shutil.copy(hf_folder / "config.json", bad / "config.json")
    lines = (hf_folder / "vocab.txt").read_text().splitlines()
    lines[2000] = "zzzz"
    (bad / "vocab.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError, match=r"vocab.txt, line 2001: token 'zzzz' differs"):
        inspect_hf_folder(bad)
    (bad / "vocab.txt").write_text("\n".join(lines[:100]) + "\n")
    with pytest.raises(ConfigError, match="100 tokens"):
        inspect_hf_folder(bad)
    (bad / "model.safetensors").unlink()
    with pytest.raises(ConfigError, match="no model.safetensors"):
        inspect_hf_folder(bad)
    with pytest.raises(ConfigError, match="only single-stream presets"):
        resolve_spec("student-two-tower", {"pretrained": str(hf_folder)})
    with pytest.raises(ConfigError, match="--pretrained PATH"):
        resolve_spec("hf-bert-teacher")


def test_a_hugging_face_folder_is_not_mistaken_for_a_trained_teacher(hf_folder):
    assert looks_like_model(str(hf_folder)) and not is_msd_checkpoint(hf_folder)
    with pytest.raises(CheckpointError, match="Hugging Face model folder.*--pretrained"):
        read_metadata(hf_folder / "model.safetensors")


def test_train_teacher_from_a_folder_on_the_command_line(hf_folder, tmp_path, capsys):
    out = tmp_path / "t"
    args = ["train-teacher", "--data", "synthetic", "--data-option", "n=64", "--max-eval", "16",
            "--model", "hf-bert-teacher", "--pretrained", str(hf_folder), "--epochs", "1",
            "--batch-size", "16", "--out", str(out)]
    assert main(args) == 0
    assert "test  only:text" in capsys.readouterr().out
    assert read_metadata(out / "model.safetensors")["spec"]["pretrained"] == str(hf_folder.resolve())
    assert main(["train-teacher", "--model", "hf-bert-teacher", "--out", str(tmp_path / "u")]) == 2
    assert "--pretrained PATH" in capsys.readouterr().err
