"""Data & teacher: browse any data set's examples, and inspect a teacher's per-view metrics."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import streamlit as st

from app.components.charts import history_chart, per_view_metrics_chart
from app.components.views import (cli_hint, display_path, example_cards, show_error, short_name,
                                  teacher_metrics_table)
from app.components.live import active_runs, run_card
from app.components.option_inputs import option_input
from app.state import BUILT_IN, dataset, registry, teachers
from msd_core.config import DataConfig, ModelConfig, TeacherRunConfig, TrainConfig
from msd_core.engine.checkpoint import is_msd_checkpoint
from msd_core.models.hf.families import HF_FAMILIES
from msd_core.models.hf.source import inspect_folder, looks_like_model
from msd_core.models.hf.bert_folder import inspect_hf_folder
from msd_core.flags import format_option, parse_option, to_cli
from msd_core.models.presets import resolve_spec
from msd_core.options import choices, default
from msd_core.paths import resolve_path, runs_dir
from msd_core.runs import launch
from msd_core.analysis.catalog import model_label, register_checkpoint
from msd_core.data.registry import DATASETS
from msd_core.analysis.preview import example_record, filter_indices

PAGE_SIZE = 12
T = TeacherRunConfig  # the defaults of the teacher forms
HF_LR = 1e-4  # a pretrained backbone fine-tunes at a smaller learning rate than TrainConfig's default


@dataclass
class Chosen:
    """The data set the page shows: its name, folder (None for a built-in one) and the loader options
    typed on the page; a teacher launched here trains on it."""
    name: str
    root: str | None = None
    typed: dict = field(default_factory=dict)
    ds: object = None

    @property
    def options(self) -> dict:
        """The options the chosen data set is loaded (and a teacher trained) with."""
        return {**BUILT_IN.get(self.name, {}), **self.typed}


def pick_data() -> Chosen:
    st.title("Data & teacher")
    left, mid, right = st.columns([2, 1, 3])
    chosen = Chosen(left.selectbox("Data set", DATASETS.names(),
                                   help="; ".join(f"{k}: {v.doc}" for k, v in DATASETS.items())))
    split = mid.selectbox("Split", ["train", "val", "test"])
    if chosen.name not in BUILT_IN:
        chosen.root = right.text_input("Data folder", placeholder="/path/to/the unpacked data set",
                                       help="; ".join(f"{k}: {v.doc}" for k, v in DATASETS.items() if v.on_disk)) \
            or None
    option_text = st.text_input("Loader options", placeholder="KEY=VALUE, comma-separated: task=multi-label "
                                "(synthetic), answers=1000 (vqa-v2), val=dev_unseen (hateful-memes)",
                                help="The data set's options, as msd's --data-option takes them.")
    if chosen.name not in BUILT_IN and not chosen.root:
        st.info(f"**{chosen.name}** reads files from disk: enter the data folder above. {DATASETS[chosen.name].doc}.")
        return chosen
    try:
        chosen.typed = dict(parse_option(t.strip()) for t in option_text.split(",") if t.strip())
        chosen.ds = dataset(chosen.name, split, chosen.root, tuple(sorted(chosen.options.items())))
    except Exception as e:  # noqa: BLE001
        show_error(e)
        return chosen
    browse(chosen, split)
    return chosen


def browse(chosen: Chosen, split: str) -> None:
    """The data set's summary, filters and a page of example cards."""
    ds = chosen.ds
    st.markdown(f"**{len(ds):,}** examples · modalities: **{', '.join(ds.modality_names)}** · "
                f"{len(ds.labels):,} labels · task: **{ds.task}** · metric: {ds.metric}")
    if ds.skipped:
        with st.expander(f"{len(ds.skipped)} bad row(s) skipped"):
            st.dataframe(pd.DataFrame([s.__dict__ for s in ds.skipped]), hide_index=True)
    f1, f2, f3 = st.columns([1, 1, 2])
    label = f1.selectbox("Label" if ds.task == "single-label" else "Has the label", ["(all)"] + ds.labels)
    reliances = sorted({ex.meta["reliance"] for ex in ds.examples if "reliance" in ex.meta})
    reliance = f2.selectbox("Ground-truth reliance", ["(all)"] + reliances) if reliances else None
    text = f3.text_input("Text contains", placeholder="e.g. color")
    idx = filter_indices(ds, None if label == "(all)" else label, text,
                         None if reliance in (None, "(all)") else reliance)
    if st.toggle("Shuffle (seeded)", value=True, help="Data sets are often ordered (easy-VQA lists every "
                 "question of an image together): shuffling shows a varied page."):
        idx = [idx[i] for i in np.random.default_rng(0).permutation(len(idx))]
    pages = max(1, math.ceil(len(idx) / PAGE_SIZE))
    page_no = st.number_input(f"Page (of {pages}; {len(idx):,} matching examples)", 1, pages, 1)
    shown = idx[(page_no - 1) * PAGE_SIZE: page_no * PAGE_SIZE]
    if shown:
        example_cards([example_record(ds, i) for i in shown], columns=6)
    else:
        st.info("No example matches these filters.")
    cli_hint(f"msd data --data {chosen.name} --split {split}"
             + (f" --data-root {chosen.root}" if chosen.root else "")
             + "".join(f" --data-option {format_option(k, v)}" for k, v in chosen.typed.items()) + " --show 12")


def teacher_config(chosen: Chosen, preset: str, overrides: dict, epochs: int, lr: float, dropout: float,
                   max_train: int | None) -> TeacherRunConfig:
    """The run config the teacher forms launch (and whose command they show)."""
    return TeacherRunConfig(
        data=DataConfig(name=chosen.name, root=str(resolve_path(chosen.root)) if chosen.root else None,
                        options=chosen.options, max_train_examples=max_train or None),
        model=ModelConfig(preset, overrides),
        train=TrainConfig(epochs=epochs, lr=lr, modality_dropout=dropout))


def launch_teacher(cfg: TeacherRunConfig) -> None:
    """Check the model config here (so a bad folder is a message, not a failed run), then launch."""
    try:
        resolve_spec(cfg.model.preset, cfg.model.overrides)
        run_id = launch(cfg, kind="teacher", registry=registry(),
                        name=f"teacher {cfg.model.preset} on {cfg.data.name}")
        st.success(f"Started teacher run {run_id}; it appears below and, when finished, in the teacher list.")
    except Exception as e:  # noqa: BLE001
        show_error(e)


def new_teacher_form(chosen: Chosen) -> None:
    with st.expander("Train a new teacher on this data set (runs as its own process)"):
        t1, t2, t3, t4, t5 = st.columns(5)
        teacher_presets = [p for p in choices("model.preset") if "teacher" in p]
        preset = t1.selectbox("Preset", teacher_presets, index=teacher_presets.index(default(T, "model.preset")),
                              help="hf-bert-teacher starts its text encoder from a local Hugging Face folder")
        epochs = option_input(t2, T, "train.epochs", label="Epochs")
        lr = option_input(t3, T, "train.lr", label="Learning rate")
        dropout = option_input(t4, T, "train.modality_dropout", label="Modality dropout p")
        max_train = option_input(t5, T, "data.max_train_examples", label="Training examples (0 = all)")
        folder = st.text_input("Hugging Face folder (for hf-bert-teacher)", key="hf-folder-train",
                               placeholder="/path/to/bert-base-uncased (config.json, model.safetensors, vocab.txt)")
        overrides = {"pretrained": str(resolve_path(folder.strip()))} \
            if preset == "hf-bert-teacher" and folder.strip() else {}
        cfg = teacher_config(chosen, preset, overrides, epochs, lr, dropout, max_train)
        if st.button("Train teacher", type="primary", disabled=chosen.ds is None):
            launch_teacher(cfg)
        cli_hint(to_cli(cfg))


@st.fragment(run_every=2)
def live_teachers() -> None:
    try:
        for r in active_runs(registry(), "teacher"):
            run_card(registry(), r)
    except Exception as e:  # noqa: BLE001 - a damaged registry: say how to rebuild it
        show_error(e)


def hf_form(chosen: Chosen, hf) -> None:
    """What a loaded Hugging Face model is, and the form that trains a teacher from it."""
    name = chosen.name
    st.success(f"Hugging Face model **{display_path(hf.path)}**: {hf.summary()}.")
    pair_with, role = None, HF_FAMILIES[hf.family].role
    if role == "vision-language":
        st.markdown(f"It becomes a teacher for **{name}** by training: a classification head for the data set's "
                    f"labels starts from random on top of the model"
                    + (", which reads the image and the text together." if hf.family == "single-stream" else
                       "'s image and text embeddings ([i, t, i⊙t, |i−t|]); a removed modality's embedding is "
                       "a learned null embedding."))
        preset, overrides = "hf", {"pretrained": hf.path}
    elif role == "text":
        pair_with = st.text_input("Vision encoder to pair it with (folder or hub id)", key="hf-pair-vision",
                                  placeholder="/path/to/vit-base-patch16-224")
        preset, overrides = "hf-pair", {"pretrained": hf.path, "vision": pair_with.strip()}
        try:
            inspect_hf_folder(hf.path)
            if not pair_with.strip():
                st.markdown("It has the BERT uncased vocabulary, so without a vision encoder it can also start the "
                            "text encoder of a single-stream teacher whose image encoder starts from random.")
                preset, overrides = "hf-bert-teacher", {"pretrained": hf.path}
        except Exception:  # noqa: BLE001 - not that BERT: only the pair is offered
            pass
    else:
        pair_with = st.text_input("Text encoder to pair it with (folder or hub id)", key="hf-pair-text",
                                  placeholder="/path/to/bert-base-uncased")
        preset, overrides = "hf-pair", {"pretrained": pair_with.strip(), "vision": hf.path}
    h1, h2, h3, h4 = st.columns(4)
    epochs = option_input(h1, T, "train.epochs", label="Epochs", key_prefix="hf-")
    lr = option_input(h2, T, "train.lr", label="Learning rate", value=HF_LR, key_prefix="hf-")
    max_train = option_input(h3, T, "data.max_train_examples", label="Training examples (0 = all)", key_prefix="hf-")
    if preset != "hf-bert-teacher" and h4.checkbox("Freeze the backbone", key="hf-freeze",
                                                   help="train only the head (and the null embeddings)"):
        overrides["freeze"] = True
    cfg = teacher_config(chosen, preset, overrides, epochs, lr, default(T, "train.modality_dropout"), max_train)
    missing = preset == "hf-pair" and not pair_with.strip()
    if st.button(f"Train a teacher on {name} from this model", type="primary", disabled=chosen.ds is None or missing):
        launch_teacher(cfg)
    cli_hint(to_cli(cfg))


def load_section(chosen: Chosen) -> None:
    with st.expander("Load a checkpoint or a Hugging Face model"):
        path = st.text_input("Path to a model.safetensors, the folder holding it, a Hugging Face model folder or a "
                             "hub id", placeholder="/path/to/run/model.safetensors, /path/to/clip-vit-base-patch32 "
                             "or openai/clip-vit-base-patch32")
        if st.button("Load", disabled=not path):
            st.session_state.pop("hf-model", None)
            try:
                if looks_like_model(path) and not is_msd_checkpoint(path):
                    st.session_state["hf-model"] = inspect_folder(path, role=None)
                else:
                    folder = register_checkpoint(path, runs_dir())
                    st.cache_data.clear()
                    st.success(f"Added {folder}; it is now listed with the other teachers.")
            except Exception as e:  # noqa: BLE001
                show_error(e)
        hf = st.session_state.get("hf-model")
        if hf is not None:
            hf_form(chosen, hf)
        st.caption("MSD Studio checkpoints keep their model spec, modalities and labels in the safetensors header, "
                   "so any model.safetensors written by `msd train-teacher` loads without its config. A Hugging "
                   "Face model (CLIP, SigLIP, ViLT, or a text or vision encoder to pair) is read from a folder "
                   "written by save_pretrained, with its processor files; a hub id only when this machine is "
                   "online.")


def teacher_section(chosen: Chosen) -> None:
    """The chosen data set's trained teachers: per-view test metrics and validation history."""
    name, root = chosen.name, chosen.root
    usable = [t for t in teachers() if "error" not in t]
    for t in teachers():
        if "error" in t:
            st.warning(f"{t['path']}: {t['error']}")
    matching = [t for t in usable if t["data"] == name]
    if not matching:
        st.info(f"No trained teacher for **{name}** yet.")
        st.code(f"msd train-teacher --data {name}" + (f" --data-root {root}" if root else "")
                + " --model teacher-small --epochs 3", language="bash")
        return
    choice = st.selectbox("Teacher", matching, format_func=lambda t: f"{short_name(t)} — {display_path(t['path'])}"
                          + (" (interrupted)" if t.get("status") == "interrupted" else ""))
    metrics = choice.get("metrics", {})
    if choice.get("status") == "interrupted" and choice.get("resume"):
        st.warning(f"This teacher's run is interrupted: {choice.get('run_error') or 'it stopped early'}")
        st.code(choice["resume"], language="bash")
    c1, c2 = st.columns(2)
    with c1:
        st.subheader("Test metrics per view")
        table = teacher_metrics_table([choice])
        if table.empty:
            st.info("This checkpoint has no metrics.json yet (training may still be running).")
        else:
            st.altair_chart(per_view_metrics_chart(table), key="teacher-per-view")
    with c2:
        st.subheader("Validation during training")
        if metrics.get("history"):
            st.altair_chart(history_chart(metrics["history"], metrics.get("metric")), key="teacher-history")
        else:
            st.info("No training history was recorded for this checkpoint.")
    st.markdown(f"Preset **{model_label(choice)}**, {choice['parameters']:,} parameters, "
                f"trained in {metrics.get('train_seconds', '?')} s on "
                f"{metrics.get('examples', {}).get('train', '?'):,} examples.")
    cli_hint(f"msd evaluate --checkpoint {display_path(choice['path'])} --data {name} --split test")


def page() -> None:
    chosen = pick_data()
    st.header("Teacher")
    new_teacher_form(chosen)
    live_teachers()
    load_section(chosen)
    teacher_section(chosen)


page()
