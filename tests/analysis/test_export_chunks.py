"""The per-example export written a chunk at a time: the chunks joined are the table a single
pass gives, for every removal (``mean`` fills with the whole split's mean; ``swap`` predicts the
whole split at once), the files (Parquet and CSV) hold it, and a chunk reads only its own rows."""

import numpy as np
import pandas as pd
import pytest

from msd_core.analysis.export import examples_chunks, examples_frame, read_export_meta, write_examples
from msd_core.config import DataConfig, DistillConfig
from msd_core.engine import cache_store
from msd_core.engine.predict import PREDICT_BATCH
from tests.conftest import teacher_and_students

DATA = dict(options={"n": 1200}, max_train_examples=48, max_eval_examples=300)  # 300 = 128 + 128 + 44


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A tiny teacher and three finished students, each with another removal, in a registry."""
    home = tmp_path_factory.mktemp("export-chunks")
    students = {removal: DistillConfig(method=method, removal=removal)
                for method, removal in (("kd", "drop"), ("msd", "mean"), ("msd", "swap"))}
    with teacher_and_students(home, DataConfig("synthetic", **DATA), students) as (reg, ids):
        yield home, [reg.run(i) for i in ids]


def test_chunks_joined_are_the_single_pass_table_for_every_removal(runs, monkeypatch):
    home, chosen = runs
    monkeypatch.setenv("MSD_STUDIO_CACHE", str(home / "cache"))
    whole, meta = examples_frame(chosen, "test")
    read_sizes = []
    read_now = cache_store.CachedView.read_now
    monkeypatch.setattr(cache_store.CachedView, "read_now",
                        lambda self, rows: read_sizes.append(len(rows)) or read_now(self, rows))
    chunk_meta, frames = examples_chunks(chosen, "test", size=PREDICT_BATCH)
    read_sizes.clear()  # the saliency columns are walked before the chunks
    frames = list(frames)
    assert [len(f) for f in frames] == [128, 128, 44] and chunk_meta == meta
    assert read_sizes and max(read_sizes) <= PREDICT_BATCH
    joined = pd.concat(frames, ignore_index=True)
    pd.testing.assert_frame_equal(joined, whole)  # bit for bit, the removal of each run included
    assert {r["config"]["distill"]["removal"] for r in chosen} == {"drop", "mean", "swap"}


def test_the_file_holds_the_table_a_chunk_at_a_time(runs, tmp_path, monkeypatch):
    home, chosen = runs
    monkeypatch.setenv("MSD_STUDIO_CACHE", str(home / "cache"))
    whole, meta = examples_frame(chosen, "test")
    out = tmp_path / "examples.parquet"
    assert write_examples(*examples_chunks(chosen, "test", size=PREDICT_BATCH), out, "parquet") == whole.shape
    import pyarrow.parquet as pq

    assert pq.ParquetFile(out).num_row_groups == 3
    pd.testing.assert_frame_equal(pd.read_parquet(out), whole)
    assert read_export_meta(out) == meta
    csv = tmp_path / "examples.csv"
    assert write_examples(*examples_chunks(chosen, "test", size=PREDICT_BATCH), csv, "csv") == whole.shape
    back = pd.read_csv(csv)
    assert list(back.columns) == list(whole.columns) and list(back["id"]) == list(whole["id"])  # one header
    logits = [c for c in whole.columns if "/logit:" in c]
    np.testing.assert_allclose(back[logits].to_numpy(), whole[logits].to_numpy(), rtol=1e-6)


def test_a_chunk_size_the_prediction_batches_do_not_divide_is_refused(runs):
    with pytest.raises(ValueError, match=f"positive multiple of {PREDICT_BATCH}"):
        examples_chunks(runs[1], "test", size=100)


def test_a_failed_export_leaves_no_file(runs, tmp_path):
    def frames():
        yield pd.DataFrame({"a": [1.0]})
        raise RuntimeError("the disk went away")

    out = tmp_path / "examples.parquet"
    with pytest.raises(RuntimeError):
        write_examples({}, frames(), out, "parquet")
    assert list(tmp_path.iterdir()) == []
