"""Counterfactual edits of one example: swap its image for another example's, rewrite its text,
remove a modality, and read what the teacher and students make of it.

For one input (the edited example, or the original with ``Edit()``) and each model: the logits on
the model's own views ``full``, ``only:m`` and ``without:m`` (docs/METHOD.md §1), the class
probabilities of ``full``, and the per-example modality saliency from those views with the
example's label (§5, ``loss-drop`` by default); for the first model, captum attributions of the
edited input (§11). A removed modality is removed with the chosen strategy (§2) from every view,
so the edited input's ``full`` view is the original's ``without:m`` view. Only the one example
runs through the models (no data-set pass, except ``mean`` removal's fill, which callers cache).
A model that prepares its inputs its own way (a Hugging Face model, §16.1) gets the edit in its own
format, and computes its own ``mean`` fill.
"""

from __future__ import annotations

import functools
import json
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Mapping

import pandas as pd
import torch

from ..data.collate import Collator
from ..data.example import Example, MultimodalDataset
from ..data.views import make_view, named_views
from ..errors import ConfigError, DataError
from ..method.saliency import MEASURES
from ..data.tasks import confidence, predicted_text, probabilities


@dataclass(frozen=True)
class Edit:
    """What is changed: ``image_from`` (index of the donor example whose image replaces this one's;
    None keeps it), ``text`` (the new text; None keeps it), ``remove`` (modalities removed)."""

    image_from: int | None = None
    text: str | None = None
    remove: tuple[str, ...] = ()

    def to_json(self) -> str:
        return json.dumps({"image_from": self.image_from, "text": self.text, "remove": sorted(self.remove)})

    @classmethod
    def from_json(cls, text: str) -> "Edit":
        d = json.loads(text)
        return cls(d.get("image_from"), d.get("text"), tuple(d.get("remove") or ()))


@dataclass
class Readout:
    """One model on one input: ``logits[view]`` (``C`` values, None for a view left with no
    modality), ``probs`` of ``full``, ``pred`` (the prediction in words), ``saliency[m]`` (None when
    undefined), ``p_label[view]``: the probability given to the example's label
    (``data.tasks.confidence``), None where the view has no logits."""

    logits: dict[str, torch.Tensor | None]
    probs: list[float]
    pred: str
    saliency: dict[str, float | None]
    p_label: dict[str, float | None]


@dataclass
class Counterfactual:
    """The edited example and every model's readout on it; ``attributions`` of the first model
    (``explain``'s dict) when asked for; ``seconds`` the wall-clock time of the call."""

    example: Example
    label: str
    labels: list[str]
    modalities: list[str]
    readouts: dict[str, Readout]
    attributions: dict | None = None
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


_THREADS = threading.Lock()


@contextmanager
def torch_threads(n: int | None):
    """torch's intra-op threads set to ``n`` inside the block (None: unchanged), restored after. One
    example gains nothing from several threads and loses much on a busy CPU (measured on a loaded
    2-core machine: an edit with attributions 0.2–0.3 s on one thread, 1–5 s on two)."""
    if not n:
        yield
        return
    with _THREADS:
        before = torch.get_num_threads()
        torch.set_num_threads(n)
        try:
            yield
        finally:
            torch.set_num_threads(before)


@functools.cache
def _tokenizer():
    from ..data.text import default_tokenizer

    return default_tokenizer()


def collator_for(ds: MultimodalDataset, data_cfg, model=None) -> Collator:
    """The collator of ``ds`` under ``data_cfg`` for ``model``: ``Collator.for_data``'s sharing one
    tokenizer, or the model's own (``Collator.for_model``) when it prepares inputs its own way."""
    if model is not None and model.input_format() is not None:
        return Collator.for_model(ds, data_cfg, model)
    tok = _tokenizer() if any(m.kind == "text" for m in ds.modalities) else None
    return Collator.for_data(ds, data_cfg, tokenizer=tok)


def input_key(model) -> int | None:
    """Models with the same key see the same batch: None for every project model (one shared
    format), the model itself for one with its own input format."""
    return None if model.input_format() is None else id(model)


def edited_example(ds: MultimodalDataset, index: int, edit: Edit = Edit()) -> Example:
    """Example ``index`` of ``ds`` with ``edit``'s image and text (removal happens on the batch)."""
    n = len(ds)
    if not 0 <= index < n:
        raise ConfigError(f"example {index} does not exist: the split has examples 0 to {n - 1}")
    ex = ds.examples[index]
    inputs = dict(ex.inputs)
    if edit.image_from is not None and edit.image_from != index:
        if "image" not in inputs:
            raise ConfigError(f"the data set {ds.name!r} has no image modality to swap")
        if not 0 <= edit.image_from < n:
            raise ConfigError(f"donor example {edit.image_from} does not exist: the split has examples 0 to {n - 1}")
        inputs["image"] = ds.examples[edit.image_from].inputs["image"]
    if edit.text is not None:
        if "text" not in inputs:
            raise ConfigError(f"the data set {ds.name!r} has no text modality to edit")
        if not edit.text.strip():
            raise DataError("the edited text is empty — type some text, or remove the text modality "
                            "with its toggle to see the model without it")
        inputs["text"] = edit.text
    return Example(ex.id, inputs, ex.target, dict(ex.meta))


@dataclass
class _Edited:
    example: Example
    batch: object
    collator: Collator
    removed: set
    removal: str
    fill: dict | None

    def view(self, keep):
        """The view of the edited batch keeping ``keep`` (removed modalities by ``removal``)."""
        return make_view(self.batch, keep, self.removal, fill=self.fill, generator=torch.Generator().manual_seed(0))

    def input(self):
        """The one-example batch the models see as the edited input (its ``full`` view)."""
        keep = tuple(m for m in self.batch.modalities if m not in self.removed)
        return self.view(keep).select(torch.tensor([0]))


def _edit(ds: MultimodalDataset, data_cfg, index: int, edit: Edit, removal: str, fill, swap_partner,
          model=None) -> _Edited:
    mods = ds.modality_names
    unknown = set(edit.remove) - set(mods)
    if unknown:
        raise ConfigError(f"cannot remove {sorted(unknown)}: the data set has {mods}")
    if set(edit.remove) >= set(mods):
        raise ConfigError("every modality is removed: keep at least one, a model never sees an empty input")
    example = edited_example(ds, index, edit)
    collator = collator_for(ds, data_cfg, model)
    rows = [example]
    if removal == "swap":  # the swap strategy needs a second example to take content from (§2.4)
        rows.append(ds.examples[(index + 1) % len(ds) if swap_partner is None else swap_partner])
    if removal == "mean" and fill is None:
        from ..engine.predict import dataset_fill

        fill = dataset_fill(ds, collator)
    return _Edited(example, collator(rows), collator, set(edit.remove), removal, fill)


def counterfactual(models: Mapping[str, torch.nn.Module], ds: MultimodalDataset, data_cfg, index: int,
                   edit: Edit = Edit(), *, removal: str = "drop", measure: str = "loss-drop",
                   fill: dict | None = None, swap_partner: int | None = None,
                   image_method: str | None = "ig", n_steps: int = 32,
                   threads: int | None = None) -> Counterfactual:
    """Every model of ``models`` (name -> loaded model) on example ``index`` of ``ds`` after ``edit``
    (module docstring). ``fill``: ``mean`` removal's fill (``predict.dataset_fill``; computed here
    when missing, a pass over the data). ``swap`` removal takes the removed modality from example
    ``swap_partner`` (default: the next one). ``image_method`` None skips the attributions (which
    cost most of the time: ``explain_edit`` computes them on their own). ``threads``: torch threads
    for the call (``torch_threads``; the dashboard uses 1)."""
    with torch_threads(threads):
        return _counterfactual(models, ds, data_cfg, index, edit, removal, measure, fill, swap_partner,
                               image_method, n_steps)


def _counterfactual(models, ds, data_cfg, index, edit, removal, measure, fill, swap_partner, image_method,
                    n_steps) -> Counterfactual:
    t0 = time.perf_counter()
    fn = MEASURES.get(measure)
    edits: dict = {}  # one edited batch per input format (module docstring)

    def edited(model) -> _Edited:
        key = input_key(model)
        if key not in edits:  # a given fill is in the project's format; others compute their own
            edits[key] = _edit(ds, data_cfg, index, edit, removal, fill if key is None else None, swap_partner,
                               model)
        return edits[key]

    e = edited(next(iter(models.values()))) if models else _edit(ds, data_cfg, index, edit, removal, fill,
                                                                  swap_partner)
    mods = ds.modality_names
    y = e.batch.targets[:1]
    keeps = {name: tuple(m for m in keep if m not in e.removed)
             for name, keep in named_views(mods, without=True).items()}
    readouts = {}
    with torch.inference_mode():
        for name, model in models.items():
            model.eval()
            e = edited(model)
            done: dict[frozenset, torch.Tensor] = {}
            logits: dict[str, torch.Tensor | None] = {}
            for view, keep in keeps.items():
                if not keep:
                    logits[view] = None
                    continue
                if frozenset(keep) not in done:
                    done[frozenset(keep)] = model(e.view(keep))[:1].float()
                logits[view] = done[frozenset(keep)]
            sal = {m: None if logits[f"without:{m}"] is None else
                   float(fn(logits["full"], logits[f"without:{m}"], y, ds.task)[0]) for m in mods}
            probs = probabilities(logits["full"], ds.task)[0]
            p_label = {v: None if z is None else float(confidence(z, y, ds.task)[0]) for v, z in logits.items()}
            readouts[name] = Readout({v: (None if z is None else z[0]) for v, z in logits.items()},
                                     probs.tolist(), predicted_text(logits["full"][0], ds.labels, ds.task), sal,
                                     p_label)
    attr = None
    if image_method and models:
        first = next(iter(models.values()))
        attr = _explain(first, edited(first), image_method, n_steps)
    notes = []
    if edit.text is not None and "text" not in e.removed:
        n_tok = len(e.collator.tokenizer(edit.text, truncation=False)["input_ids"])
        if n_tok > data_cfg.max_text_len:
            notes.append(f"the text has {n_tok} tokens; the models read the first {data_cfg.max_text_len}")
    return Counterfactual(e.example, ds.label_text(e.example), ds.labels, mods, readouts, attr,
                          time.perf_counter() - t0, notes)


def _explain(model, e: _Edited, image_method: str, n_steps: int) -> dict:
    from ..engine.attributions import explain

    return explain(model, e.input(), tokenizer=e.collator.tokenizer, image_method=image_method, n_steps=n_steps)


def explain_edit(model, ds: MultimodalDataset, data_cfg, index: int, edit: Edit = Edit(), *,
                 removal: str = "drop", fill: dict | None = None, swap_partner: int | None = None,
                 image_method: str = "ig", n_steps: int = 32, threads: int | None = None) -> dict:
    """captum attributions (§11, ``engine.attributions.explain``) of ``model`` on the edited input:
    ``{target, image (H x W), text [(token, score)]}`` for the modalities it still has."""
    with torch_threads(threads):
        own = input_key(model) is not None  # a given fill is in the project's format
        return _explain(model, _edit(ds, data_cfg, index, edit, removal, None if own else fill, swap_partner, model),
                        image_method, n_steps)


def prediction_frame(original: Counterfactual, edited: Counterfactual) -> pd.DataFrame:
    """One row per model: prediction and p(label) before and after the edit, and their change."""
    rows = []
    for name, after in edited.readouts.items():
        before = original.readouts[name]
        p0, p1 = before.p_label["full"], after.p_label["full"]
        rows.append({"model": name, "original": before.pred, "p(label) original": round(p0, 3),
                     "edited": after.pred, "p(label) edited": round(p1, 3), "Δ p(label)": round(p1 - p0, 3),
                     "changed": "yes" if after.pred != before.pred else ""})
    return pd.DataFrame(rows)


def probability_frame(original: Counterfactual, edited: Counterfactual) -> pd.DataFrame:
    """Long table ``model, input (original|edited), class, p`` of every model's class probabilities."""
    rows = []
    for which, cf in (("original", original), ("edited", edited)):
        for name, r in cf.readouts.items():
            rows += [{"model": name, "input": which, "class": c, "p": p} for c, p in zip(cf.labels, r.probs)]
    return pd.DataFrame(rows)


def saliency_frame(original: Counterfactual, edited: Counterfactual) -> pd.DataFrame:
    """One row per model and modality: its saliency on the original and on the edited input."""
    rows = []
    for name, after in edited.readouts.items():
        for m in edited.modalities:
            a, b = original.readouts[name].saliency[m], after.saliency[m]
            rows.append({"model": name, "modality": m, "original": a, "edited": b,
                         "change": None if a is None or b is None else b - a})
    return pd.DataFrame(rows)


def view_frame(original: Counterfactual, edited: Counterfactual) -> pd.DataFrame:
    """One row per model and view: p(label) on the original and the edited input (None: no modality left)."""
    rows = []
    for name, after in edited.readouts.items():
        for view, p in after.p_label.items():
            rows.append({"model": name, "view": view, "p(label) original": original.readouts[name].p_label[view],
                         "p(label) edited": p})
    return pd.DataFrame(rows)



def example_image(example: Example, size: int = 128):
    """The example's image as ``H x W x 3`` uint8 (None when it has none or it cannot be read)."""
    from ..data.images import load_image

    raw = example.inputs.get("image")
    if raw is None:
        return None
    try:
        return load_image(raw, size, example.meta.get("source")).permute(1, 2, 0).numpy()
    except DataError:
        return None
