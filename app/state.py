"""Cached access to msd_core for the pages (loading is cached; nothing here does tensor math)."""

from __future__ import annotations

import streamlit as st

from msd_core.config import DataConfig
from msd_core.data.registry import load_split
from msd_core.paths import assets_dir, runs_dir
from msd_core.teacher import find_teachers

BUILT_IN = {"easy-vqa": {}, "synthetic": {"n": 2000}}


@st.cache_resource(show_spinner="Loading the data set…", max_entries=8)
def dataset(name: str, split: str, root: str | None = None, options_key: tuple = ()):
    """A data split, loaded once per process (errors propagate to the page as messages)."""
    return load_split(DataConfig(name=name, root=root, options=dict(options_key)), split)


def built_in(name: str, split: str = "train"):
    return dataset(name, split, None, tuple(sorted(BUILT_IN[name].items())))


@st.cache_data(ttl=5, show_spinner=False)
def _teachers_under(*roots: str) -> list[dict]:
    return find_teachers(*roots)


def teachers() -> list[dict]:
    """Trained models under assets/ and runs/ (re-read every few seconds)."""
    return _teachers_under(str(assets_dir()), str(runs_dir()))
