"""Local Hugging Face model folders as a teacher's pretrained text encoder.

A folder saved by ``save_pretrained`` (``config.json`` + ``model.safetensors``) holding a
BERT-family encoder becomes the fusion encoder and word-piece embeddings of a
single-stream teacher; the image patch encoder and the classification head start from
random and are trained on the data set. Every preset tokenizes with the shared BERT
uncased WordPiece, so a folder is accepted only if its vocabulary is that one: other
vocabularies would make the embedding rows mean different words. Nothing is fetched from
a hub: the folder is read with ``local_files_only``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ...errors import ConfigError
from .source import check_weights, read_config

BERT_FAMILY = ("bert",)
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json")  # what check_weights accepts
CONFIG_FIELDS = {"hidden": "hidden_size", "layers": "num_hidden_layers", "heads": "num_attention_heads",
                 "intermediate": "intermediate_size", "max_positions": "max_position_embeddings",
                 "full_vocab_size": "vocab_size"}
EXTRA_FIELDS = ("hidden_act", "layer_norm_eps", "type_vocab_size", "position_embedding_type")


@dataclass(frozen=True)
class HFFolder:
    """What a local Hugging Face folder holds, as far as a teacher needs to know."""

    path: str
    model_type: str
    architectures: tuple[str, ...]
    shape: dict          # spec fields (hidden, layers, heads, ...) read from config.json
    bert_config: dict    # further BertConfig fields a rebuilt model must share
    weights: str

    def summary(self) -> str:
        s = self.shape
        return (f"{self.model_type} ({', '.join(self.architectures) or 'no architectures listed'}): "
                f"{s['layers']} layers, {s['hidden']} wide, {s['heads']} heads, "
                f"vocabulary {s['full_vocab_size']:,} (matches the shared tokenizer), weights {self.weights}")


def inspect_hf_folder(path: str | Path) -> HFFolder:
    """Check that ``path`` is a usable local BERT-family folder; raises ``ConfigError`` saying
    what is wrong and what to do otherwise."""
    p = Path(path).expanduser()
    if not p.is_dir():
        raise ConfigError(f"{p}: no such folder — give the folder a Hugging Face model was saved to "
                          f"(it holds config.json and model.safetensors)")
    cfg_file = p / "config.json"
    cfg = read_config(p)
    model_type = cfg.get("model_type")
    if model_type not in BERT_FAMILY:
        raise ConfigError(f"{cfg_file}: model_type {model_type!r} is not supported; a teacher's text encoder "
                          f"can start from a BERT-family folder ({', '.join(BERT_FAMILY)}) with the BERT "
                          f"uncased vocabulary, e.g. bert-base-uncased or MiniLM-L6-H384-uncased")
    missing = [f for f in CONFIG_FIELDS.values() if f not in cfg]
    if missing:
        raise ConfigError(f"{cfg_file}: missing {', '.join(missing)}")
    check_weights(p)
    weights = next(w for w in WEIGHT_FILES if (p / w).is_file())
    _check_vocabulary(p, cfg)
    shape = {k: cfg[v] for k, v in CONFIG_FIELDS.items()}
    if shape["hidden"] % shape["heads"]:
        raise ConfigError(f"{cfg_file}: hidden_size {shape['hidden']} is not a multiple of "
                          f"num_attention_heads {shape['heads']}")
    return HFFolder(path=str(p.resolve()), model_type=model_type,
                    architectures=tuple(cfg.get("architectures") or ()), shape=shape,
                    bert_config={k: cfg[k] for k in EXTRA_FIELDS if k in cfg}, weights=weights)


def _check_vocabulary(folder: Path, cfg: dict) -> None:
    from ...data.text import default_tokenizer

    shared = default_tokenizer().get_vocab()
    vocab_file = folder / "vocab.txt"
    if not vocab_file.is_file():
        raise ConfigError(f"{folder}: no vocab.txt — MSD Studio needs it to check that the model uses the "
                          f"BERT uncased WordPiece vocabulary every preset tokenizes with")
    tokens = vocab_file.read_text(encoding="utf-8").splitlines()
    if cfg["vocab_size"] != len(shared) or len(tokens) != len(shared):
        raise ConfigError(f"{vocab_file}: {len(tokens):,} tokens (config vocab_size {cfg['vocab_size']:,}); "
                          f"the shared BERT uncased vocabulary has {len(shared):,}. Use a model trained with "
                          f"that vocabulary (bert-base-uncased, MiniLM-L6-H384-uncased, ...)")
    for i, tok in enumerate(tokens):
        if shared.get(tok) != i:
            raise ConfigError(f"{vocab_file}, line {i + 1}: token {tok!r} differs from the shared BERT uncased "
                              f"vocabulary; its embeddings would be read as other words. Use a model trained "
                              f"with that vocabulary (bert-base-uncased, MiniLM-L6-H384-uncased, ...)")
