"""Single-stream fusion classifier (MMBT / VisualBERT style).

Tokens of every present modality — CNN image patches, text word pieces, one token per
feature vector — are projected to the encoder width, tagged with a modality-type
embedding and concatenated after a fusion ``[CLS]`` token:

    h = Encoder([cls; E_img(x_img) + t_img; E_txt(x_txt) + t_txt; ...])
    z = W2 · tanh(W1 · h_cls)

The encoder is a ``transformers`` BertEncoder. Positions are per modality, so leaving a
modality out (``drop`` view) and masking its tokens out of attention for one example
(modality dropout) give the same logits.
"""

from __future__ import annotations

import torch
from torch import nn

from ..data.batch import Batch
from ..data.example import ModalitySpec
from .base import MultimodalClassifier
from .encoders import TextEmbedder, VectorEncoder, image_encoder
from .registry import Preset, register_family


def bert_backbone(spec: dict, load_pretrained: bool):
    """A BertModel from the spec: pretrained weights from a local folder (MiniLM-L6's, or a
    Hugging Face folder's, see ``hf.bert_folder``) or random init of the same shape."""
    from transformers import BertConfig, BertModel
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    source = spec.get("pretrained")
    if source and load_pretrained:
        if source == "minilm":
            from ..data.text import minilm_path

            source = minilm_path()
        return BertModel.from_pretrained(source, local_files_only=True, add_pooling_layer=False,
                                         attn_implementation=spec.get("attn", "sdpa"))
    config = BertConfig(vocab_size=spec["vocab_size"], hidden_size=spec["hidden"],
                        num_hidden_layers=spec["layers"], num_attention_heads=spec["heads"],
                        intermediate_size=spec["intermediate"], max_position_embeddings=spec["max_positions"],
                        hidden_dropout_prob=spec["dropout"], attention_probs_dropout_prob=spec["dropout"],
                        **spec.get("bert_config", {}))
    config._attn_implementation = spec.get("attn", "sdpa")
    return BertModel(config, add_pooling_layer=False)


class SingleStreamFusion(MultimodalClassifier):
    def __init__(self, spec: dict, modalities: list[ModalitySpec], num_labels: int,
                 load_pretrained: bool = True):
        super().__init__(spec, modalities, num_labels)
        bert = bert_backbone(spec, load_pretrained)
        hidden = bert.config.hidden_size
        self.encoder = bert.encoder
        emb = bert.embeddings
        encoders = {}
        for m in modalities:
            if m.kind == "image":
                encoders[m.name] = image_encoder(spec, hidden)
            elif m.kind == "text":
                encoders[m.name] = TextEmbedder(emb.word_embeddings, emb.position_embeddings, emb.LayerNorm,
                                                spec["dropout"], spec["full_vocab_size"])
            else:
                encoders[m.name] = VectorEncoder(m.dim, hidden)
        self.encoders = nn.ModuleDict(encoders)
        self.type_embeddings = nn.Embedding(len(modalities) + 1, hidden)
        self.cls = nn.Parameter(torch.zeros(1, 1, hidden))
        nn.init.normal_(self.cls, std=0.02)
        self.head = nn.Sequential(nn.Linear(hidden, hidden), nn.Tanh(), nn.Dropout(spec["dropout"]),
                                  nn.Linear(hidden, num_labels))

    def modality_tokens(self, batch: Batch) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Per modality in ``batch``: its tokens ``B x n_m x H`` (type embedding added) and key mask."""
        n = len(batch)
        out = {}
        for i, m in enumerate(self.modality_names, start=1):
            if m not in batch.values:
                continue
            tok = self.encoders[m](batch.values[m]) + self.type_embeddings.weight[i]
            keep = batch.present[m].unsqueeze(1).expand(n, tok.shape[1])
            if m in batch.token_mask:
                keep = keep & batch.token_mask[m]
            out[m] = (tok, keep)
        return out

    def embed(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Token sequence ``B x L x H`` and key mask ``B x L`` for the modalities in ``batch``."""
        return self._sequence(self.modality_tokens(batch), len(batch))

    def _sequence(self, parts: dict, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        cls = self.cls.expand(n, -1, -1) + self.type_embeddings.weight[0]
        tokens = [cls] + [parts[m][0] for m in self.modality_names if m in parts]
        masks = [torch.ones(n, 1, dtype=torch.bool, device=cls.device)]
        masks += [parts[m][1] for m in self.modality_names if m in parts]
        return torch.cat(tokens, 1), torch.cat(masks, 1)

    def _classify(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        additive = torch.zeros(mask.shape, dtype=x.dtype, device=x.device)
        additive = additive.masked_fill(~mask, torch.finfo(x.dtype).min)[:, None, None, :]
        h = self.encoder(x, attention_mask=additive).last_hidden_state
        return self.head(h[:, 0])

    def logits(self, batch: Batch) -> torch.Tensor:
        return self._classify(*self.embed(batch))

    def forward_views(self, batch: Batch, views: dict[str, tuple[str, ...]]) -> dict[str, torch.Tensor]:
        """``drop`` views sharing one pass of each modality's encoder (the CNN and embeddings do
        not depend on the other modalities); only the fusion encoder runs once per view."""
        parts = self.modality_tokens(batch)
        return {name: self._classify(*self._sequence({m: parts[m] for m in keep}, len(batch)))
                for name, keep in views.items()}


register_family("single-stream", SingleStreamFusion, {
    "minilm-teacher": Preset("single-stream", "MiniLM-L6 text encoder (pretrained, local) + CNN patches; ~23M "
                                              "parameters",
                             {"image_encoder": "maxpool", "pretrained": "minilm", "hidden": 384, "layers": 6,
                              "heads": 12, "intermediate": 1536, "vocab": "full", "max_positions": 512}),
    "hf-bert-teacher": Preset("single-stream", "text encoder from a local Hugging Face BERT folder (pretrained=PATH) "
                                               "+ CNN patches; its size is the folder's",
                              {"image_encoder": "maxpool", "hidden": 384, "layers": 6, "heads": 12,
                               "intermediate": 1536, "vocab": "full", "max_positions": 512}, from_folder=True),
    "teacher-small": Preset("single-stream", "random-init 3-layer, 192-wide fusion teacher, max-pooling CNN",
                            {"image_encoder": "maxpool", "hidden": 192, "layers": 3, "heads": 4, "intermediate": 384,
                             "vocab": "trimmed"}),
    "student-small": Preset("single-stream", "random-init 2-layer, 96-wide single-stream student",
                            {"hidden": 96, "layers": 2, "heads": 2, "intermediate": 192, "vocab": "trimmed"}),
})
