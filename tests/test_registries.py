"""NamedRegistry: order, lookup errors that list the choices, no double registration."""

import pytest

from msd_core.errors import ConfigError
from msd_core.registries import NamedRegistry


def test_registration_order_is_the_order_of_names():
    reg = NamedRegistry("colour")
    for name in ("red", "green", "blue"):
        reg.register(name)(name.upper())
    assert reg.names() == ["red", "green", "blue"] and list(reg) == reg.names()
    assert reg.get("green") == "GREEN" and reg["blue"] == "BLUE" and "red" in reg and len(reg) == 3


def test_an_unknown_name_is_a_config_error_listing_the_choices():
    reg = NamedRegistry("colour")
    reg.register("red")(1)
    reg.register("green")(2)
    with pytest.raises(ConfigError, match=r"^unknown colour 'mauve'; choose one of red, green$"):
        reg.get("mauve")
    with pytest.raises(ConfigError, match="unknown colour None"):
        reg.get(None)


def test_a_name_cannot_be_registered_twice():
    reg = NamedRegistry("colour")
    reg.register("red")(1)
    with pytest.raises(ValueError, match="colour 'red' is registered twice"):
        reg.register("red")(2)
    assert reg.get("red") == 1


def test_the_project_registries_hold_what_the_method_names():
    from msd_core.data.registry import DATASETS
    from msd_core.data.views import REMOVALS
    from msd_core.method.objectives import OBJECTIVES
    from msd_core.method.saliency import MEASURES
    from msd_core.method.weighting import WEIGHTINGS

    assert OBJECTIVES.names() == ["none", "kd", "msd"]
    assert WEIGHTINGS.names() == ["uniform", "population", "instance-soft", "instance-hard", "learned",
                                  "learned-global"]
    assert [n for n, w in WEIGHTINGS.items() if w.learned] == ["learned", "learned-global"]
    assert MEASURES.names() == ["loss-drop", "kl-shift", "confidence-drop"]
    assert REMOVALS.names() == ["drop", "mask", "mean", "swap"]
    assert DATASETS.names() == ["easy-vqa", "synthetic", "hateful-memes", "mm-imdb", "snli-ve", "vqa-v2", "folder"]
