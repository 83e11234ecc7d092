"""What the adapters read from a Hugging Face model's outputs, and how wide it is: the image and
text features of a dual encoder, a vision encoder's pooled image, a text encoder's hidden states."""

from __future__ import annotations

import torch


def features(out) -> torch.Tensor:
    """A ``get_*_features`` result as a ``B x D`` tensor (transformers 5 returns an output object)."""
    return out.pooler_output if hasattr(out, "pooler_output") else out


def pooled_image(out) -> torch.Tensor:
    """A vision encoder's image embedding: its first token (ViT-like), or its pooled output flattened
    (convolutional ones)."""
    h = out.last_hidden_state
    return h[:, 0] if h.dim() == 3 else out.pooler_output.flatten(1)


def output_widths(config, image_size: int | None, kind: str) -> dict[str, int]:
    """The widths of what an adapter reads from a model of ``config`` (``kind``: ``dual`` -> image and
    text features; ``text`` / ``vision`` -> a pair's pooled text / image), from one forward pass on the
    meta device (no memory, no weights)."""
    from transformers import AutoModel

    with torch.device("meta"):
        model = AutoModel.from_config(config)
        ids = torch.zeros(1, 4, dtype=torch.long)
        pixels = torch.zeros(1, 3, image_size or 1, image_size or 1)
        if kind == "dual":
            return {"image_dim": features(model.get_image_features(pixel_values=pixels)).shape[-1],
                    "text_dim": features(model.get_text_features(input_ids=ids)).shape[-1]}
        if kind == "text":
            return {"text_width": model(input_ids=ids).last_hidden_state.shape[-1]}
        return {"vision_width": pooled_image(model(pixel_values=pixels)).shape[-1]}
