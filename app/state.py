"""Cached access to msd_core for the pages (loading is cached; nothing here does tensor math)."""

from __future__ import annotations

import streamlit as st

from msd_core.config import DataConfig
from msd_core.data.fingerprint import files_stamp
from msd_core.data.registry import DATASETS, load_split
from msd_core.paths import assets_dir, runs_dir
from msd_core.analysis.catalog import find_teachers, training_data_config

# The data sets that need no folder, browsed with their loaders' default options.
BUILT_IN = {name: {} for name, entry in DATASETS.items() if not entry.on_disk}


def data_key(cfg: DataConfig) -> str:
    """A data config as the cached accessors take it (JSON, sorted keys)."""
    return cfg.to_json()


def dataset(name: str, split: str, root: str | None = None, options_key: tuple = ()):
    """A data split, loaded once per process while its files stay as they are (errors propagate to
    the page as messages)."""
    return _dataset(name, split, root, options_key, files_stamp(root))


@st.cache_resource(show_spinner="Loading the data set…", max_entries=8)
def _dataset(name: str, split: str, root: str | None, options_key: tuple, stamp: str):
    return load_split(DataConfig(name=name, root=root, options=dict(options_key)), split)


def stamp(data_json: str | None, teacher_path: str | None = None) -> str:
    """What keys the in-memory caches besides their arguments: the data files' and the teacher
    checkpoint's sizes and modification times, so an edit in place is never served stale."""
    from msd_core.engine.checkpoint import model_file

    ckpt = model_file(teacher_path) if teacher_path else None
    return files_stamp(DataConfig.from_json(data_json).root if data_json else None, ckpt)


def built_in(name: str, split: str = "train"):
    return dataset(name, split, None, tuple(sorted(BUILT_IN[name].items())))


@st.cache_data(ttl=5, show_spinner=False)
def _teachers_under(*roots: str) -> list[dict]:
    return find_teachers(*roots)


def teachers() -> list[dict]:
    """Trained models under assets/ and runs/ (re-read every few seconds)."""
    return _teachers_under(str(assets_dir()), str(runs_dir()))


def teacher_data_config(teacher: dict) -> DataConfig:
    """The data config a teacher was trained with (so the explorer shows the same data)."""
    return training_data_config(teacher, BUILT_IN.get(teacher["data"], {}))


def explorer_cache(teacher_path: str, data_json: str, split: str, removal: str):
    return _explorer_cache(teacher_path, data_json, split, removal, stamp(data_json, teacher_path))


@st.cache_resource(show_spinner="Running the teacher on every view (once; then cached on disk)…", max_entries=8)
def _explorer_cache(teacher_path: str, data_json: str, split: str, removal: str, stamp: str):
    from msd_core.analysis.explore import explorer_data

    cfg = DataConfig.from_json(data_json)
    ds = load_split(cfg, split)
    return ds, explorer_data(teacher_path, cfg, ds, removal=removal)


def thumbnails(data_json: str, split: str) -> tuple[list[str], list[int]]:
    return _thumbnails(data_json, split, stamp(data_json))


@st.cache_data(show_spinner=False, max_entries=8)
def _thumbnails(data_json: str, split: str, stamp: str) -> tuple[list[str], list[int]]:
    """Hover thumbnails of a split's examples (``msd_core.analysis.preview.thumbnail_uris``); they depend on
    the data only, so every teacher and removal strategy on that split shares them."""
    from msd_core.analysis.preview import thumbnail_uris

    return thumbnail_uris(load_split(DataConfig.from_json(data_json), split))


def saliency_table(teacher_path: str, data_json: str, split: str, removal: str, measure: str):
    return _saliency_table(teacher_path, data_json, split, removal, measure, stamp(data_json, teacher_path))


@st.cache_data(show_spinner=False, max_entries=32)
def _saliency_table(teacher_path: str, data_json: str, split: str, removal: str, measure: str, stamp: str):
    from msd_core.analysis.explore import saliency_frame

    ds, cache = explorer_cache(teacher_path, data_json, split, removal)
    return saliency_frame(cache, ds, measure)


def loaded_model(teacher_path: str):
    return _loaded_model(teacher_path, stamp(None, teacher_path))


@st.cache_resource(show_spinner=False, max_entries=4)
def _loaded_model(teacher_path: str, stamp: str):
    from msd_core.engine.checkpoint import load_model, model_file

    return load_model(model_file(teacher_path), "cpu")[0]


def attributions(teacher_path: str, data_json: str, split: str, index: int, image_method: str):
    return _attributions(teacher_path, data_json, split, index, image_method, stamp(data_json, teacher_path))


@st.cache_data(show_spinner="Computing attributions with captum (once; then kept on disk)…", max_entries=64)
def _attributions(teacher_path: str, data_json: str, split: str, index: int, image_method: str, stamp: str):
    from msd_core.engine.attribution_cache import cached_explain

    return cached_explain(teacher_path, DataConfig.from_json(data_json), dataset_for(data_json, split), index,
                          image_method, load=lambda: loaded_model(teacher_path))


def registry():
    from msd_core.runs import Registry, default_db

    return Registry(default_db())


def dataset_for(data_json: str, split: str):
    """A split of exactly the data config a run used (JSON of its DataConfig)."""
    return _dataset_for(data_json, split, stamp(data_json))


@st.cache_resource(show_spinner="Loading the data set…", max_entries=8)
def _dataset_for(data_json: str, split: str, stamp: str):
    return load_split(DataConfig.from_json(data_json), split)


@st.cache_data(show_spinner="Running both students on the split…", max_entries=16)
def compare_examples(run_a_id: str, run_b_id: str, split: str):
    from msd_core.analysis.compare import per_example

    reg = registry()
    return per_example(reg.run(run_a_id), reg.run(run_b_id), split)


@st.cache_data(ttl=5, show_spinner=False)
def _students_under(labels: tuple, modalities: tuple, data_name: str | None, teacher_path: str,
                    *roots: str) -> list[dict]:
    from msd_core.analysis.catalog import find_students

    return find_students(list(labels), list(modalities), data_name, *roots, teacher=teacher_path)


def students_for(teacher: dict) -> list[dict]:
    """Finished students under runs/ and assets/ that fit ``teacher``'s data (its labels and
    modalities), its own students first (re-read every few seconds)."""
    return _students_under(tuple(teacher["labels"]), tuple(teacher["modalities"]), teacher.get("data"),
                           teacher["path"], str(runs_dir()), str(assets_dir()))


def removal_fill(data_json: str, split: str):
    return _removal_fill(data_json, split, stamp(data_json))


@st.cache_resource(show_spinner="Averaging the data for mean removal (once)…", max_entries=4)
def _removal_fill(data_json: str, split: str, stamp: str):
    """``mean`` removal's fill of a split (``predict.dataset_fill``), computed once."""
    from msd_core.analysis.counterfactual import collator_for
    from msd_core.engine.predict import dataset_fill

    cfg = DataConfig.from_json(data_json)
    ds = dataset_for(data_json, split)
    return dataset_fill(ds, collator_for(ds, cfg))


def counterfactual_of(teacher_path: str, students: tuple, data_json: str, split: str, index: int,
                      edit_json: str, removal: str):
    """``msd_core.analysis.counterfactual.counterfactual`` (no attributions) of the teacher and
    ``students`` (``((name, path), ...)``) on one edited example; models and data are cached
    resources, and each (example, edit) is computed once."""
    return _counterfactual_of(teacher_path, students, data_json, split, index, edit_json, removal,
                              stamp(data_json, teacher_path))


@st.cache_data(show_spinner=False, max_entries=128)
def _counterfactual_of(teacher_path: str, students: tuple, data_json: str, split: str, index: int,
                       edit_json: str, removal: str, stamp: str):
    from msd_core.analysis.counterfactual import Edit, counterfactual

    models = {"teacher": loaded_model(teacher_path), **{name: loaded_model(path) for name, path in students}}
    fill = removal_fill(data_json, split) if removal == "mean" else None
    return counterfactual(models, dataset_for(data_json, split), DataConfig.from_json(data_json), index,
                          Edit.from_json(edit_json), removal=removal, fill=fill, image_method=None, threads=1)


def edit_attributions(teacher_path: str, data_json: str, split: str, index: int, edit_json: str, removal: str,
                      image_method: str):
    """The explorer's captum attributions of the teacher on one edited example
    (``msd_core.analysis.counterfactual.explain_edit``), once per (example, edit)."""
    return _edit_attributions(teacher_path, data_json, split, index, edit_json, removal, image_method,
                              stamp(data_json, teacher_path))


@st.cache_data(show_spinner="Computing attributions with captum…", max_entries=128)
def _edit_attributions(teacher_path: str, data_json: str, split: str, index: int, edit_json: str, removal: str,
                       image_method: str, stamp: str):
    from msd_core.analysis.counterfactual import Edit, explain_edit

    fill = removal_fill(data_json, split) if removal == "mean" else None
    return explain_edit(loaded_model(teacher_path), dataset_for(data_json, split), DataConfig.from_json(data_json),
                        index, Edit.from_json(edit_json), removal=removal, fill=fill, image_method=image_method,
                        threads=1)
