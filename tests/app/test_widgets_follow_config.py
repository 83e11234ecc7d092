"""Every page's widgets, walked: a widget that edits a config field (keyed ``<prefix><section>.<field>``)
takes its range, choices and help from that field, and every other number input or slider is one of
the few page-only ones listed here, each with the reason it is not a config field."""

import re

import pytest

from msd_core.config import DistillRunConfig, TeacherRunConfig
from msd_core.options import LIST_CHOICES, choices, field_at, help_text
from tests.app.test_pages import PAGES, run_app

CONFIG_KEY = re.compile(r"^(option-|hf-|cf-)([a-z_]+\.[a-z_]+)$")
PAGE_ONLY = {  # key or label prefix: why it is not a config field
    "cf-index|": "an example of the shown split (0 to its size - 1)",
    "cf-donor|": "the example whose image is swapped in (0 to the split's size - 1)",
    "Page (of": "the data page's pagination",
    "ledger-": "the ledger's sample sizes and thresholds, which only the page computes with",
    "student-": "a Hugging Face student's shape, read from the teacher's own config",
    "Smoothing": "the curves' display smoothing",
}


def config_field(path: str):
    """The field at ``path`` in the run config that has it (teacher and student runs share train./data.)."""
    for cls in (DistillRunConfig, TeacherRunConfig):
        try:
            return cls, field_at(cls, path)
        except (KeyError, AttributeError):
            continue
    raise AssertionError(f"{path}: no config field of that name")


def expected_bounds(field) -> tuple:
    bounds = field.metadata.get("range", {})
    if "None" in str(field.type) and "int" in str(field.type):  # an optional count: 0 stands for None
        return 0, bounds.get("at_most")
    return bounds.get("at_least"), bounds.get("at_most")


def page_only(widget) -> bool:
    return any((widget.key or "").startswith(p) or widget.label.startswith(p) for p in PAGE_ONLY)


def check_page(at, page: str) -> list[str]:
    """The config paths this page's widgets edit; fails on any widget that restates a field's range,
    choices or help, or a number input that is neither a config field nor a listed page-only one."""
    seen = []
    for kind in ("number_input", "selectbox", "multiselect", "checkbox", "text_input", "slider"):
        for widget in getattr(at, kind):
            match = CONFIG_KEY.match(widget.key or "")
            if match is None:
                assert kind not in ("number_input", "slider") or page_only(widget), \
                    f"{page}: the {kind} {widget.label!r} (key {widget.key!r}) edits no config field and is not " \
                    "listed as page-only"
                continue
            path = match.group(2)
            cls, field = config_field(path)
            seen.append(path)
            assert widget.help.startswith(help_text(cls, path)), (page, path, widget.help)
            if kind == "number_input":
                assert (widget.min, widget.max) == expected_bounds(field), (page, path, widget.min, widget.max)
            elif kind == "selectbox":
                assert list(widget.options) == [str(c) for c in choices(path)], (page, path)
            elif kind == "multiselect":
                assert list(widget.options) == LIST_CHOICES[path](), (page, path)
    return seen


def test_every_widget_of_every_page_follows_its_config_field(finished_students, tiny_teacher_runs, tmp_path,
                                                              monkeypatch):
    from tests.models.test_hf_folder import save_tiny_bert

    home, _ = finished_students
    monkeypatch.setenv("MSD_STUDIO_RUNS", str(home))
    monkeypatch.setenv("MSD_STUDIO_ASSETS", str(tiny_teacher_runs))
    at = run_app()
    edited = {}
    for page in PAGES:
        at.switch_page(page).run()
        assert not at.exception, (page, [e.value for e in at.exception])
        if page.endswith("data_teacher.py"):  # the Hugging Face form appears once a model is loaded
            at.selectbox[0].set_value("synthetic").run()
            folder = tmp_path / "bert"
            folder.mkdir(exist_ok=True)
            save_tiny_bert(folder)
            next(t for t in at.text_input if t.label.startswith("Path to a model.safetensors")).set_value(
                str(folder)).run()
            next(b for b in at.button if b.label == "Load").click().run()
            assert not at.exception
        edited[page] = check_page(at, page)
    assert {"distill.alpha", "distill.temperature", "distill.lam", "distill.tau", "train.epochs", "train.lr",
            "data.max_train_examples", "data.slice_weight", "distill.meta_lr"} <= set(edited["app_pages/distill.py"])
    assert {"train.epochs", "train.lr", "train.modality_dropout", "data.max_train_examples"} <= \
        set(edited["app_pages/data_teacher.py"])
    assert "distill.removal" in edited["app_pages/saliency.py"] and "distill.removal" in \
        edited["app_pages/counterfactual.py"]


@pytest.mark.parametrize("key,bounds", [("option-distill.temperature", (0.5, 10.0)),
                                        ("option-distill.temperature", (0.0, None)),
                                        ("my-temperature", (None, None))])
def test_the_walk_fails_on_a_restated_range_or_an_unlisted_number(key, bounds):
    """The check above can fail: a temperature input bounded by hand, or one that is no config field."""
    class Widget:
        label, help = "T", help_text(DistillRunConfig, "distill.temperature")
        min, max = bounds

    Widget.key = key

    class Page:
        number_input, selectbox, multiselect, checkbox, text_input, slider = [Widget()], [], [], [], [], []

    with pytest.raises(AssertionError):
        check_page(Page(), "distill")
