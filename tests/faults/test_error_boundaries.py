"""The dashboard's error boundary and its caches: an unexpected failure in a page is a message
naming the log that holds the traceback, and a data set edited in place is shown as it now is."""

from __future__ import annotations

import re
from pathlib import Path

from streamlit.testing.v1 import AppTest

from tests.app.conftest import APP
from tests.conftest import write_png


def test_an_unexpected_failure_in_a_page_is_a_message_with_its_log(empty_home, monkeypatch):
    import app.state

    def broken(*roots):
        raise RuntimeError("the disk answered nonsense")

    monkeypatch.setattr(app.state, "find_teachers", broken)
    at = AppTest.from_file(APP, default_timeout=120).run()
    assert not at.exception, [e.value for e in at.exception]
    errors = "\n".join(e.value for e in at.error)
    match = re.search(r"unexpected error: RuntimeError: the disk answered nonsense — the full traceback is in (\S+);",
                      errors)
    assert match, errors
    log = Path(match.group(1))
    assert log.parent == empty_home / "runs" / "logs" and "Traceback" in log.read_text()


def test_a_data_set_edited_in_place_is_shown_as_it_now_is(empty_home):
    root = empty_home / "data"
    for i in range(3):
        write_png(root / f"{i}.png", color=(90 * i, 30, 30))

    def write(words):
        (root / "train.csv").write_text("image,text,label\n" + "".join(
            f"{i % 3}.png,{w},{i % 2}\n" for i, w in enumerate(words)))

    write(["apple", "banana", "cherry", "damson"])
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page("app_pages/data_teacher.py").run()
    at.selectbox[0].set_value("folder").run()
    at.selectbox[1].set_value("test").run()
    at.text_input[0].set_value(str(root)).run()
    assert [e.value for e in at.error] == [f"{root}: no test file — add test.csv or name it in the options"]
    # add the test file, then edit it in place (same rows, new texts)
    (root / "test.csv").write_text((root / "train.csv").read_text())
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    captions = lambda: {c.value for c in at.caption}  # noqa: E731
    assert {"apple", "banana", "cherry", "damson"} <= captions(), captions()
    (root / "test.csv").write_text((root / "test.csv").read_text().replace("apple", "avocado"))
    at.run()
    assert "avocado" in captions() and "apple" not in captions()
