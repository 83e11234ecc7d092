"""Hugging Face teachers the size of CLIP ViT-B/32 and ViLT-B/32, built from their configs (random
weights; nothing is downloaded), distilled into the project's student-small on easy-VQA:

- an MSD epoch reading the teacher cache, against the same epoch with the teacher run on every view
  of every batch as well (what the cache saves);
- the cache's throughput (its batched predictor: batches of 32, every view) against a
  one-example-at-a-time loop, both with the teacher loaded; and the whole cold build's;
- the peak resident memory of the process that does all of it.

Each model runs in its own process (``python -m benchmarks.hf_models FAMILY OUT``), so that its peak
memory is its own. The configs are the transformers defaults of ``CLIPConfig`` and ``ViltConfig``,
which are those two models; the tokenizer is the shared BERT one (30,522 tokens, which CLIP's
49,408-row embedding table holds).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

from .common import Row
from .memory import child_peak_mb

EXAMPLES = {"clip": 128, "vilt": 64}  # the MSD epoch and the cache build
ONE_AT_A_TIME = 16
BATCH = 32


def write_folder(family: str, folder: Path) -> None:
    import torch
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel, ViltConfig, ViltImageProcessorPil, ViltModel

    from msd_core.data.text import default_tokenizer

    torch.manual_seed(0)
    if family == "clip":
        CLIPModel(CLIPConfig()).save_pretrained(folder)
        CLIPImageProcessorPil().save_pretrained(folder)
    else:
        ViltModel(ViltConfig()).save_pretrained(folder)
        ViltImageProcessorPil().save_pretrained(folder)
    default_tokenizer().save_pretrained(folder)


def measure(family: str, out: Path, device: str = "cpu") -> dict:
    import torch

    from msd_core.config import DataConfig
    from msd_core.data import Collator, load_split, named_views
    from msd_core.engine.checkpoint import load_model, save_model
    from msd_core.engine.predict import predict_views
    from msd_core.engine.teacher_cache import teacher_logits
    from msd_core.models import create_model
    from msd_core.models.base import count_parameters

    from .teacher_cache import msd_epoch

    tmp = Path(tempfile.mkdtemp(prefix=f"msd-bench-{family}-"))
    os.environ["MSD_STUDIO_CACHE"] = str(tmp / "cache")
    data = DataConfig("easy-vqa")
    n = EXAMPLES[family]
    ds = load_split(data, "train").subset(range(n))
    write_folder(family, tmp / family)
    torch.manual_seed(0)
    teacher = create_model("hf", ds.modalities, len(ds.labels), overrides={"pretrained": str(tmp / family)})
    params = count_parameters(teacher)
    (tmp / "teacher").mkdir()
    save_model(tmp / "teacher" / "model.safetensors", teacher, ds.labels)
    teacher.save_processor(tmp / "teacher")
    del teacher
    t0 = time.perf_counter()
    cache = teacher_logits(tmp / "teacher", data, ds, device=device, batch_size=BATCH, progress=lambda *_: None)
    build = time.perf_counter() - t0

    teacher, _ = load_model(tmp / "teacher" / "model.safetensors", device)
    t_collator = Collator.for_model(ds, data, teacher)
    views = named_views(ds.modality_names, without=True)
    t0 = time.perf_counter()
    predict_views(teacher, ds, t_collator, device, views, batch_size=BATCH)
    batched = time.perf_counter() - t0
    t0 = time.perf_counter()
    with torch.inference_mode():
        for ex in ds.examples[:ONE_AT_A_TIME]:
            teacher.forward_views(t_collator([ex]).to(device), views)
    single = time.perf_counter() - t0

    s_collator = Collator.for_data(ds, data)
    cached, live = (msd_epoch(ds, cache, s_collator, device, BATCH, teacher=t, teacher_collator=t_collator)
                    for t in (None, teacher))
    result = {"family": family, "parameters": params, "examples": n, "cache_build_s": build,
              "build_per_s": n / build, "batched_per_s": n / batched, "single_per_s": ONE_AT_A_TIME / single,
              "epoch_cached_s": cached, "epoch_live_s": live}
    out.write_text(json.dumps(result))
    return result


def run(device) -> list[Row]:
    tmp = Path(tempfile.mkdtemp(prefix="msd-bench-hf-"))
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    rows = []
    for family, name in (("clip", "CLIP ViT-B/32"), ("vilt", "ViLT-B/32")):
        out = tmp / f"{family}.json"
        peak = child_peak_mb([sys.executable, "-m", "benchmarks.hf_models", family, str(out), str(device)], env)
        r = json.loads(out.read_text())
        speedup = r["epoch_live_s"] / r["epoch_cached_s"]
        batched = r["batched_per_s"] / r["single_per_s"]
        rows += [Row(name, f"teacher parameters (random, from the config)", r["parameters"] / 1e6, "M"),
                 Row(name, f"MSD epoch, {r['examples']} examples: cache read", r["epoch_cached_s"], "s"),
                 Row(name, "MSD epoch: teacher run every step", r["epoch_live_s"], "s"),
                 Row(name, "MSD epoch: teacher every step ÷ cache", speedup, "×", "> 2", speedup > 2),
                 Row(name, "cache build from a cold start (loading the teacher included)", r["build_per_s"],
                     "examples/s"),
                 Row(name, "the cache's predictor, batches of 32, every view", r["batched_per_s"], "examples/s"),
                 Row(name, "one example at a time, every view", r["single_per_s"], "examples/s"),
                 Row(name, "batches of 32 ÷ one at a time", batched, "×", "> 1", batched > 1),
                 Row(name, "peak RSS of the whole process", peak, "MB")]
    return rows


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    measure(sys.argv[1], Path(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else "cpu")
