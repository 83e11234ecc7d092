"""Known answers of the counterfactual editor's logic (msd_core.analysis.counterfactual)."""

import json
import time

import pytest
import torch

from msd_core.analysis.catalog import find_students
from msd_core.analysis.counterfactual import (Edit, counterfactual, edited_example,
                                              prediction_frame, saliency_frame)
from msd_core.config import DataConfig
from msd_core.data.registry import load_split
from msd_core.engine.checkpoint import load_model, model_file
from msd_core.errors import DataError, MSDError
from msd_core.paths import REPO
from tests.conftest import tiny_model

DEMO = REPO / "assets" / "teachers" / "synthetic"


@pytest.fixture(scope="module")
def demo():
    cfg = DataConfig.from_dict(json.loads((DEMO / "run.json").read_text())["config"]["data"])
    ds = load_split(cfg, "val")
    teacher = load_model(model_file(DEMO))[0]
    return cfg, ds, {"teacher": teacher, "student": tiny_model(ds)}


def run(demo, edit=Edit(), index=3, **kw):
    cfg, ds, models = demo
    kw.setdefault("image_method", None)
    return counterfactual(models, ds, cfg, index, edit, **kw)


def test_an_edit_that_changes_nothing_gives_the_original_exactly(demo):
    cfg, ds, models = demo
    ex = ds.examples[3]
    same = run(demo, Edit(image_from=3, text=ex.inputs["text"]))
    original = run(demo)
    for name in models:
        for view, z in original.readouts[name].logits.items():
            assert torch.equal(z, same.readouts[name].logits[view]), (name, view)
        assert original.readouts[name].saliency == same.readouts[name].saliency
    # and the original is the model's own output on the collated example
    from msd_core.analysis.counterfactual import collator_for

    with torch.inference_mode():
        direct = models["teacher"](collator_for(ds, cfg)([ex]))[0]
    assert torch.equal(original.readouts["teacher"].logits["full"], direct)
    assert (prediction_frame(original, same)["changed"] == "").all()


def test_swapping_the_image_changes_only_the_views_that_see_it(demo):
    cfg, ds, models = demo
    donor = next(i for i, e in enumerate(ds.examples) if e.target != ds.examples[3].target)
    original, swapped = run(demo), run(demo, Edit(image_from=donor))
    for name in models:
        a, b = original.readouts[name].logits, swapped.readouts[name].logits
        assert torch.equal(a["only:text"], b["only:text"]) and torch.equal(a["without:image"], b["without:image"])
        assert not torch.equal(a["only:image"], b["only:image"]) and not torch.equal(a["full"], b["full"])
    assert swapped.example.inputs["image"] is ds.examples[donor].inputs["image"]
    assert swapped.example.inputs["text"] == ds.examples[3].inputs["text"]


@pytest.mark.parametrize("removal", ["drop", "mask"])
def test_removing_a_modality_gives_the_without_view(demo, removal):
    original = run(demo, removal=removal)
    for m in ("image", "text"):
        cut = run(demo, Edit(remove=(m,)), removal=removal)
        for name, r in cut.readouts.items():
            assert torch.equal(r.logits["full"], original.readouts[name].logits[f"without:{m}"])
            assert r.saliency[m] == 0.0  # full and without:m are the same input now
            assert r.logits[f"only:{m}"] is None  # nothing left in that view
        frame = saliency_frame(original, cut)
        other = "text" if m == "image" else "image"
        assert frame[frame["modality"] == other]["edited"].isna().all()


def test_editing_the_text_changes_the_teacher_and_is_checked(demo):
    cfg, ds, models = demo
    ex = ds.examples[3]
    label = ds.labels[ex.target].lower()
    other = next(lab for lab in ds.labels if lab != ds.labels[ex.target]).lower()
    edited = run(demo, Edit(text=ex.inputs["text"].replace(label, other)))
    before = run(demo).readouts["teacher"]
    after = edited.readouts["teacher"]
    assert torch.equal(before.logits["only:image"], after.logits["only:image"])
    assert not torch.equal(before.logits["only:text"], after.logits["only:text"])
    for blank in ("", "   \n"):
        with pytest.raises(DataError, match="the edited text is empty"):
            run(demo, Edit(text=blank))
    with pytest.raises(MSDError, match="keep at least one"):
        run(demo, Edit(remove=("image", "text")))
    with pytest.raises(MSDError, match="donor example 99999 does not exist"):
        edited_example(ds, 3, Edit(image_from=99999))


def test_mean_and_swap_removal_run_on_one_example(demo):
    for removal in ("mean", "swap"):
        cf = run(demo, Edit(remove=("image",)), removal=removal)
        assert set(cf.readouts["teacher"].saliency) == {"image", "text"}
        assert abs(sum(cf.readouts["teacher"].probs) - 1) < 1e-5


def test_one_edit_of_the_demo_teacher_with_attributions_is_fast(demo):
    """The per-edit latency the page pays (teacher + one student, views and captum attributions, on
    one torch thread as the dashboard runs it); the thread count is restored afterwards."""
    cfg, ds, models = demo
    threads = torch.get_num_threads()
    run(demo, Edit(text="warm up"), image_method="ig", threads=1)  # the first call pays torch's one-off warm-up
    times = []
    for i, text in enumerate(["is alpha there", "bravo in this picture", "a charlie"]):
        t0 = time.perf_counter()
        cf = counterfactual(models, ds, cfg, 10 + i, Edit(text=text, image_from=i), image_method="ig", threads=1)
        times.append(time.perf_counter() - t0)
        assert "image" in cf.attributions and "text" in cf.attributions
        assert torch.get_num_threads() == threads
    print(f"counterfactual per edit (teacher + student, with attributions, 1 thread): "
          f"{', '.join(f'{t * 1000:.0f} ms' for t in times)}")
    assert max(times) < 5.0
    from msd_core.analysis.counterfactual import explain_edit

    attr = explain_edit(models["teacher"], ds, cfg, 12, Edit(text="a charlie", image_from=2), threads=1)
    assert attr["target"] == cf.attributions["target"] and attr["text"] == cf.attributions["text"]


def test_find_students_lists_student_folders_that_fit(tmp_path, demo):
    from msd_core.engine.checkpoint import save_model

    cfg, ds, models = demo
    folder = tmp_path / "runs" / "kd-seed0"
    save_model(folder / "model.safetensors", models["student"], ds.labels, {"data": "synthetic"})
    (folder / "run.json").write_text(json.dumps({"kind": "student", "status": "finished", "config": {
        "teacher": str(DEMO), "data": {"name": "synthetic"}, "distill": {"method": "kd"},
        "model": {"preset": "student-small"}, "train": {"seed": 0}}}))
    found = find_students(ds.labels, ds.modality_names, "synthetic", tmp_path / "runs", teacher=DEMO)
    assert [s["path"] for s in found] == [str(folder)] and found[0]["of_teacher"]
    assert found[0]["name"].startswith("kd · student-small · seed 0")
    assert find_students(ds.labels[::-1], ds.modality_names, "synthetic", tmp_path / "runs") == []
