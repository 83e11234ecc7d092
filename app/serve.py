"""Start the dashboard's server with its first visit ready: ``python -m app.serve [streamlit flags]``.

Before the server listens, this process imports what the pages import (torch, transformers,
plotly, the library) and makes sure the demo teachers' saliency is in the teacher cache (computed
once per clone, then read from disk), so the first page a browser opens does not wait for either.
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

    import streamlit  # noqa: F401 - app/ is imported by the first page run: its caches want the runtime
    import msd_core.analysis.compare  # noqa: F401
    import msd_core.analysis.explore  # noqa: F401
    import msd_core.analysis.preview  # noqa: F401
    import msd_core.engine.attribution_cache  # noqa: F401
    import msd_core.options  # noqa: F401
    from msd_core.data.text import default_tokenizer

    default_tokenizer()


def warm_demo_caches(log=print) -> None:
    """What the Saliency explorer's first view of each shipped demo teacher needs (its training data
    config, the val split, the default removal): the teacher cache of every view, and the
    attributions of the example it opens on (the first, by Integrated Gradients)."""
    from msd_core.analysis.catalog import find_teachers, training_data_config
    from msd_core.analysis.explore import explorer_data
    from msd_core.engine.attribution_cache import cached_explain
    from msd_core.config import DistillRunConfig
    from msd_core.data.registry import load_split
    from msd_core.options import default
    from msd_core.paths import assets_dir


    for teacher in find_teachers(assets_dir()):
        if "error" in teacher:
            continue
        cfg = training_data_config(teacher)
        t = time.time()
        val = load_split(cfg, "val")
        cache = explorer_data(teacher["path"], cfg, val, removal=default(DistillRunConfig, "distill.removal"))
        cached_explain(teacher["path"], cfg, val, 0, "ig")
        if not cache.hit:
            log(f"computed the saliency of the demo teacher {Path(teacher['path']).name} once "
                f"({time.time() - t:.0f} s; cached on disk from now on)")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    print("preparing the dashboard (imports; the demo teachers' saliency the first time) …", flush=True)
    t = time.time()
    import_page_modules()
    try:
        warm_demo_caches()
    except Exception as e:  # noqa: BLE001 - a page says what is wrong when it gets there; the server starts
        print(f"the demo teachers' saliency could not be prepared: {e}", flush=True)
    print(f"ready to serve ({time.time() - t:.1f} s)", flush=True)
    from streamlit.web import cli as streamlit_cli

    sys.argv = ["streamlit", "run", str(ROOT / "app" / "streamlit_app.py"), *argv]
    return streamlit_cli.main()


if __name__ == "__main__":
    sys.exit(main())
