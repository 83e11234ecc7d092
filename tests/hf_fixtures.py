"""Tiny random Hugging Face models of each family, written with ``save_pretrained`` (nothing is
downloaded): CLIP, SigLIP, ViLT, and a BERT + ViT pair, each with its processor files."""

from __future__ import annotations

import json
from pathlib import Path

import torch

LAYERS = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37)


def _bert_tokenizer():
    from msd_core.data.text import default_tokenizer

    return default_tokenizer()


def _clip_tokenizer(folder: Path):
    """A CLIP BPE tokenizer whose vocabulary is the letters and digits (each word splits into them)."""
    from transformers import CLIPTokenizer

    chars = "abcdefghijklmnopqrstuvwxyz0123456789?.,'"
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in chars:
        vocab[c] = len(vocab)
        vocab[c + "</w>"] = len(vocab)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))


def clip_folder(folder: Path, image_size: int = 32) -> Path:
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel, CLIPProcessor

    tok = _clip_tokenizer(folder / "_tok")
    cfg = CLIPConfig(text_config=dict(**LAYERS, vocab_size=len(tok), max_position_embeddings=40,
                                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                                      pad_token_id=tok.pad_token_id),
                     vision_config=dict(**LAYERS, image_size=image_size, patch_size=8), projection_dim=16)
    torch.manual_seed(0)
    CLIPModel(cfg).save_pretrained(folder)
    proc = CLIPImageProcessorPil(size={"shortest_edge": image_size},
                                 crop_size={"height": image_size, "width": image_size})
    CLIPProcessor(image_processor=proc, tokenizer=tok).save_pretrained(folder)
    return folder


def siglip_folder(folder: Path) -> Path:
    from transformers import SiglipConfig, SiglipImageProcessorPil, SiglipModel

    cfg = SiglipConfig(text_config=dict(**LAYERS, vocab_size=30522, max_position_embeddings=32),
                       vision_config=dict(**LAYERS, image_size=32, patch_size=8))
    torch.manual_seed(0)
    SiglipModel(cfg).save_pretrained(folder)
    SiglipImageProcessorPil(size={"height": 32, "width": 32}).save_pretrained(folder)
    _bert_tokenizer().save_pretrained(folder)
    return folder


def vilt_folder(folder: Path) -> Path:
    from transformers import ViltConfig, ViltImageProcessorPil, ViltModel, ViltProcessor

    cfg = ViltConfig(**LAYERS, image_size=64, patch_size=16, max_position_embeddings=40,
                     initializer_range=0.3)  # the default 0.02 gives a near-constant random model
    torch.manual_seed(0)
    ViltModel(cfg).save_pretrained(folder)
    ViltProcessor(image_processor=ViltImageProcessorPil(size={"shortest_edge": 64}),
                  tokenizer=_bert_tokenizer()).save_pretrained(folder)
    return folder


def bert_folder(folder: Path) -> Path:
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    BertModel(BertConfig(**LAYERS, max_position_embeddings=64)).save_pretrained(folder)
    _bert_tokenizer().save_pretrained(folder)
    return folder


def vit_folder(folder: Path) -> Path:
    from transformers import ViTConfig, ViTImageProcessorPil, ViTModel

    torch.manual_seed(0)
    ViTModel(ViTConfig(**LAYERS, image_size=32, patch_size=8)).save_pretrained(folder)
    ViTImageProcessorPil(size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


def family_overrides(root: Path, family: str) -> tuple[str, dict]:
    """``(preset, overrides)`` of a tiny model of ``family`` written under ``root``."""
    root = Path(root)
    if family == "pair":
        return "hf-pair", {"pretrained": str(bert_folder(root / "bert")), "vision": str(vit_folder(root / "vit"))}
    build = {"clip": clip_folder, "siglip": siglip_folder, "vilt": vilt_folder}[family]
    return "hf", {"pretrained": str(build(root / family))}


FAMILIES = ("clip", "siglip", "vilt", "pair")
