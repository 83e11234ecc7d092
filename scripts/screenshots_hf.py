"""Screenshots of Hugging Face models in the dashboard (for the README):
``.venv/bin/python scripts/screenshots_hf.py [OUT_DIR]`` (default assets/screenshots).

- ``data_hf_model.png``: the Data & teacher page after loading a CLIP ViT-B/32 folder (built from its
  config with random weights, as the benchmark builds it: nothing is downloaded);
- ``explorer_hf.png``: the saliency explorer on a tiny CLIP teacher trained for one epoch on the
  synthetic set (its attributions come through CLIP's own pixels and tokens).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from benchmarks.hf_models import write_folder  # noqa: E402
from tests.app.live_server import browser_page, dashboard, wait_until_idle  # noqa: E402
from tests.hf_fixtures import clip_folder  # noqa: E402


def train_tiny_clip_teacher(home: Path) -> None:
    from msd_core.config import DataConfig, ModelConfig, TeacherRunConfig, TrainConfig
    from msd_core.engine.teacher import train_teacher

    folder = clip_folder(home / "tiny-clip", image_size=64)
    train_teacher(TeacherRunConfig(data=DataConfig("synthetic", options={"n": 600}, max_eval_examples=60),
                                   model=ModelConfig("hf", {"pretrained": str(folder)}),
                                   train=TrainConfig(epochs=3, batch_size=32, lr=1e-3),
                                   out_dir=str(home / "runs" / "clip-teacher")), progress=False)


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix="msd-shots-hf-"))
    write_folder("clip", home / "clip-vit-base-patch32")
    train_tiny_clip_teacher(home)
    env = {"MSD_STUDIO_RUNS": str(home / "runs"), "MSD_STUDIO_CACHE": str(home / "cache"),
           "MSD_STUDIO_ASSETS": str(home / "assets")}
    with dashboard(env) as url, browser_page(1400, 1500) as page:
        page.goto(f"{url}/data_teacher")
        page.get_by_role("heading", name="Data & teacher").wait_for()
        wait_until_idle(page)
        page.get_by_text("Load a checkpoint or a Hugging Face model").click()
        box = page.locator('input[aria-label^="Path to a model.safetensors"]')
        box.fill(str(home / "clip-vit-base-patch32"))
        box.press("Enter")
        wait_until_idle(page)
        page.get_by_role("button", name="Load", exact=True).click()
        page.get_by_text("clip (dual-encoder)").first.wait_for(timeout=120_000)
        wait_until_idle(page)
        page.get_by_text("Hugging Face model", exact=False).first.scroll_into_view_if_needed()
        page.screenshot(path=str(out / "data_hf_model.png"))
        print("saved", out / "data_hf_model.png", flush=True)

        page.goto(f"{url}/saliency")
        page.get_by_role("heading", name="Saliency explorer").wait_for()
        page.get_by_text("The teacher on every view").first.wait_for(timeout=180_000)
        wait_until_idle(page)
        page.screenshot(path=str(out / "explorer_hf.png"), full_page=True)
        print("saved", out / "explorer_hf.png", flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "assets" / "screenshots")
