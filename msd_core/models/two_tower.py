"""Two-tower (late-fusion) student: one encoder per modality, pooled, then fused.

    e_m = pool(Enc_m(x_m))                 (once per example, whatever the view)
    u_m = e_m if m ∈ V else a_m            (a_m a learned "absent" embedding)
    z   = MLP([u_1; ...; u_|M|])                          (fusion "concat")
    z   = MLP([u_1; ...; u_|M|; u_i ⊙ u_j for i < j])     (fusion "concat+product")

The element-wise products let the head test one modality against another (is the colour the
question names the colour in the image?), which a concatenation reaches only through the MLP.

Because the unimodal encoders do not see each other, ``forward_views`` encodes each
modality once and evaluates every view with the cheap fusion head only.
"""

from __future__ import annotations

import torch
from torch import nn

from ..data.batch import Batch
from ..data.example import ModalitySpec
from .base import MultimodalClassifier
from .encoders import TextEmbedder, VectorEncoder, image_encoder
from .fusion import bert_backbone
from .registry import Preset, register_family


class TwoTowerFusion(MultimodalClassifier):
    def __init__(self, spec: dict, modalities: list[ModalitySpec], num_labels: int,
                 load_pretrained: bool = True):
        super().__init__(spec, modalities, num_labels)
        hidden = spec["hidden"]
        encoders, text_layers = {}, {}
        for m in modalities:
            if m.kind == "image":
                encoders[m.name] = image_encoder(spec, hidden)
            elif m.kind == "text":
                bert = bert_backbone(spec, load_pretrained=False)
                emb = bert.embeddings
                encoders[m.name] = TextEmbedder(emb.word_embeddings, emb.position_embeddings, emb.LayerNorm,
                                                spec["dropout"], spec["full_vocab_size"])
                text_layers[m.name] = bert.encoder
            else:
                encoders[m.name] = VectorEncoder(m.dim, hidden)
        self.encoders = nn.ModuleDict(encoders)
        self.text_layers = nn.ModuleDict(text_layers)
        self.absent = nn.Parameter(torch.zeros(len(modalities), hidden))
        n = len(modalities)
        self.products = spec.get("fusion", "concat") == "concat+product"
        width = hidden * (n + (n * (n - 1) // 2 if self.products else 0))
        self.head = nn.Sequential(nn.Linear(width, hidden), nn.GELU(),
                                  nn.Dropout(spec["dropout"]), nn.Linear(hidden, num_labels))

    def encode(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Pooled ``B x H`` embedding of each modality present in ``batch``."""
        out = {}
        for m in self.modality_names:
            if m not in batch.values:
                continue
            tok = self.encoders[m](batch.values[m])
            if m in self.text_layers:
                mask = batch.token_mask[m]
                additive = torch.zeros(mask.shape, dtype=tok.dtype, device=tok.device)
                additive = additive.masked_fill(~mask, torch.finfo(tok.dtype).min)[:, None, None, :]
                tok = self.text_layers[m](tok, attention_mask=additive).last_hidden_state
                w = mask.unsqueeze(-1).to(tok.dtype)
                out[m] = (tok * w).sum(1) / w.sum(1).clamp_min(1.0)
            else:
                out[m] = tok.mean(1)
        return out

    def fuse(self, pooled: dict[str, torch.Tensor], present: dict[str, torch.Tensor], n: int) -> torch.Tensor:
        parts = []
        for i, m in enumerate(self.modality_names):
            absent = self.absent[i].expand(n, -1)
            if m in pooled:
                parts.append(torch.where(present[m].unsqueeze(1), pooled[m], absent))
            else:
                parts.append(absent)
        if self.products:
            parts += [parts[i] * parts[j] for i in range(len(parts)) for j in range(i + 1, len(parts))]
        return self.head(torch.cat(parts, 1))

    def logits(self, batch: Batch) -> torch.Tensor:
        return self.fuse(self.encode(batch), batch.present, len(batch))

    def forward_views(self, batch: Batch, views: dict[str, tuple[str, ...]]) -> dict[str, torch.Tensor]:
        pooled = self.encode(batch)
        return {name: self.fuse({m: pooled[m] for m in keep}, batch.present, len(batch))
                for name, keep in views.items()}


register_family("two-tower", TwoTowerFusion, {
    "student-two-tower": Preset("two-tower", "late fusion: CNN image tower + 1-layer text tower",
                                {"hidden": 96, "layers": 1, "heads": 2, "intermediate": 192, "vocab": "trimmed"}),
})
