"""Start the dashboard's server with its first visit ready: ``python -m app.serve [streamlit flags]``.

Before the server listens, this process imports what the pages import (torch, transformers,
plotly, the library) and computes what the Overview and the Saliency explorer show first
(``warm_first_views``), so the first page a browser opens waits for neither.
Then it runs ``streamlit run app/streamlit_app.py`` in this same process, so the pages find those
modules already imported. ``msd dashboard`` and ``./studio`` start the server this way.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def import_page_modules() -> None:
    """The modules the pages import at their first run (transformers' BERT alone takes seconds)."""
    import plotly.graph_objects  # noqa: F401
    import torch  # noqa: F401
    from transformers import BertConfig, BertModel  # noqa: F401

    import app.components.charts  # noqa: F401 - altair, for the first pages' charts
    import msd_core.analysis.compare  # noqa: F401
    import msd_core.analysis.explore  # noqa: F401
    import msd_core.analysis.preview  # noqa: F401
    import msd_core.engine.attribution_cache  # noqa: F401
    import msd_core.options  # noqa: F401
    from msd_core.data.text import default_tokenizer

    default_tokenizer()


def warm_first_views(log=print) -> None:
    """Compute, through the pages' own cached accessors, what the Overview and the Saliency
    explorer show first: the built-in data sets, and for each shipped demo teacher its saliency
    table (the teacher cache of every view), thumbnails and the attributions of the example the
    explorer opens on. Results on disk (the teacher cache, attributions) are computed once per
    clone; the in-memory caches are global, so the first browser session finds them filled."""
    import logging

    from msd_core.analysis.catalog import find_teachers
    from msd_core.config import DistillRunConfig
    from msd_core.options import default
    from msd_core.paths import assets_dir

    quiet = ("streamlit.runtime.caching.cache_data_api", "streamlit.runtime.scriptrunner_utils.script_run_context")
    for name in quiet:  # they warn that there is no runtime yet: expected before the server starts
        logging.getLogger(name).setLevel(logging.ERROR)
    from app.state import (BUILT_IN, attributions, built_in, data_key, saliency_table, teacher_data_config,
                           thumbnails)

    for name in BUILT_IN:
        built_in(name)
    removal, measure = (default(DistillRunConfig, f"distill.{k}") for k in ("removal", "saliency"))
    for teacher in find_teachers(assets_dir()):
        if "error" in teacher:
            continue
        data_json, t = data_key(teacher_data_config(teacher)), time.time()
        saliency_table(teacher["path"], data_json, "val", removal, measure)
        thumbnails(data_json, "val")
        attributions(teacher["path"], data_json, "val", 0, "ig")
        if time.time() - t > 5:
            log(f"prepared the demo teacher {Path(teacher['path']).name} ({time.time() - t:.0f} s; its saliency "
                f"and attributions are kept on disk from now on)")


def freeze_heap() -> None:
    """Exempt everything imported and prepared so far from the garbage collector's full passes.

    Streamlit collects garbage after every script run (``runner.postScriptGC``). With torch and
    transformers in the heap that pass took 0.3-0.4 s of every run of the explorer, holding the
    interpreter lock while the browser waited on the same process for the page's scripts. Those
    objects live as long as the server; only what the pages allocate later is still collected."""
    import gc
    import inspect

    gc.collect()
    gc.freeze()
    # Streamlit reads the call stack when a page draws its first element (is it a REPL?), and
    # inspect then maps every loaded module to its file: 0.15 s of the first visit, unless done
    # here. A file that is no module's makes inspect go through them all.
    inspect.getmodule(compile("", "<page>", "exec"))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    print("preparing the dashboard (imports; the demo teachers' saliency the first time) …", flush=True)
    t = time.time()
    import_page_modules()
    try:
        warm_first_views()
    except Exception as e:  # noqa: BLE001 - a page says what is wrong when it gets there; the server starts
        print(f"the demo teachers' saliency could not be prepared: {e}", flush=True)
    print(f"ready to serve ({time.time() - t:.1f} s)", flush=True)
    freeze_heap()
    from streamlit.web import cli as streamlit_cli

    sys.argv = ["streamlit", "run", str(ROOT / "app" / "streamlit_app.py"), *argv]
    return streamlit_cli.main()


if __name__ == "__main__":
    sys.exit(main())
