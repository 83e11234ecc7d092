"""The paper's data sets in their official layouts, written here in small: MM-IMDB, SNLI-VE and
VQA v2 (Hateful Memes is in test_loaders.py), good and bad, and the JSON streamer behind VQA."""

import json

import pytest
import torch

from msd_core.config import DataConfig
from msd_core.data import Collator, load_split
from msd_core.data.json_stream import stream_array
from msd_core.data.mm_imdb import GENRES
from msd_core.data.vqa_v2 import VqaExamples, image_file
from msd_core.errors import DataError
from tests.conftest import write_png


# -- MM-IMDB ----------------------------------------------------------------------------
def write_movie(root, movie, genres, plot=("a short plot", "a much longer plot about a heist"), image=True):
    (root / "dataset").mkdir(parents=True, exist_ok=True)
    (root / "dataset" / f"{movie}.json").write_text(json.dumps({"plot": list(plot), "genres": genres,
                                                                "title": f"movie {movie}"}))
    if image:
        write_png(root / "dataset" / f"{movie}.jpeg", size=(30, 44))


@pytest.fixture
def imdb_root(tmp_path):
    movies = {"0001": ["Drama", "Romance"], "0002": ["Comedy"], "0003": ["Action", "Sci-Fi", "Thriller"],
              "0004": ["Film-Noir"], "0005": ["Drama"]}
    for movie, genres in movies.items():
        write_movie(tmp_path, movie, genres)
    (tmp_path / "split.json").write_text(json.dumps({"train": ["0001", "0002", "0003"], "dev": ["0004"],
                                                     "test": ["0005"]}))
    return tmp_path


def test_mm_imdb_reads_the_official_layout_as_23_genre_multi_label(imdb_root):
    cfg = DataConfig("mm-imdb", root=str(imdb_root))
    train = load_split(cfg, "train")
    assert train.task == "multi-label" and train.metric == "f1-micro" and train.labels == GENRES
    assert len(GENRES) == 23
    assert [e.id for e in train] == ["mmimdb-0001", "mmimdb-0002", "mmimdb-0003"]
    assert train.examples[0].inputs["text"] == "a much longer plot about a heist"  # the longest plot, as MMBT
    assert train.label_text(train.examples[2]) == "Thriller|Action|Sci-Fi"  # in GENRES order
    batch = Collator.for_data(train, cfg)(train.examples)
    assert batch.targets.shape == (3, 23) and batch.task == "multi-label"
    assert batch.targets[0].nonzero().flatten().tolist() == [GENRES.index("Drama"), GENRES.index("Romance")]
    assert batch.values["image"].shape == (3, 3, 64, 64)
    assert len(load_split(cfg, "val")) == 1 and len(load_split(cfg, "test")) == 1
    assert train.label_counts()["Drama"] == 1 and train.label_counts()["Sci-Fi"] == 1


@pytest.mark.parametrize("what", ["no json", "no jpeg", "genre outside", "no genres", "empty plot"])
def test_mm_imdb_bad_records_name_the_file(imdb_root, what):
    if what == "no json":
        (imdb_root / "dataset" / "0002.json").unlink()
        where, message = "split.json", "id 0002 has no dataset/0002.json"
    elif what == "no jpeg":
        (imdb_root / "dataset" / "0002.jpeg").unlink()
        where, message = "split.json", "id 0002: " + str(imdb_root / "dataset" / "0002.jpeg")
    elif what == "genre outside":
        write_movie(imdb_root, "0002", ["Comedy", "Talk-Show"])
        where, message = "0002.json", "genre(s) ['Talk-Show'] not among the 23 MM-IMDB genres"
    elif what == "no genres":
        write_movie(imdb_root, "0002", [])
        where, message = "0002.json", "no genres"
    else:
        write_movie(imdb_root, "0002", ["Comedy"], plot=["  "])
        where, message = "0002.json", "no plot text"
    cfg = DataConfig("mm-imdb", root=str(imdb_root))
    with pytest.raises(DataError) as err:
        load_split(cfg, "train")
    assert where in str(err.value) and message in str(err.value) and "--skip-bad-rows" in str(err.value)
    cfg.skip_bad_rows = True
    ds = load_split(cfg, "train")
    assert [e.id for e in ds] == ["mmimdb-0001", "mmimdb-0003"]
    assert len(ds.skipped) == 1 and message in ds.skipped[0].reason


def test_mm_imdb_without_split_json_says_where_to_point(tmp_path):
    with pytest.raises(DataError, match="split.json: file not found — point --data-root at the unpacked MM-IMDB"):
        load_split(DataConfig("mm-imdb", root=str(tmp_path)), "train")


# -- SNLI-VE ----------------------------------------------------------------------------
def pair(image, hypothesis, label, pair_id):
    return {"Flickr30K_ID": image, "sentence1": "A premise.", "sentence2": hypothesis, "gold_label": label,
            "pairID": pair_id}


@pytest.fixture
def snli_root(tmp_path):
    for image in ("100", "200", "300"):
        write_png(tmp_path / "flickr30k_images" / f"{image}.jpg", size=(50, 40))
    rows = {"train": [pair("100", "A dog runs.", "entailment", "p1"), pair("200", "A cat sleeps.", "neutral", "p2"),
                      pair("300", "Nobody is there.", "contradiction", "p3")],
            "dev": [pair("100", "An animal moves.", "entailment", "p4")],
            "test": [pair("200", "It is night.", "neutral", "p5")]}
    for split, lines in rows.items():
        (tmp_path / f"snli_ve_{split}.jsonl").write_text("\n".join(json.dumps(r) for r in lines) + "\n")
    return tmp_path


def test_snli_ve_reads_the_official_layout(snli_root):
    cfg = DataConfig("snli-ve", root=str(snli_root))
    train = load_split(cfg, "train")
    assert train.labels == ["entailment", "neutral", "contradiction"] and train.metric == "accuracy"
    assert [e.target for e in train] == [0, 1, 2] and [e.id for e in train][0] == "snlive-train-p1"
    assert train.examples[1].inputs == {"image": str(snli_root / "flickr30k_images" / "200.jpg"),
                                        "text": "A cat sleeps."}
    assert Collator.for_data(train, cfg)(train.examples).targets.tolist() == [0, 1, 2]
    assert [e.id for e in load_split(cfg, "val")] == ["snlive-val-p4"]


@pytest.mark.parametrize("row,message", [
    (pair("100", "Something.", "-", "p9"), "gold_label '-': SNLI's annotators reached no consensus"),
    (pair("100", "Something.", "maybe", "p9"), "gold_label 'maybe' is not one of"),
    (pair("404", "Something.", "neutral", "p9"), "image file not found"),
    ({"Flickr30K_ID": "100", "gold_label": "neutral"}, "missing field(s) ['sentence2']"),
])
def test_snli_ve_bad_lines_name_file_and_line(snli_root, row, message):
    lines = [pair("100", "A dog runs.", "entailment", "p1"), row, pair("300", "Nobody.", "contradiction", "p3")]
    (snli_root / "snli_ve_train.jsonl").write_text("\n".join(json.dumps(r) for r in lines) + "\n")
    cfg = DataConfig("snli-ve", root=str(snli_root))
    with pytest.raises(DataError) as err:
        load_split(cfg, "train")
    assert "snli_ve_train.jsonl, line 2" in str(err.value) and message in str(err.value)
    cfg.skip_bad_rows = True
    ds = load_split(cfg, "train")
    assert [e.id for e in ds] == ["snlive-train-p1", "snlive-train-p3"] and ds.skipped[0].row == 2


def test_snli_ve_without_images_names_the_folders_it_looked_for(snli_root):
    (snli_root / "flickr30k_images").rename(snli_root / "elsewhere")
    with pytest.raises(DataError, match="no Flickr30k image folder .*image_dir=DIR"):
        load_split(DataConfig("snli-ve", root=str(snli_root)), "train")
    assert len(load_split(DataConfig("snli-ve", root=str(snli_root), options={"image_dir": "elsewhere"}), "train")) == 3


# -- VQA v2 -----------------------------------------------------------------------------
def write_vqa(root, part, items):
    """``items``: (question_id, image_id, question, ten answers or None for no annotation)."""
    questions = {"info": {"description": "questions of VQA"}, "task_type": "Open-Ended", "data_subtype": part,
                 "questions": [{"image_id": i, "question": q, "question_id": qid} for qid, i, q, _ in items]}
    annotations = {"info": {}, "data_subtype": part, "annotations": [
        {"question_id": qid, "image_id": i, "answer_type": "other", "multiple_choice_answer": answers[0] if answers else "",
         "answers": [{"answer": a, "answer_confidence": "yes", "answer_id": k + 1} for k, a in enumerate(answers)]}
        for qid, i, _, answers in items if answers is not None]}
    (root / f"v2_OpenEnded_mscoco_{part}_questions.json").write_text(json.dumps(questions))
    (root / f"v2_mscoco_{part}_annotations.json").write_text(json.dumps(annotations))
    for _, i, _, _ in items:
        write_png(image_file(root, part, i), size=(40, 30), color=((i * 53) % 256, (i * 97) % 256, (i * 31) % 256))


TRAIN = [(1, 10, "What colour is it?", ["red"] * 6 + ["blue"] * 2 + ["Red."] * 2),
         (2, 10, "Is it big?", ["yes"] * 9 + ["no"]),
         (3, 11, "How many?", ["2"] * 2 + ["two"] * 8),
         (4, 12, "Is it small?", ["no"] * 5 + ["yes"] * 5)]
VAL = [(5, 20, "What colour?", ["blue"] * 10), (6, 21, "Is it round?", ["yes"] * 2 + ["no"] * 8),
       (7, 22, "How many?", ["3"] * 10)]


@pytest.fixture
def vqa_root(tmp_path):
    write_vqa(tmp_path, "train2014", TRAIN)
    write_vqa(tmp_path, "val2014", VAL)
    return tmp_path


def test_vqa_v2_soft_scores_follow_min_1_humans_over_3(vqa_root):
    cfg = DataConfig("vqa-v2", root=str(vqa_root), options={"answers": 4})
    train = load_split(cfg, "train")
    # train's answer counts: yes 14, red 8, two 8, no 6, blue 2, 2 2 (red. and Red. fold into red);
    # the top 4, ties broken alphabetically
    assert train.labels == ["yes", "red", "two", "no"] and train.task == "soft" and train.metric == "vqa-accuracy"
    assert [e.id for e in train] == ["vqa-1", "vqa-2", "vqa-3", "vqa-4"]
    scores = [{train.labels[k]: round(v, 4) for k, v in e.target.items()} for e in train]
    assert scores == [{"red": 1.0}, {"yes": 1.0, "no": 0.3333}, {"two": 1.0}, {"no": 1.0, "yes": 1.0}]
    assert train.examples[1].inputs == {"image": str(image_file(vqa_root, "train2014", 10)), "text": "Is it big?"}
    batch = Collator.for_data(train, cfg)(train.examples)
    torch.testing.assert_close(batch.targets[1], torch.tensor([1.0, 0.0, 0.0, 1 / 3]))
    assert train.label_text(train.examples[1]) == "yes 1.00|no 0.33"


def test_vqa_v2_val_and_test_share_val2014_by_image_and_never_an_image(vqa_root):
    cfg = DataConfig("vqa-v2", root=str(vqa_root), options={"answers": 4})
    val, test = load_split(cfg, "val"), load_split(cfg, "test")
    assert [e.id for e in val] == ["vqa-5", "vqa-7"] and [e.id for e in test] == ["vqa-6"]
    assert val.examples[0].target == {} and val.examples[1].target == {}  # blue and 3 are outside the top 4
    assert test.examples[0].target == pytest.approx({0: 2 / 3, 3: 1.0})  # held as float32, as a batch holds it


@pytest.mark.parametrize("what,message", [
    ("question missing", "question 99: annotated, but not in v2_OpenEnded_mscoco_train2014_questions.json"),
    ("no answers", "question 2: no answers"),
    ("null answers", "question 2: no answers"),  # null is no answer, not the answer "none"
    ("no annotation", "question 4: no annotation in v2_mscoco_train2014_annotations.json"),
])
def test_vqa_v2_bad_records_name_file_and_question(vqa_root, what, message):
    items = list(TRAIN)
    if what in ("no answers", "null answers"):
        items[1] = (2, 10, "Is it big?", ["" if what == "no answers" else None] * 10)
    elif what == "no annotation":
        items[3] = (4, 12, "Is it small?", None)
    write_vqa(vqa_root, "train2014", items)
    if what == "question missing":
        path = vqa_root / "v2_mscoco_train2014_annotations.json"
        data = json.loads(path.read_text())
        data["annotations"].append({"question_id": 99, "image_id": 10, "answers": [{"answer": "yes"}]})
        path.write_text(json.dumps(data))
    cfg = DataConfig("vqa-v2", root=str(vqa_root), options={"answers": 4})
    with pytest.raises(DataError) as err:
        load_split(cfg, "train")
    assert message in str(err.value)
    cfg.skip_bad_rows = True
    ds = load_split(cfg, "train")
    assert len(ds.skipped) == 1 and message in ds.skipped[0].reason
    assert len(ds) == (4 if what == "question missing" else 3)


def test_vqa_v2_examples_are_columns_read_as_examples(vqa_root):
    ds = load_split(DataConfig("vqa-v2", root=str(vqa_root), options={"answers": 4}), "train")
    assert isinstance(ds.examples, VqaExamples)
    assert [e.id for e in ds.examples[1:3]] == ["vqa-2", "vqa-3"] and ds.examples[-1].id == "vqa-4"
    assert [e.id for e in ds.subset([3, 0])] == ["vqa-4", "vqa-1"]
    with pytest.raises(IndexError):
        ds.examples[4]


def test_stream_array_reads_what_json_load_reads_in_any_chunk_size(tmp_path):
    data = {"info": {"note": "a \"questions\" key [inside] a string", "n": 12345},
            "license": [1, 2, {"x": "}"}], "questions": [{"id": i, "q": f"é{i}" * (i % 7), "v": i * 0.5}
                                                        for i in range(300)], "after": True}
    path = tmp_path / "big.json"
    path.write_text(json.dumps(data, ensure_ascii=False, indent=1))
    for chunk in (1, 7, 64, 1 << 20):
        assert list(stream_array(path, "questions", chunk=chunk)) == data["questions"]
    assert list(stream_array(path, "license", chunk=5)) == data["license"]


def test_stream_array_names_the_file_when_it_is_cut_short_or_lacks_the_key(tmp_path):
    path = tmp_path / "cut.json"
    path.write_text(json.dumps({"questions": [{"id": 1}, {"id": 2}]})[:-8])
    with pytest.raises(DataError, match="cut.json: not valid JSON at character .* download it again"):
        list(stream_array(path, "questions", chunk=4))
    path.write_text(json.dumps({"annotations": []}))
    with pytest.raises(DataError, match="no 'questions' list in the file"):
        list(stream_array(path, "questions"))


# -- Hateful Memes: an official split by name -------------------------------------------
def test_hateful_memes_picks_an_official_split_by_name(tmp_path):
    from msd_core.errors import ConfigError
    from tests.data.test_loaders import meme, write_hateful_memes

    for i in range(1, 5):
        write_png(tmp_path / "img" / f"{i}.png")
    write_hateful_memes(tmp_path, {"train.jsonl": [meme(1, 0), meme(2, 1)], "dev_seen.jsonl": [meme(3, 0)],
                                   "dev_unseen.jsonl": [meme(4, 1), meme(3, 0)]})
    assert [e.id for e in load_split(DataConfig("hateful-memes", root=str(tmp_path)), "val")] == ["hm-val-3"]
    unseen = load_split(DataConfig("hateful-memes", root=str(tmp_path), options={"val": "dev_unseen"}), "val")
    assert [e.id for e in unseen] == ["hm-val-4", "hm-val-3"] and unseen.metric == "auroc"
    with pytest.raises(ConfigError, match=r"option val must name one of the official val splits \['dev_seen', "
                                          r"'dev_unseen', 'dev'\], got 'test_seen'"):
        load_split(DataConfig("hateful-memes", root=str(tmp_path), options={"val": "test_seen"}), "val")


def test_snli_ve_image_dir_stays_inside_the_data_root(snli_root):
    from msd_core.errors import ConfigError

    with pytest.raises(ConfigError, match=r"snli-ve: option image_dir '\.\./elsewhere' leaves the data root .*"
                                          r"--allow-images-outside-root"):
        load_split(DataConfig("snli-ve", root=str(snli_root), options={"image_dir": "../elsewhere"}), "train")
