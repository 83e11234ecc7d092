"""The counterfactual editor under streamlit's AppTest, with the shipped demo teacher and a tiny student."""

from streamlit.testing.v1 import AppTest

from tests.app.conftest import APP


def test_counterfactual_page_edits_change_the_shown_prediction(demo_teacher_and_tiny_student):
    from msd_core.config import TeacherRunConfig
    from msd_core.data import load_split

    teacher, _ = demo_teacher_and_tiny_student
    ds = load_split(TeacherRunConfig.load(teacher / "run.json").data, "val")
    at = AppTest.from_file(APP, default_timeout=180).run()
    at.switch_page("app_pages/counterfactual.py").run()
    at.selectbox(key="cf-teacher").set_value(
        next(t for t in at.selectbox(key="cf-teacher").options if "synthetic" in t)).run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == "Counterfactual editor"
    students = next(m for m in at.multiselect if m.key.startswith("cf-students"))
    assert len(students.options) == 1 and len(students.value) == 1  # its own student, chosen by default

    def predictions():
        return next(d.value for d in at.dataframe if "p(label) edited" in d.value)

    first = predictions()
    assert list(first["model"]) == ["teacher", "kd · student-small · seed 0 · tiny-kd"]
    assert (first["original"] == first["edited"]).all() and (first["Δ p(label)"] == 0).all()
    assert "why the teacher says" in "\n".join(m.value for m in at.markdown)

    ex = ds.examples[0]
    label = ds.labels[ex.target]
    other = next(lab for lab in ds.labels if lab != label)
    text = next(t for t in at.text_area if t.key.startswith("cf-text"))
    assert text.value == ex.inputs["text"]
    text.set_value(f"{other.lower()} {other.lower()} in this picture").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    after = predictions()
    teacher_row = after[after["model"] == "teacher"].iloc[0]
    assert teacher_row["p(label) edited"] != teacher_row["p(label) original"]
    assert "text edited" in "\n".join(c.value for c in at.caption)

    next(t for t in at.toggle if t.key.startswith("cf-remove-text")).set_value(True).run()
    assert not at.exception and not at.error
    sal = next(d.value for d in at.dataframe if "modality" in d.value and "change" in d.value)
    assert (sal[sal["modality"] == "text"]["edited"] == 0).all()  # a removed modality's saliency

    next(t for t in at.toggle if t.key.startswith("cf-remove-text")).set_value(False).run()
    next(t for t in at.text_area if t.key.startswith("cf-text")).set_value("   ").run()
    assert "the edited text is empty" in "\n".join(e.value for e in at.error)
    assert not at.exception

    at.button[0].click().run()  # Reset edits
    assert not at.error and (predictions()["Δ p(label)"] == 0).all()
