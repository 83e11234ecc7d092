"""The saliency explorer, distill and compare pages under AppTest."""

import time

import pytest

from tests.app.test_pages import run_app, teacher_listed, texts, wait_for_run


def hover_data(at) -> dict:
    """What the saliency page sends to its hover-thumbnail component."""
    import json

    return json.loads(next(e.proto.json for e in at.get("bidi_component")
                           if e.proto.component_name == "msd_hover_images"))


def test_saliency_page_without_a_teacher_says_what_to_do(empty_home):
    at = run_app("app_pages/saliency.py")
    assert "No trained teacher yet" in texts(at.info)


def test_saliency_page_shows_population_and_example_and_reacts(home_with_teacher, tmp_path, monkeypatch):
    monkeypatch.setenv("MSD_STUDIO_CACHE", str(tmp_path / "cache"))
    at = run_app("app_pages/saliency.py")
    hover = hover_data(at)  # every plotted point has a thumbnail for the hover
    assert sorted(map(int, hover["image_of"])) == list(range(32))
    assert all(u.startswith("data:image/webp;base64,") for u in hover["images"])
    labels = [m.label for m in at.metric]
    assert labels == ["S_image (mean saliency)", "examples image dominates", "S_text (mean saliency)",
                      "examples text dominates"]
    assert len(at.get("vega_lite_chart")) == 2 and not at.get("plotly_chart")  # scatter, histograms
    assert any("why the teacher says" in c for e in at.get("image") for c in e.captions)  # the attribution
    assert "How much each modality matters here" in texts(at.markdown)
    weights = next(m.value for m in at.markdown if "under each fixed scheme" in m.value)
    assert "| uniform | 1.00 | 1.00 |" in weights  # w_m = λ (§7.2)
    shares = [line for line in weights.splitlines() if line.startswith(("| population", "| instance-soft"))]
    for line in shares:  # the softmax schemes share the budget λ·|M| = 2 (§7.1)
        assert sum(float(w) for w in line.strip("| ").split(" | ")[1:]) == pytest.approx(2.0, abs=0.011)
    assert len(shares) == 2
    assert not at.dataframe  # the table opens on request
    at.session_state["explorer-table"] = True
    at.run()
    assert len(at.dataframe) == 1 and len(at.dataframe[0].value) == 32
    assert "8 of 8 examples match" not in texts(at.caption)
    before = texts(at.caption)
    at.selectbox[4].set_value("(all)").run()
    at.text_input[0].set_value("zzz no such text").run()
    assert "0 of" in texts(at.caption) and before != texts(at.caption)
    assert not at.exception
    assert hover_data(at)["image_of"] == {}  # no point shown, no thumbnail sent
    at.text_input[0].set_value("").run()
    t0 = time.time()
    at.selectbox[2].set_value("kl-shift").run()  # a new measure redraws from the cache
    assert time.time() - t0 < 20 and not at.exception
    assert "msd saliency --teacher" in texts(at.code)


def test_distill_page_with_no_teacher_and_no_runs(empty_home):
    at = run_app("app_pages/distill.py")
    assert "No teacher yet" in texts(at.info)
    assert "Nothing is running" in texts(at.caption)


def test_distill_page_defaults_and_command_come_from_the_config(home_with_teacher):
    """The form opens on DistillRunConfig's defaults and the command under it follows the form."""
    from msd_core.config import DistillRunConfig, QuickRun
    from msd_core.method.weighting import WEIGHTINGS

    at = run_app("app_pages/distill.py")
    weighting = next(s for s in at.selectbox if s.label == "Weighting (MSD)")
    assert weighting.options == WEIGHTINGS.names() and weighting.value == DistillRunConfig().distill.weighting
    lam = next(n for n in at.number_input if n.label == "λ (auxiliary weight)")
    assert lam.value == DistillRunConfig().distill.lam
    commands = [c.value for c in at.code if c.value.startswith("msd distill")][0].splitlines()
    q = QuickRun()  # the form's starting run: student, length, data size and seeds
    assert len(commands) == 1 + len(q.seeds) * len(q.methods) and all("--lam" not in c for c in commands[:-1])
    assert all(f"--model {q.student}" in c and f"--epochs {q.epochs}" in c and f"--max-train {q.max_train_examples}"
               in c for c in commands[:-1])
    lam.set_value(2.5).run()
    weighting.set_value("uniform").run()
    next(t for t in at.text_input if t.label == "Seeds").set_value("0,1").run()
    commands = [c.value for c in at.code if c.value.startswith("msd distill")][0].splitlines()[:-1]
    assert len(commands) == 4  # two seeds × (kd, msd)
    msd_seed1 = [c for c in commands if "--method" not in c and "--seed 1" in c]
    assert len(msd_seed1) == 1 and "--lam 2.5" in msd_seed1[0] and "--weighting uniform" in msd_seed1[0]
    from msd_core.cli import build_parser
    from msd_core.flags import run_config

    import shlex

    cfg = run_config(DistillRunConfig, build_parser().parse_args(shlex.split(msd_seed1[0])[1:]))
    assert (cfg.distill.lam, cfg.distill.weighting, cfg.train.seed, cfg.data.max_train_examples) == (2.5, "uniform",
                                                                                                      1, 2000)


def test_distill_page_more_msd_options_follow_the_config_and_reach_the_command(home_with_teacher):
    """Out-of-fold saliency and the meta step's options (§5.6, §7.6) from the page: each widget opens on
    DistillConfig's default with its help; the meta step's are disabled, and left out of the runs,
    unless the weighting is learned; a value set there reaches the command, and the command parses back."""
    import shlex

    from msd_core.cli import build_parser
    from msd_core.flags import run_config
    from msd_core.config import DistillConfig, DistillRunConfig
    from msd_core.method.weighting import META_SPLITS
    from msd_core.runs import Registry

    at = run_app("app_pages/distill.py")
    widgets = {w.label: w for w in [*at.selectbox, *at.number_input]}
    for name in ("saliency_folds", "meta_split", "meta_lr", "meta_start", "meta_entropy", "meta_lookahead"):
        assert widgets[name].value == getattr(DistillConfig(), name) and widgets[name].help, name
    assert widgets["meta_split"].options == list(META_SPLITS)
    assert widgets["meta_lr"].disabled and not widgets["saliency_folds"].disabled  # default weighting: fixed
    widgets["saliency_folds"].set_value(3).run()
    next(s for s in at.selectbox if s.label == "Weighting (MSD)").set_value("learned").run()
    meta_split = next(s for s in at.selectbox if s.label == "meta_split")
    assert not meta_split.disabled
    meta_split.set_value("val").run()
    next(n for n in at.number_input if n.label == "meta_entropy").set_value(0.1).run()
    commands = [c.value for c in at.code if c.value.startswith("msd distill")][0].splitlines()[:-1]
    msd = [c for c in commands if "--method" not in c][0]
    assert "--saliency-folds 3" in msd and "--meta-split val" in msd and "--meta-entropy 0.1" in msd
    kd = [c for c in commands if "--method kd" in c][0]
    assert not any(flag in kd for flag in ("--weighting", "--saliency-folds", "--meta-")), kd  # KD refuses folds
    cfg = run_config(DistillRunConfig, build_parser().parse_args(shlex.split(msd)[1:]))
    assert (cfg.distill.weighting, cfg.distill.saliency_folds, cfg.distill.meta_split, cfg.distill.meta_entropy) == (
        "learned", 3, "val", 0.1)
    next(n for n in at.number_input if n.label == "meta_fraction").set_value(1.0).run()  # must be below 1
    registered = len(Registry(home_with_teacher / "registry.sqlite").runs())
    next(b for b in at.button if b.label == "Launch").click().run()
    assert "meta-fraction" in texts(at.error) and not at.success, texts(at.error)
    assert len(Registry(home_with_teacher / "registry.sqlite").runs()) == registered  # not even the KD runs
    next(s for s in at.selectbox if s.label == "Weighting (MSD)").set_value("uniform").run()
    assert next(s for s in at.selectbox if s.label == "meta_split").disabled
    commands = [c.value for c in at.code if c.value.startswith("msd distill")][0].splitlines()[:-1]
    assert not any("--meta-" in c for c in commands)  # a disabled option's earlier value is not the run's


def test_distill_page_launches_runs_that_stream_and_cancel(home_with_teacher, tmp_path, monkeypatch):
    monkeypatch.setenv("MSD_STUDIO_RUNS", str(home_with_teacher))
    monkeypatch.setenv("MSD_STUDIO_CACHE", str(tmp_path / "cache"))
    at = run_app("app_pages/distill.py")
    at.multiselect[0].set_value(["msd"])
    next(t for t in at.text_input if t.label == "Seeds").set_value("0")
    next(n for n in at.number_input if n.label == "Epochs").set_value(20)  # still running when we look
    next(b for b in at.button if b.label == "Launch").click().run()
    assert "Launched 1 run(s)" in texts(at.success), texts(at.error)
    from msd_core.runs import Registry

    reg = Registry(home_with_teacher / "registry.sqlite")
    run_id = reg.runs()[0]["id"]
    deadline = time.time() + 120
    while time.time() < deadline and len(reg.metrics(run_id, ["train/loss"])) < 2:
        time.sleep(0.5)
    at.run()  # the fragment's run_every does not fire in AppTest: rerun by hand
    assert any("Active runs (1)" in s.value for s in at.subheader)
    assert len(at.get("plotly_chart")) >= 2
    cancel_button = next(b for b in at.button if b.label == "Cancel")
    cancel_button.click().run()
    deadline = time.time() + 60
    while time.time() < deadline and reg.run(run_id)["status"] == "running":
        time.sleep(0.5)
    assert reg.run(run_id)["status"] == "cancelled"
    at.run()
    assert "Nothing is running" in texts(at.caption)


def test_compare_page_with_no_runs(empty_home):
    at = run_app("app_pages/compare.py")
    assert "No finished distillation yet" in texts(at.info)


def test_compare_page_tables_curves_diff_and_examples(finished_students, monkeypatch):
    home, ids = finished_students
    monkeypatch.setenv("MSD_STUDIO_RUNS", str(home))
    at = run_app("app_pages/compare.py")
    table = at.dataframe[0].value
    assert len(table) == 2 and "only:text accuracy" in table.columns
    import json

    for method in ("kd", "msd"):  # one seed: the plain value (± needs two), to four places
        saved = json.loads((home / method / "metrics.json").read_text())["test"]["full"]["accuracy"]
        row = table[table["group"].str.startswith(method)]
        assert list(row["full accuracy"]) == [f"{saved:.4f}"]
    assert len(at.get("plotly_chart")) == 1
    diff = at.dataframe[1].value
    assert "distill.method" in list(diff["setting"])
    assert "Outcomes by the modality" in texts(at.markdown)
    at.radio[2].set_value("B right, A wrong").run()
    assert not at.exception
    at.toggle[0].set_value(True).run()
    assert not at.exception


def test_overview_lists_recent_runs_and_takes_a_new_user_to_saliency(finished_students, tiny_teacher_runs,
                                                                     monkeypatch):
    home, ids = finished_students
    monkeypatch.setenv("MSD_STUDIO_RUNS", str(home))
    monkeypatch.setenv("MSD_STUDIO_ASSETS", str(tiny_teacher_runs))
    at = run_app()
    runs_table = next(d.value for d in at.dataframe if "status" in d.value.columns and "run" in d.value.columns)
    assert set(ids) <= set(runs_table["run"]) and set(runs_table["status"]) == {"finished"}
    at.button[0].click().run()
    assert at.title[0].value == "Saliency explorer" and not at.exception


def test_data_page_trains_a_teacher_as_a_run_and_loads_a_checkpoint(home_with_teacher, tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    monkeypatch.setenv("MSD_STUDIO_RUNS", str(runs))
    at = run_app("app_pages/data_teacher.py")
    at.selectbox[0].set_value("synthetic").run()
    assert "No trained teacher for **synthetic**" in texts(at.info)
    training_examples = next(n for n in at.number_input if n.label == "Training examples (0 = all)")
    training_examples.set_value(64)
    next(n for n in at.number_input if n.label == "Epochs").set_value(1)
    next(b for b in at.button if b.label == "Train teacher").click().run()
    assert "Started teacher run" in texts(at.success), texts(at.error)
    wait_for_run(runs / "registry.sqlite")
    assert teacher_listed(at, "synthetic")

    path_box = next(t for t in at.text_input if t.label.startswith("Path to a model.safetensors"))
    path_box.set_value(str(tmp_path / "nothing-here")).run()
    next(b for b in at.button if b.label == "Load").click().run()
    assert "checkpoint not found" in texts(at.error)
    path_box.set_value(str(home_with_teacher / "teacher-synthetic" / "model.safetensors")).run()
    next(b for b in at.button if b.label == "Load").click().run()
    assert "now listed with the other teachers" in texts(at.success)
    teacher_box = next(s for s in at.selectbox if s.label == "Teacher")
    assert len(teacher_box.options) == 2


def test_data_page_loads_a_hugging_face_folder_and_trains_a_teacher_from_it(empty_home, tmp_path, monkeypatch):
    from msd_core.engine.checkpoint import read_metadata
    from tests.models.test_hf_folder import save_tiny_bert

    folder = tmp_path / "my-bert"
    folder.mkdir()
    save_tiny_bert(folder)
    at = run_app("app_pages/data_teacher.py")
    at.selectbox[0].set_value("synthetic").run()
    path_box = next(t for t in at.text_input if t.label.startswith("Path to a model.safetensors"))
    (tmp_path / "no-weights").mkdir()
    (tmp_path / "no-weights" / "config.json").write_text('{"model_type": "vit"}')
    path_box.set_value(str(tmp_path / "no-weights")).run()
    next(b for b in at.button if b.label == "Load").click().run()
    assert "no-weights: no model.safetensors" in texts(at.error) and not at.exception

    for given in (folder / "model.safetensors", folder):  # the weights file leads to its folder too
        path_box.set_value(str(given)).run()
        next(b for b in at.button if b.label == "Load").click().run()
        assert "bert (text-encoder)" in texts(at.success), texts(at.error)
    next(n for n in at.number_input if n.key == "hf-data.max_train_examples").set_value(64)
    next(n for n in at.number_input if n.key == "hf-train.epochs").set_value(1).run()
    assert any(f"--pretrained {folder}" in c.value for c in at.code)
    next(b for b in at.button if b.label.startswith("Train a teacher on synthetic from this model")).click().run()
    assert "Started teacher run" in texts(at.success), texts(at.error)
    wait_for_run(empty_home / "runs" / "registry.sqlite")
    spec = read_metadata(next((empty_home / "runs").rglob("model.safetensors")))["spec"]
    assert spec["preset"] == "hf-bert-teacher" and spec["hidden"] == 32
    assert teacher_listed(at, "synthetic")


def test_compare_page_shows_the_commands_that_retrain_its_runs(finished_students, monkeypatch):
    import shlex

    from msd_core.cli import build_parser
    from msd_core.flags import run_config
    from msd_core.config import DistillRunConfig
    from msd_core.runs import Registry

    home, ids = finished_students
    monkeypatch.setenv("MSD_STUDIO_RUNS", str(home))
    at = run_app("app_pages/compare.py")
    lines = [c.value for c in at.code if "msd distill" in c.value][0].splitlines()
    commands = [line for line in lines if line.startswith("msd distill")]
    assert len(commands) == 2
    recorded = {r["config"]["distill"]["method"]: r["config"] for r in Registry(home / "registry.sqlite").runs()}
    for command in commands:
        cfg = run_config(DistillRunConfig, build_parser().parse_args(shlex.split(command)[1:]))
        want = DistillRunConfig.from_dict(recorded[cfg.distill.method])
        want.out_dir = ""
        assert cfg == want


@pytest.fixture(scope="module")
def two_seed_students(tiny_teacher_runs, tmp_path_factory):
    """A registry of four finished students of the tiny teacher: KD and MSD (learned-global
    weighting) with seeds 0 and 1."""
    from msd_core.config import DataConfig, DistillConfig, DistillRunConfig, ModelConfig, TrainConfig
    from msd_core.runs import Registry
    from tests.conftest import TINY, registered_distill

    home = tmp_path_factory.mktemp("two-seeds")
    reg = Registry(home / "registry.sqlite")
    ids = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MSD_STUDIO_CACHE", str(home / "cache"))
        for seed in (0, 1):
            for method in ("kd", "msd"):
                cfg = DistillRunConfig(teacher=str(tiny_teacher_runs / "teacher-synthetic"),
                                       data=DataConfig("synthetic", options={"n": 2000}, max_train_examples=64,
                                                       max_eval_examples=32),
                                       model=ModelConfig("student-two-tower", dict(TINY)),
                                       train=TrainConfig(epochs=1, batch_size=16, seed=seed),
                                       distill=DistillConfig(method=method, weighting="learned-global"),
                                       out_dir=str(home / f"{method}-{seed}"))
                ids.append(registered_distill(cfg, reg, f"{method} seed {seed}"))
    return home, ids


def test_compare_page_with_one_seed_says_the_paired_test_needs_two(finished_students, monkeypatch):
    home, ids = finished_students
    monkeypatch.setenv("MSD_STUDIO_RUNS", str(home))
    at = run_app("app_pages/compare.py")
    tests = next(d.value for d in at.dataframe if "verdict" in d.value.columns)
    assert list(tests["missing"]) == ["needs ≥ 2 paired seeds (has 1): launch more seeds of both methods"]
    assert list(tests["p"]) == [""] and list(tests["t (dof)"]) == [""] and list(tests["verdict"]) == ["not tested"]
    assert "No comparison here has a test yet (see *missing*)." in texts(at.caption)
    mc = next(d.value for d in at.dataframe if "b: A right, B wrong" in d.value.columns)
    assert list(mc["seed pairs"]) == [1] and list(mc["example pairs"]) == [32]
    assert "None of the chosen runs uses a meta-learned weighting" in texts(at.caption)  # instance-soft MSD
    labels = [b.label for b in at.get("download_button")]
    assert {"Examples (Parquet)", "Table (CSV)", "Table (Markdown)", "Table (LaTeX)"} <= set(labels)
    assert any("msd export --runs" in c.value for c in at.code)
    assert not at.exception


def test_compare_page_tests_two_methods_over_seeds_and_shows_learned_weights(two_seed_students, monkeypatch):
    import json

    from msd_core.analysis.significance import paired_t
    from msd_core.runs import Registry

    home, ids = two_seed_students
    monkeypatch.setenv("MSD_STUDIO_RUNS", str(home))
    monkeypatch.setenv("MSD_STUDIO_CACHE", str(home / "cache"))
    at = run_app("app_pages/compare.py")
    assert [s.value for s in at.selectbox if s.label.startswith("Method")] == [
        "kd · student-two-tower", "msd learned-global λ=1.0 · student-two-tower"]
    tests = next(d.value for d in at.dataframe if "verdict" in d.value.columns)
    assert list(tests["paired seeds"]) == ["0, 1"]
    runs = {r["id"]: r for r in Registry(home / "registry.sqlite").runs()}
    acc = {(r["config"]["distill"]["method"], r["config"]["train"]["seed"]):
           json.loads((home / f"{r['config']['distill']['method']}-{r['config']['train']['seed']}" / "metrics.json")
                      .read_text())["test"]["full"]["accuracy"] for r in runs.values()}
    want = paired_t([acc["kd", 0], acc["kd", 1]], [acc["msd", 0], acc["msd", 1]])
    assert tests["B − A"][0] == f"{want['mean_diff']:+.4f}"
    # accuracy is a mean over examples, and the students are in their folders: seeds × examples (§13.2)
    assert tests["test"][0] == "seeds × examples" and tests["95% t-interval of B − A"][0].startswith("[")
    assert tests["Holm p"][0] == tests["p"][0]  # a family of one comparison
    assert "over the **1 comparison** with a p in this table (1 method against kd · student-two-tower, on 1 data " \
           "set, the full view)" in texts(at.caption)
    mc = next(d.value for d in at.dataframe if "b: A right, B wrong" in d.value.columns)
    assert list(mc["example pairs"]) == [64] and mc["test"][0].startswith(("exact binomial", "chi-square", "none"))
    assert any("fixes or breaks in every seed" in m.value for m in at.markdown)
    assert len(at.get("plotly_chart")) == 2  # the curves and the learned weights
    weights_chart = json.loads(at.get("plotly_chart")[1].proto.spec)
    assert {t["name"].split(" · ")[0] for t in weights_chart["data"]} == {"image", "text"}
    assert len(weights_chart["layout"]["shapes"]) == 2  # one saliency share line per modality
    # example by example, the page opens on the baseline and the other method of one seed (not the newest
    # run against the oldest, which are of different seeds)
    a, b = (next(s for s in at.selectbox if s.label == f"Student {x}").value for x in "AB")
    assert (a["name"], b["name"]) == ("kd seed 0", "msd seed 0")
    next(s for s in at.selectbox if s.label == "View").set_value("only:text").run()
    assert not at.exception
    assert next(s for s in at.selectbox if s.label == "Method B, example by example").options == [
        "msd learned-global λ=1.0 · student-two-tower"]  # never the baseline against itself


def test_compare_page_warns_of_seeds_in_two_clusters_and_says_how_many_seeds_a_difference_needs(tmp_path,
                                                                                                  monkeypatch):
    """Made-up finished runs (metrics.json alone, no model: the test is over seeds only, and the table
    says so): KD's five seeds split 4 + 1, as student-small's did; MSD's do not."""
    import json

    from msd_core.runs import Registry

    monkeypatch.setenv("MSD_STUDIO_RUNS", str(tmp_path))
    reg = Registry(tmp_path / "registry.sqlite")
    accuracy = {"kd": [0.6809, 0.6708, 0.7878, 0.6690, 0.6673], "msd": [0.8704, 0.8799, 0.8574, 0.8573, 0.8714]}
    for method, values in accuracy.items():
        for seed, value in enumerate(values):
            out = tmp_path / f"{method}-{seed}"
            out.mkdir()
            (out / "metrics.json").write_text(json.dumps({"metric": "accuracy", "test": {"full": {"accuracy": value}},
                                                          "val": {"full": {"accuracy": value}}}))
            config = {"distill": {"method": method, "weighting": "uniform", "lam": 1.0},
                      "model": {"preset": "student-small"}, "train": {"seed": seed},
                      "data": {"name": "easy-vqa"}}
            run_id = reg.create(config, kind="student", name=f"{method} seed {seed}", out_dir=str(out))
            reg.finish(run_id, "finished")
    at = run_app("app_pages/compare.py")
    at.multiselect[0].set_value([r["id"] for r in reg.runs()]).run()  # all ten runs, not the newest six
    assert not at.exception
    warning = texts(at.warning)
    assert "**kd · student-small** on easy-vqa: its seeds split in two, 0.6673–0.6809 (seeds 0, 1, 3, 4) and " \
           "0.7878 (seed 2)" in warning and "msd" not in warning  # MSD's seeds spread evenly
    tests = next(d.value for d in at.dataframe if "verdict" in d.value.columns)
    assert list(tests["test"]) == ["seeds"] and "tested over seeds only" in tests["missing"][0]
    needed = int(tests["seeds needed"][0])
    assert any(f"would need {needed} paired seeds to be found 80% of the time" in m.value for m in at.markdown)
