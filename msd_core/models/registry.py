"""The model registries, the one place a model family is added.

- ``ARCHITECTURES``: an architecture's name (a checkpoint's ``spec["arch"]``) -> what builds the
  model from a resolved spec: ``build(spec, modalities, num_labels, load_pretrained=...)``.
- ``PRESETS``: a preset's name (``--model``) -> ``Preset``: its architecture, its settings, what it
  is, and how its spec is resolved (the project's presets share ``presets.resolve_project_spec``;
  the Hugging Face presets read a folder, ``hf.spec.resolve_hf_spec``).
- ``hf.families.HF_FAMILIES``: what a folder written by ``save_pretrained`` is, and which
  architecture it builds.

A new model family is one call, ``register_family(arch, build, presets)``, in the module that
defines the model (README, "Add a model family"): its presets then appear in ``msd presets``,
``--model``'s choices and the dashboard's preset lists, and its checkpoints load by name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from ..registries import NamedRegistry


@dataclass(frozen=True)
class Preset:
    """A named model: its architecture, the settings it gives (``hidden``, ``layers``, ...; any
    setting it leaves out takes the project's common default), and a line saying what it is.
    ``resolve(name, overrides) -> spec`` replaces the project's resolution (a Hugging Face preset
    reads its folder); ``from_folder``: its shape comes from a Hugging Face folder, so it is only
    built once one is given; ``hf``: a Hugging Face model whose students are smaller models of the
    teacher's own family (docs/METHOD.md §16.3)."""

    arch: str
    doc: str
    settings: dict = field(default_factory=dict)
    resolve: Callable[[str, dict | None], dict] | None = None
    from_folder: bool = False
    hf: bool = False


ARCHITECTURES: NamedRegistry[Callable] = NamedRegistry("architecture")
PRESETS: NamedRegistry[Preset] = NamedRegistry("model preset")


def register_family(arch: str | None, build: Callable | None, presets: dict[str, Preset]) -> None:
    """Add a model family: the architecture ``arch`` built by ``build`` (None where the family's
    presets only use architectures registered already) and its ``presets``."""
    if arch is not None:
        ARCHITECTURES.register(arch)(build)
    for name, preset in presets.items():
        PRESETS.register(name)(preset)


def unregister_family(arch: str | None, presets) -> None:
    """Remove a family again (a test's toy family, when it is done)."""
    if arch is not None:
        ARCHITECTURES.unregister(arch)
    for name in presets:
        PRESETS.unregister(name)
