import json

import pytest
import torch

from msd_core.config import DataConfig
from msd_core.data import Collator, load_split
from msd_core.data.images import load_image
from msd_core.data.synthetic import WORDS
from msd_core.errors import ConfigError, DataError
from tests.conftest import write_png


# -- synthetic ---------------------------------------------------------------------
def test_synthetic_is_seeded_and_stores_the_truth():
    a = load_split(DataConfig("synthetic", options={"n": 200, "seed": 3}), "train")
    b = load_split(DataConfig("synthetic", options={"n": 200, "seed": 3}), "train")
    c = load_split(DataConfig("synthetic", options={"n": 200, "seed": 4}), "train")
    assert [e.inputs["text"] for e in a] == [e.inputs["text"] for e in b]
    assert [e.inputs["text"] for e in a] != [e.inputs["text"] for e in c]
    kinds = {e.meta["reliance"] for e in a}
    assert kinds == {"image-only", "text-only", "redundant", "both-required"}
    for e in a:
        words = set(e.inputs["text"].split()) & set(WORDS)
        label_word = WORDS[e.target].lower()
        if e.meta["reliance"] == "image-only":
            assert not words  # the text says nothing about the class
        elif e.meta["reliance"] in ("text-only", "redundant"):
            assert words == {label_word}
        else:  # both-required: the word alone is not the label's word in general
            assert len(words) == 1


def test_synthetic_splits_differ_and_mixture_and_vector_work():
    cfg = DataConfig("synthetic", options={"n": 80, "mixture": {"image-only": 1}, "with_vector": True})
    train, test = load_split(cfg, "train"), load_split(cfg, "test")
    assert len(train) == 80 and len(test) == 20
    assert {e.meta["reliance"] for e in train} == {"image-only"}
    assert train.modality_names == ["image", "text", "tabular"]
    assert train.examples[0].inputs["text"] != test.examples[0].inputs["text"]
    with pytest.raises(ConfigError, match="unknown option"):
        load_split(DataConfig("synthetic", options={"size": 3}), "train")
    with pytest.raises(ConfigError, match="vector-only needs with_vector"):
        load_split(DataConfig("synthetic", options={"mixture": {"vector-only": 1}}), "train")


# -- easy-vqa -----------------------------------------------------------------------
def test_easy_vqa_splits_as_shipped_with_val_carved_by_image():
    cfg = DataConfig("easy-vqa", val_fraction=0.1, split_seed=0)
    train, val, test = (load_split(cfg, s) for s in ("train", "val", "test"))
    assert len(train) + len(val) == 38575 and len(test) == 9673
    assert len(train.labels) == 13
    assert not {e.meta["image_id"] for e in train} & {e.meta["image_id"] for e in val}
    assert 0.08 < len(val) / (len(train) + len(val)) < 0.12
    batch = Collator(train.modalities)(train.examples[:4])
    assert batch.values["image"].shape == (4, 3, 64, 64)
    assert load_split(cfg, "val").examples[0].id == val.examples[0].id  # fixed seed


# -- images -------------------------------------------------------------------------
@pytest.mark.parametrize("mode,ext", [("RGB", "png"), ("RGBA", "png"), ("L", "png"), ("RGB", "jpg")])
def test_images_of_any_mode_and_size_become_3xSxS(tmp_path, mode, ext):
    p = write_png(tmp_path / f"a.{ext}", size=(50, 20), mode=mode)
    img = load_image(str(p), 32)
    assert img.shape == (3, 32, 32) and img.dtype == torch.uint8


def test_rgba_is_composited_on_white(tmp_path):
    from PIL import Image

    Image.new("RGBA", (8, 8), (0, 0, 0, 0)).save(tmp_path / "clear.png")
    assert load_image(str(tmp_path / "clear.png"), 8).min() == 255


# -- hateful memes ------------------------------------------------------------------
def write_hateful_memes(root, rows_by_file):
    for name, rows in rows_by_file.items():
        lines = [r if isinstance(r, str) else json.dumps(r) for r in rows]
        (root / name).write_text("\n".join(lines) + "\n")


def meme(i, label=0, text="a meme text", img=None):
    return {"id": i, "img": img or f"img/{i}.png", "label": label, "text": text}


@pytest.fixture
def hm_root(tmp_path):
    for i in range(1, 7):
        write_png(tmp_path / "img" / f"{i}.png", size=(60 + i, 40), mode="RGBA" if i % 2 else "RGB")
    write_hateful_memes(tmp_path, {"train.jsonl": [meme(1, 0), meme(2, 1, "hate text"), meme(3, 0)],
                                   "dev_seen.jsonl": [meme(4, 1), meme(5, 0)],
                                   "test_seen.jsonl": [meme(6, 1)]})
    return tmp_path


def test_hateful_memes_round_trip(hm_root):
    cfg = DataConfig("hateful-memes", root=str(hm_root))
    train = load_split(cfg, "train")
    assert [e.id for e in train] == ["hm-train-1", "hm-train-2", "hm-train-3"]
    assert [e.target for e in train] == [0, 1, 0]
    assert train.examples[1].inputs["text"] == "hate text"
    assert train.labels == ["not-hateful", "hateful"] and train.metric == "auroc"
    assert len(load_split(cfg, "val")) == 2 and len(load_split(cfg, "test")) == 1
    batch = Collator(train.modalities)(train.examples)
    assert batch.values["image"].shape == (3, 3, 64, 64)
    assert batch.targets.tolist() == [0, 1, 0]


BAD_ROWS = [
    ("not json", '{"id": 9, "img": ', "not valid JSON"),
    ("missing column", {"id": 9, "img": "img/1.png", "label": 0}, "missing column(s) ['text']"),
    ("empty text", meme(9, text="   ", img="img/1.png"), "empty text"),
    ("unknown label", meme(9, label=7, img="img/1.png"), "label 7 is not one of"),
    ("missing image", meme(9, img="img/404.png"), "image file not found"),
    ("corrupt image", meme(9, img="img/corrupt.png"), "cannot be decoded"),
    ("truncated image", meme(9, img="img/truncated.png"), "cannot be decoded"),
]


@pytest.mark.parametrize("what,row,message", BAD_ROWS, ids=[b[0] for b in BAD_ROWS])
def test_hateful_memes_bad_rows_name_file_and_line(hm_root, what, row, message):
    (hm_root / "img" / "corrupt.png").write_bytes(b"this is not a png at all")
    good = (hm_root / "img" / "1.png").read_bytes()
    (hm_root / "img" / "truncated.png").write_bytes(good[: len(good) // 2])
    write_hateful_memes(hm_root, {"train.jsonl": [meme(1), meme(2, 1), row, meme(3)]})
    cfg = DataConfig("hateful-memes", root=str(hm_root))
    with pytest.raises(DataError) as err:
        load_split(cfg, "train")
    text = str(err.value)
    assert "train.jsonl, line 3" in text and message in text
    cfg.skip_bad_rows = True
    ds = load_split(cfg, "train")
    assert [e.id for e in ds] == ["hm-train-1", "hm-train-2", "hm-train-3"]
    assert [(s.row, message in s.reason) for s in ds.skipped] == [(3, True)]


def test_hateful_memes_missing_folder_says_what_to_do(tmp_path):
    with pytest.raises(DataError, match="--data-root"):
        load_split(DataConfig("hateful-memes"), "train")
    with pytest.raises(DataError, match="train.jsonl"):
        load_split(DataConfig("hateful-memes", root=str(tmp_path)), "train")


def test_corrupt_image_found_late_names_the_row(hm_root):
    """With image checks off at load time, the collate still names file and row."""
    (hm_root / "img" / "2.png").write_bytes(b"garbage")
    ds = load_split(DataConfig("hateful-memes", root=str(hm_root), options={"check_images": False}), "train")
    with pytest.raises(DataError) as err:
        Collator(ds.modalities)(ds.examples)
    assert "2.png" in str(err.value) and "train.jsonl:2" in str(err.value)


# -- folder -------------------------------------------------------------------------
def test_folder_csv_with_custom_columns_and_carved_val(tmp_path):
    rows = ["picture,caption,genre"]
    for i in range(20):
        write_png(tmp_path / "pics" / f"{i}.jpg", mode="RGB")
        rows.append(f"{i}.jpg,\"caption, number {i}\",{['cat', 'dog'][i % 2]}")
    (tmp_path / "train.csv").write_text("\n".join(rows) + "\n")
    opts = {"image_column": "picture", "text_column": "caption", "label_column": "genre", "image_dir": "pics"}
    cfg = DataConfig("folder", root=str(tmp_path), options=opts, val_fraction=0.25)
    train, val = load_split(cfg, "train"), load_split(cfg, "val")
    assert len(train) == 15 and len(val) == 5
    assert not {e.id for e in train} & {e.id for e in val}
    assert train.labels == ["cat", "dog"]
    ex = next(e for e in train.examples + val.examples if e.id == "folder-train-4")
    assert ex.inputs["text"] == "caption, number 2" and train.labels[ex.target] == "cat"
    assert ex.meta["source"].endswith("train.csv:4")


def test_folder_jsonl_unknown_label_in_test_and_wrong_columns(tmp_path):
    write_png(tmp_path / "a.png")
    (tmp_path / "train.jsonl").write_text(json.dumps({"image": "a.png", "text": "t", "label": "x"}) + "\n"
                                          + json.dumps({"image": "a.png", "text": "u", "label": "y"}) + "\n")
    (tmp_path / "test.jsonl").write_text(json.dumps({"image": "a.png", "text": "t", "label": "z"}) + "\n")
    cfg = DataConfig("folder", root=str(tmp_path))
    assert load_split(cfg, "train").labels == ["x", "y"]
    with pytest.raises(DataError, match=r"test.jsonl, line 1: label 'z' is not one of \['x', 'y'\]"):
        load_split(cfg, "test")
    cfg.options = {"text_column": "caption"}
    with pytest.raises(DataError, match=r"(?s)train.jsonl, line 1: missing column\(s\) \['caption'\].*"
                                        r"train.jsonl, line 2: missing column.*text_column"):
        load_split(cfg, "train")


def test_unknown_data_set_and_split():
    with pytest.raises(ConfigError, match="unknown data set 'mnist'"):
        load_split(DataConfig("mnist"), "train")
    with pytest.raises(ConfigError, match="unknown split"):
        load_split(DataConfig("synthetic"), "dev")


def test_empty_text_in_collate_is_named(synthetic3):
    from msd_core.data import Example

    ex = Example("x1", {"image": synthetic3.examples[0].inputs["image"], "text": "",
                        "tabular": synthetic3.examples[0].inputs["tabular"]}, 0, {"source": "mine.csv:7"})
    with pytest.raises(DataError, match=r"mine.csv:7: example 'x1' has an empty text"):
        Collator(synthetic3.modalities)([ex])
