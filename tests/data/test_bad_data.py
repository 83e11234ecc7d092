"""Bad data files and options: each is refused with a message naming file, line and what to do."""

import argparse
import json
import os

import numpy as np
import pytest
from PIL import Image

from msd_core.config import DataConfig, check_ranges
from msd_core.data import Collator, load_split
from msd_core.data import images as images_mod
from msd_core.data.images import DEFAULT_MAX_IMAGE_PIXELS, load_image, to_rgb_array
from msd_core.errors import ConfigError, DataError
from tests.conftest import write_png


def write_jsonl(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def meme(i, label=0, text="a meme", img=None):
    return {"id": i, "img": img or f"img/{i}.png", "label": label, "text": text}


@pytest.fixture
def hm(tmp_path):
    """A Hateful Memes folder under ``tmp_path/hm`` with images 1..3 and a file outside it."""
    root = tmp_path / "hm"
    for i in range(1, 4):
        write_png(root / "img" / f"{i}.png", size=(12, 10))
    write_png(tmp_path / "outside.png", size=(12, 10))
    return root


def hm_error(root, rows, **cfg) -> str:
    write_jsonl(root / "train.jsonl", rows)
    with pytest.raises(DataError) as err:
        load_split(DataConfig("hateful-memes", root=str(root), **cfg), "train")
    return str(err.value)


# -- 1. labels exactly in the label set ---------------------------------------------
def test_labels_not_exactly_in_the_set_are_bad_rows_naming_value_and_labels(hm):
    rows = [meme(1, 0), meme(2, 0.7), meme(3, 1.5), meme(1, ""), meme(2, "yes"), meme(3, 1)]
    text = hm_error(hm, rows)
    path = str(hm / "train.jsonl")
    assert text.startswith(f"{path}: 4 bad rows:\n")
    assert f"{path}, line 2: label 0.7 is not one of ['0', '1']" in text
    assert f"{path}, line 3: label 1.5 is not one of ['0', '1']" in text
    assert f"{path}, line 4: label '' is not one of ['0', '1']" in text
    assert f"{path}, line 5: label 'yes' is not one of ['0', '1']" in text
    assert "line 1:" not in text and "line 6:" not in text


def test_whole_numbers_still_map_to_their_label(hm):
    write_jsonl(hm / "train.jsonl", [meme(1, 1.0), meme(2, "1.0"), meme(3, "0"), meme(1, 0.0), meme(2, " 1 ")])
    ds = load_split(DataConfig("hateful-memes", root=str(hm)), "train")
    assert [e.target for e in ds] == [1, 1, 0, 0, 1]


def test_folder_labels_option_and_csv_numbers(tmp_path):
    write_png(tmp_path / "a.png")
    (tmp_path / "train.csv").write_text("image,text,label\na.png,t,1.0\na.png,t,0\na.png,t,0.5\n")
    (tmp_path / "val.csv").write_text("image,text,label\na.png,t,1\n")
    cfg = DataConfig("folder", root=str(tmp_path), options={"labels": ["0", "1"]})
    with pytest.raises(DataError, match=r"train.csv, line 4: label '0.5' is not one of \['0', '1'\] — fix the "
                                        r"labels.*--skip-bad-rows"):
        load_split(cfg, "train")
    cfg.skip_bad_rows = True
    ds = load_split(cfg, "train")
    assert [e.target for e in ds] == [1, 0] and [(s.row, s.reason) for s in ds.skipped] == [
        (4, "label '0.5' is not one of ['0', '1']")]


def test_collected_labels_do_not_split_1_and_1_point_0(tmp_path):
    write_png(tmp_path / "a.png")
    (tmp_path / "train.csv").write_text("image,text,label\na.png,t,1\na.png,t,1.0\na.png,t,0\na.png,t,2.0\n")
    ds = load_split(DataConfig("folder", root=str(tmp_path), options={}, val_fraction=0.25), "train")
    assert ds.labels == ["0", "1", "2.0"]


# -- 2. every bad row is named, up to a limit -----------------------------------------
def test_all_bad_rows_are_listed_up_to_20_then_counted(hm):
    rows = [meme(1)] + [meme(2, label=7)] * 25 + ['{"broken": '] + [meme(3)]
    text = hm_error(hm, rows)
    path = str(hm / "train.jsonl")
    assert text.startswith(f"{path}: 26 bad rows:\n")
    listed = [line for line in text.splitlines() if line.startswith(f"  {path}, line ")]
    assert len(listed) == 20 and listed[0] == f"  {path}, line 2: label 7 is not one of ['0', '1']"
    assert listed[-1].startswith(f"  {path}, line 21: ")
    assert "  … and 6 more bad rows" in text
    assert text.endswith("fix the labels or list every label in the 'labels' option; fix the JSON lines; "
                         "or pass --skip-bad-rows to leave these rows out and list them")
    ds = load_split(DataConfig("hateful-memes", root=str(hm), skip_bad_rows=True), "train")
    assert [e.id for e in ds] == ["hm-train-1", "hm-train-3"]
    assert [s.row for s in ds.skipped] == list(range(2, 28))
    assert ds.skipped[-1].reason.startswith("not valid JSON")


def test_a_single_bad_row_keeps_the_one_line_message(hm):
    text = hm_error(hm, [meme(1), meme(2, text=" ")])
    assert text == (f"{hm / 'train.jsonl'}, line 2: empty text — fill in the texts; "
                    f"or pass --skip-bad-rows to leave the row out and list it")


def test_csv_header_missing_a_column_and_non_utf8_file(tmp_path):
    write_png(tmp_path / "a.png")
    (tmp_path / "train.csv").write_text("picture,text,label\na.png,t,x\na.png,u,y\n")
    with pytest.raises(DataError, match=r"train.csv, line 1: missing column\(s\) \['image'\] in the header; the "
                                        r"header has \['picture', 'text', 'label'\] — name the columns"):
        load_split(DataConfig("folder", root=str(tmp_path)), "train")
    (tmp_path / "train.csv").write_bytes("image,text,label\na.png,t,x\na.png,caf\xe9,y\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"train.csv, line 3: the file is not UTF-8 text — save it as UTF-8"):
        load_split(DataConfig("folder", root=str(tmp_path)), "train")


# -- 3. a UTF-8 byte-order mark is accepted -----------------------------------------
@pytest.mark.parametrize("ext", ["csv", "tsv", "jsonl"])
def test_files_with_a_bom_load_like_plain_ones(tmp_path, ext):
    rows = [("a.png", "first, text", "cat"), ("b.png", "second", "dog"), ("a.png", "third", "dog")]
    for name in ("a.png", "b.png"):
        write_png(tmp_path / "plain" / name)
        write_png(tmp_path / "bom" / name)
    if ext == "jsonl":
        text = "".join(json.dumps({"image": i, "text": t, "label": lab}) + "\n" for i, t, lab in rows)
    else:
        sep = "\t" if ext == "tsv" else ","
        text = sep.join(("image", "text", "label")) + "\n" + "".join(
            sep.join((i, f'"{t}"' if sep in t else t, lab)) + "\n" for i, t, lab in rows)
    (tmp_path / "plain" / f"train.{ext}").write_text(text, encoding="utf-8")
    (tmp_path / "bom" / f"train.{ext}").write_text(text, encoding="utf-8-sig")
    assert (tmp_path / "bom" / f"train.{ext}").read_bytes().startswith(b"\xef\xbb\xbf")
    plain, bom = (load_split(DataConfig("folder", root=str(tmp_path / d), val_fraction=0.34), "train")
                  for d in ("plain", "bom"))
    assert bom.labels == plain.labels == ["cat", "dog"]
    assert [(e.id, e.inputs["text"], e.target, os.path.basename(e.inputs["image"])) for e in bom] == \
        [(e.id, e.inputs["text"], e.target, os.path.basename(e.inputs["image"])) for e in plain]


# -- 4. the data root is a boundary ---------------------------------------------------
def test_image_paths_leaving_the_root_are_bad_rows(hm, tmp_path):
    outside = str(tmp_path / "outside.png")
    rows = [meme(1), meme(2, img="../outside.png"), meme(3, img=outside), meme(1, img="img/../img/1.png")]
    text = hm_error(hm, rows, options={"check_images": False})
    path = str(hm / "train.jsonl")
    assert text.startswith(f"{path}: 2 bad rows:\n")
    assert (f"{path}, line 2: image path '../outside.png' leaves the data root {hm}; "
            f"pass --allow-images-outside-root to allow it") in text
    assert f"{path}, line 3: image path '{outside}' leaves the data root {hm}" in text
    assert "move the images under the data root" in text
    ds = load_split(DataConfig("hateful-memes", root=str(hm), skip_bad_rows=True), "train")
    assert [s.row for s in ds.skipped] == [2, 3] and len(ds) == 2
    ds = load_split(DataConfig("hateful-memes", root=str(hm), images_outside_root=True), "train")
    assert len(ds) == 4 and not ds.skipped
    assert Collator(ds.modalities)(ds.examples).values["image"].shape == (4, 3, 64, 64)


def test_the_root_check_is_lexical_a_symlink_inside_is_fine(hm, tmp_path):
    os.symlink(tmp_path / "outside.png", hm / "img" / "link.png")
    write_jsonl(hm / "train.jsonl", [meme(1), meme(2, img="img/link.png")])
    assert len(load_split(DataConfig("hateful-memes", root=str(hm)), "train")) == 2


def test_folder_image_dir_and_image_column_stay_inside_the_root(tmp_path):
    root = tmp_path / "data"
    write_png(root / "pics" / "a.png")
    write_png(root / "b.png")
    write_png(tmp_path / "c.png")
    (root / "train.csv").write_text("image,text,label\na.png,t,x\n../b.png,t,y\n../../c.png,t,y\n")
    cfg = DataConfig("folder", root=str(root), options={"image_dir": "pics"})
    with pytest.raises(DataError) as err:
        load_split(cfg, "train")
    assert str(err.value).startswith(f"{root / 'train.csv'}, line 4: image path '../../c.png' leaves the data "
                                     f"root {root}; pass --allow-images-outside-root to allow it")
    cfg.images_outside_root = True
    assert len(load_split(cfg, "train")) + len(load_split(cfg, "val")) == 3
    cfg = DataConfig("folder", root=str(root), options={"image_dir": "../elsewhere"})
    with pytest.raises(ConfigError, match=r"folder: option image_dir '../elsewhere' leaves the data root .*"
                                          r"pass --allow-images-outside-root"):
        load_split(cfg, "train")


def test_the_new_fields_have_cli_flags():
    from msd_core.flags import add_config_flags, apply_flags
    from msd_core.config import TeacherRunConfig

    p = argparse.ArgumentParser()
    add_config_flags(p, TeacherRunConfig, only=("data",))
    cfg = apply_flags(TeacherRunConfig(), p.parse_args(["--allow-images-outside-root", "--max-image-pixels", "0"]))
    assert cfg.data.images_outside_root is True and cfg.data.max_image_pixels == 0
    assert DataConfig().max_image_pixels == DEFAULT_MAX_IMAGE_PIXELS and DataConfig().images_outside_root is False
    with pytest.raises(ConfigError, match=r"--max-image-pixels \(data.max_image_pixels\) must be at least 0"):
        check_ranges(TeacherRunConfig(data=DataConfig(max_image_pixels=-1)))


# -- 5. every image mode ----------------------------------------------------------------
GRAD = np.arange(64).reshape(8, 8) * 4  # 0..252, one gray level a pixel


def _lab_gray(lightness_255):
    """sRGB gray level of a neutral CIELAB colour (L* = value / 255 * 100), by the formulas."""
    lightness = lightness_255 / 255 * 100
    y = np.where(lightness > 8, ((lightness + 16) / 116) ** 3, lightness / 903.3)
    srgb = np.where(y <= 0.0031308, 12.92 * y, 1.055 * y ** (1 / 2.4) - 0.055)
    return srgb * 255


def _palette(mode):
    img = Image.fromarray(GRAD.astype(np.uint8))  # L
    p = Image.frombytes("P", img.size, img.tobytes())
    p.putpalette([v for i in range(256) for v in (i, i, i)])
    return p if mode == "P" else p.convert("PA")


def _gray(values):
    return np.repeat(np.asarray(values, dtype=float)[..., None], 3, axis=-1)


U16 = (np.arange(64).reshape(8, 8) * 1000).astype(np.uint16)  # 0..63000
CASES = {  # mode: (file type or None (in memory), image, expected RGB)
    "1": ("png", lambda: Image.fromarray((GRAD % 8 < 4)).convert("1"), _gray((GRAD % 8 < 4) * 255)),
    "L": ("png", lambda: Image.fromarray(GRAD.astype(np.uint8)), _gray(GRAD)),
    "LA": ("png", lambda: Image.merge("LA", [Image.fromarray(GRAD.astype(np.uint8)),
                                             Image.fromarray(np.full((8, 8), 255, np.uint8))]), _gray(GRAD)),
    "P": ("png", lambda: _palette("P"), _gray(GRAD)),
    "PA": ("tiff", lambda: _palette("PA"), _gray(GRAD)),
    "RGB": ("png", lambda: Image.fromarray(np.stack([GRAD, 252 - GRAD, np.full((8, 8), 100)], -1).astype(np.uint8)),
            np.stack([GRAD, 252 - GRAD, np.full((8, 8), 100)], -1)),
    "RGBA": ("png", lambda: Image.fromarray(np.stack([GRAD, 252 - GRAD, np.full((8, 8), 100),
                                                      np.full((8, 8), 255)], -1).astype(np.uint8)),
             np.stack([GRAD, 252 - GRAD, np.full((8, 8), 100)], -1)),
    "RGBX": (None, lambda: Image.fromarray(np.stack([GRAD, 252 - GRAD, np.full((8, 8), 100)], -1)
                                           .astype(np.uint8)).convert("RGBX"),
             np.stack([GRAD, 252 - GRAD, np.full((8, 8), 100)], -1)),
    "CMYK": ("tiff", lambda: Image.merge("CMYK", [Image.fromarray(GRAD.astype(np.uint8))] + [
        Image.new("L", (8, 8), 0)] * 3), np.stack([255 - GRAD, np.full((8, 8), 255), np.full((8, 8), 255)], -1)),
    "YCbCr": ("tiff", lambda: Image.merge("YCbCr", [Image.fromarray(GRAD.astype(np.uint8)),
                                                    Image.new("L", (8, 8), 128), Image.new("L", (8, 8), 128)]),
              _gray(GRAD)),
    "LAB": ("tiff", lambda: Image.merge("LAB", [Image.fromarray(GRAD.astype(np.uint8)),
                                                Image.new("L", (8, 8), 128), Image.new("L", (8, 8), 128)]),
            _gray(_lab_gray(GRAD))),
    "HSV": (None, lambda: Image.merge("HSV", [Image.new("L", (8, 8), 0), Image.new("L", (8, 8), 0),
                                              Image.fromarray(GRAD.astype(np.uint8))]), _gray(GRAD)),
    "I": ("tiff", lambda: Image.fromarray(U16.astype(np.int32)), _gray(U16 / 257)),
    "I (8-bit values)": ("tiff", lambda: Image.fromarray(GRAD.astype(np.int32)), _gray(GRAD)),
    "I;16": ("png", lambda: Image.fromarray(U16), _gray(U16 / 257)),
    "I;16B": ("tiff", lambda: Image.frombytes("I;16B", (8, 8), U16.astype(">u2").tobytes()), _gray(U16 / 257)),
    "I;16L": ("tiff", lambda: Image.frombytes("I;16L", (8, 8), U16.astype("<u2").tobytes()), _gray(U16 / 257)),
    "F (0..1)": ("tiff", lambda: Image.fromarray((GRAD / 255).astype(np.float32)), _gray(GRAD)),
    "F (other)": ("tiff", lambda: Image.fromarray((GRAD * 2 - 100).astype(np.float32)),
                  _gray(np.clip(GRAD * 2 - 100, 0, 255))),
}


@pytest.mark.parametrize("mode", list(CASES))
def test_every_mode_converts_to_the_expected_rgb(tmp_path, mode):
    kind, build, expected = CASES[mode]
    img = build()
    assert img.mode == mode.split(" ")[0]
    if kind is None:
        got = to_rgb_array(img, 8)
    else:
        path = tmp_path / f"img.{kind}"
        img.save(path)
        got = load_image(str(path), 8).permute(1, 2, 0).numpy()
    assert got.shape == (8, 8, 3) and got.dtype == np.uint8
    assert np.abs(got.astype(float) - expected).max() <= 2, (got[..., 0], expected[..., 0])


def test_transparent_pixels_and_16_bit_arrays():
    clear = Image.fromarray(np.zeros((8, 8, 4), np.uint8))  # RGBA, alpha 0
    assert to_rgb_array(clear, 8).min() == 255
    half = Image.merge("LA", [Image.new("L", (8, 8), 0), Image.new("L", (8, 8), 128)])
    assert np.abs(to_rgb_array(half, 8).astype(int) - 127).max() <= 2
    assert load_image(np.full((8, 8), 32896, np.uint16), 8).unique().tolist() == [128]


# -- 6. oversized images --------------------------------------------------------------------
def test_oversized_images_are_bad_rows_and_load_when_allowed(hm):
    write_png(hm / "img" / "big.png", size=(200, 100))
    rows = [meme(1), meme(2, img="img/big.png")]
    text = hm_error(hm, rows, max_image_pixels=10_000)
    assert text == (f"{hm / 'train.jsonl'}, line 2: {hm / 'img' / 'big.png'}: image is 200x100 = 20,000 pixels, "
                    f"over the limit of 10,000; raise --max-image-pixels (0: no limit) to read it — add, re-export "
                    f"or shrink the images; or pass --skip-bad-rows to leave the row out and list it")
    ds = load_split(DataConfig("hateful-memes", root=str(hm), max_image_pixels=10_000, skip_bad_rows=True), "train")
    assert len(ds) == 1 and "200x100" in ds.skipped[0].reason
    for limit in (0, 20_000):
        cfg = DataConfig("hateful-memes", root=str(hm), max_image_pixels=limit)
        ds = load_split(cfg, "train")
        assert Collator.for_data(ds, cfg)(ds.examples).values["image"].shape == (2, 3, 64, 64)


def test_the_collator_applies_the_limit_of_the_data_config(hm):
    write_png(hm / "img" / "big.png", size=(200, 100))
    write_jsonl(hm / "train.jsonl", [meme(1), meme(2, img="img/big.png")])
    cfg = DataConfig("hateful-memes", root=str(hm), options={"check_images": False}, max_image_pixels=10_000,
                     image_size=16, max_text_len=8)
    ds = load_split(cfg, "train")
    collator = Collator.for_data(ds, cfg)
    assert (collator.image_size, collator.max_text_len, collator.max_image_pixels) == (16, 8, 10_000)
    with pytest.raises(DataError) as err:
        collator(ds.examples)
    assert str(err.value) == (f"{hm / 'img' / 'big.png'}: image is 200x100 = 20,000 pixels, over the limit of "
                              f"10,000; raise --max-image-pixels (0: no limit) to read it (referenced at "
                              f"{hm / 'train.jsonl'}:2) — shrink the image, or skip bad rows")
    assert Collator(ds.modalities, image_size=16)(ds.examples).values["image"].shape == (2, 3, 16, 16)


def test_pil_bomb_check_gives_way_to_ours(hm, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # PIL alone would raise DecompressionBombError
    write_png(hm / "img" / "bomb.png", size=(300, 300))
    with pytest.raises(Image.DecompressionBombError):
        Image.open(hm / "img" / "bomb.png")
    write_jsonl(hm / "train.jsonl", [meme(1), meme(2, img="img/bomb.png")])
    text = hm_error(hm, [meme(1), meme(2, img="img/bomb.png")], max_image_pixels=50_000)
    assert "image is 300x300 = 90,000 pixels, over the limit of 50,000; raise --max-image-pixels" in text
    ds = load_split(DataConfig("hateful-memes", root=str(hm), max_image_pixels=0), "train")
    assert len(ds) == 2 and load_image(ds.examples[1].inputs["image"], 8, max_pixels=0).shape == (3, 8, 8)
    assert Image.MAX_IMAGE_PIXELS == 1000  # restored


@pytest.mark.parametrize("ext", ["jpg", "png"])
def test_large_images_are_downscaled_as_they_are_read(tmp_path, monkeypatch, ext):
    path = write_png(tmp_path / f"large.{ext}", size=(640, 480), color=(30, 140, 220))
    expected = load_image(str(path), 16).float()
    images_mod.DECODED.clear()
    monkeypatch.setattr(images_mod, "LARGE_IMAGE_PIXELS", 10_000)
    drafts, reduces = [], []
    real_draft, real_reduce = Image.Image.draft, Image.Image.reduce
    monkeypatch.setattr(Image.Image, "draft", lambda self, *a: drafts.append(a) or real_draft(self, *a))
    monkeypatch.setattr(Image.Image, "reduce", lambda self, f, *a: reduces.append(f) or real_reduce(self, f, *a))
    if ext == "jpg":
        from PIL import JpegImagePlugin

        real_jpeg = JpegImagePlugin.JpegImageFile.draft
        monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft",
                            lambda self, *a: drafts.append(a) or real_jpeg(self, *a))
    got = load_image(str(path), 16, max_pixels=0).float()
    assert drafts == [(None, (16, 16))] and reduces == ([480 // 32] if ext == "png" else [])
    assert (got - expected).abs().max() <= 3


# -- 7. loader options are checked before any work ---------------------------------------------
SYNTHETIC_BAD = [
    ({"n": 0}, "synthetic: option n must be an integer ≥ 1, got 0"),
    ({"n": -5}, "synthetic: option n must be an integer ≥ 1, got -5"),
    ({"n": "abc"}, "synthetic: option n must be an integer ≥ 1, got 'abc'"),
    ({"n": 2.5}, "synthetic: option n must be an integer ≥ 1, got 2.5"),
    ({"num_classes": 1}, "synthetic: option num_classes must be an integer from 2 to 8, got 1"),
    ({"num_classes": 9}, "synthetic: option num_classes must be an integer from 2 to 8, got 9"),
    ({"label_noise": 1.5}, "synthetic: option label_noise must be a number from 0 to 1, got 1.5"),
    ({"label_noise": "lots"}, "synthetic: option label_noise must be a number from 0 to 1, got 'lots'"),
    ({"pixel_noise": -1}, "synthetic: option pixel_noise must be a number ≥ 0, got -1"),
    ({"seed": "x"}, "synthetic: option seed must be an integer ≥ 0, got 'x'"),
    ({"seed": -1}, "synthetic: option seed must be an integer ≥ 0, got -1"),
    ({"with_vector": "maybe"}, "synthetic: option with_vector must be true or false, got 'maybe'"),
    ({"with_vector": 2}, "synthetic: option with_vector must be true or false, got 2"),
    ({"mixture": "abc"}, "synthetic: option mixture must map reliance types"),
]


@pytest.mark.parametrize("options,message", SYNTHETIC_BAD, ids=[str(o) for o, _ in SYNTHETIC_BAD])
def test_synthetic_options_are_checked(options, message):
    with pytest.raises(ConfigError) as err:
        load_split(DataConfig("synthetic", options=options), "train")
    assert str(err.value).startswith(message)


def test_synthetic_good_options_written_as_strings_still_work():
    a = load_split(DataConfig("synthetic", options={"n": "12", "with_vector": "true", "seed": 3}), "train")
    b = load_split(DataConfig("synthetic", options={"n": 12, "with_vector": True, "seed": 3.0}), "train")
    assert len(a) == 12 and a.modality_names == ["image", "text", "tabular"]
    assert [e.inputs["text"] for e in a] == [e.inputs["text"] for e in b]


@pytest.mark.parametrize("name", ["folder", "hateful-memes"])
def test_check_images_must_be_a_boolean_before_any_work(name):
    with pytest.raises(ConfigError, match=rf"{name}: option check_images must be true or false, got 'nope'"):
        load_split(DataConfig(name, root=None, options={"check_images": "nope"}), "train")
    if name == "hateful-memes":
        with pytest.raises(ConfigError, match=r"hateful-memes: unknown option\(s\) \['check_image'\]"):
            load_split(DataConfig(name, options={"check_image": False}), "train")
