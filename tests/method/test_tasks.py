"""Task kinds (docs/METHOD.md §3.4): sigmoid saliency against captum, the measures, Shapley values
and metrics of multi-label and soft targets against hand-written references."""

import math

import pytest
import torch
import torch.nn.functional as F
from captum.attr import FeatureAblation

from msd_core.analysis.ledger import model_views
from msd_core.config import DataConfig
from msd_core.data import Collator, load_split, make_view
from msd_core.data.vqa_v2 import soft_scores
from msd_core.engine.evaluate import f1_scores, headline_metric, view_metrics, vqa_accuracy
from msd_core.method.saliency import modality_saliency, shapley_values, subset_losses
from msd_core.data.tasks import confidence, correct, label_prior, predicted_text, prior_loss
from msd_core.method.view_logits import TeacherLogits
from tests.conftest import tiny_model

DATA = DataConfig("synthetic", options={"n": 24, "task": "multi-label"})


@pytest.fixture(scope="module")
def multi():
    return load_split(DATA, "train")


def test_sigmoid_loss_drop_equals_captum_feature_ablation(multi):
    model = tiny_model(multi)
    collator = Collator.for_data(multi, DATA)
    batch = collator(multi.examples)
    mods = batch.modalities

    def loss_with_presence(*presence):
        b = make_view(batch, mods)
        b.present = {m: p[:, 0] > 0.5 for m, p in zip(mods, presence)}
        return F.binary_cross_entropy_with_logits(model(b), batch.targets, reduction="none").mean(-1)

    ones = tuple(torch.ones(len(batch), 1) for _ in mods)
    masks = tuple(torch.tensor([[i]]) for i in range(len(mods)))
    with torch.no_grad():
        attr = FeatureAblation(loss_with_presence).attribute(ones, baselines=(0.0,) * len(mods), feature_mask=masks)
    views = model_views(model, multi, collator, "cpu", removal="drop")
    assert views.task == "multi-label" and views.targets.shape == (24, 4)
    sal = modality_saliency(views, "loss-drop")
    for m, a in zip(mods, attr):  # captum: f(x) − f(x ablated) = −(loss-drop saliency)
        torch.testing.assert_close(sal[m], -a[:, 0], rtol=0, atol=1e-5)


def sigmoid(x):
    return 1 / (1 + math.exp(-x))


def test_sigmoid_measures_on_known_logits():
    full, without = torch.tensor([[2.0, -1.0, 0.0]]), torch.tensor([[0.0, 0.0, 0.0]])
    y = torch.tensor([[1.0, 0.0, 1.0]])
    cache = TeacherLogits(["0"], y, {"full": full, "without:a": without, "without:b": full.clone()},
                          ["p", "q", "r"], ["a", "b"], "drop", task="multi-label")

    def bce(z):
        return -sum(t * math.log(sigmoid(v)) + (1 - t) * math.log(1 - sigmoid(v)) for v, t in zip(z, y[0].tolist())) / 3

    def binary_kl(a, b):
        p, q = sigmoid(a), sigmoid(b)
        return p * math.log(p / q) + (1 - p) * math.log((1 - p) / (1 - q))

    ld = modality_saliency(cache, "loss-drop")
    assert ld["a"].item() == pytest.approx(bce([0, 0, 0]) - bce([2, -1, 0]), abs=1e-6) and ld["b"].item() == 0
    kl = modality_saliency(cache, "kl-shift")
    assert kl["a"].item() == pytest.approx(sum(binary_kl(a, 0.0) for a in (2, -1, 0)) / 3, abs=1e-6)
    cd = modality_saliency(cache, "confidence-drop")  # the mean sigmoid of the true labels p and r
    assert cd["a"].item() == pytest.approx((sigmoid(2) + sigmoid(0)) / 2 - 0.5, abs=1e-6)


def test_soft_confidence_weights_the_labels_by_their_scores():
    z, y = torch.tensor([[0.0, 2.0, -2.0]]), torch.tensor([[1.0, 1 / 3, 0.0]])
    assert confidence(z, y, "soft").item() == pytest.approx((0.5 + sigmoid(2) / 3) / (4 / 3), abs=1e-6)
    assert confidence(z, torch.zeros(1, 3), "soft").item() == 0  # no positive label: no confidence


def test_multi_label_prior_and_shapley_values_add_up(multi):
    y = multi.targets()
    prior = label_prior(y, "multi-label", 4)
    torch.testing.assert_close(prior, (y.sum(0) + 1) / (len(y) + 2))
    expected = -(y * prior.log() + (1 - y) * (1 - prior).log()).mean(-1)
    torch.testing.assert_close(prior_loss(y, "multi-label", 4), expected)
    views = model_views(tiny_model(multi), multi, Collator.for_data(multi, DATA), "cpu")
    phi = shapley_values(views)
    loss = subset_losses(views)
    torch.testing.assert_close(sum(phi.values()), loss[frozenset()] - loss[frozenset(multi.modality_names)],
                               rtol=0, atol=1e-5)


def test_vqa_accuracy_follows_its_published_definition():
    """Antol et al. 2015: an answer's accuracy is min(1, #humans who gave it / 3)."""
    labels = ["yes", "no", "2", "red"]
    index = {a: i for i, a in enumerate(labels)}
    humans = [["yes"] * 10, ["no"] * 2 + ["yes"] * 8, ["2"] * 1 + ["red"] * 9, ["blue"] * 10]
    targets = torch.zeros(4, 4)
    for row, answers in enumerate(humans):
        for k, score in soft_scores(answers, index).items():
            targets[row, k] = score
    predicted = ["yes", "no", "2", "red"]  # → 1, 2/3, 1/3, 0 (blue is outside the vocabulary)
    logits = torch.full((4, 4), -5.0)
    for row, answer in enumerate(predicted):
        logits[row, index[answer]] = 5.0
    by_hand = sum(min(1.0, answers.count(p) / 3) for answers, p in zip(humans, predicted)) / 4
    assert vqa_accuracy(logits, targets) == pytest.approx(by_hand, abs=1e-6) == pytest.approx(0.5, abs=1e-6)
    assert headline_metric(logits, targets, "vqa-accuracy", "soft") == pytest.approx(0.5, abs=1e-6)
    assert correct(logits, targets, "soft").tolist() == [True, False, False, False]


def test_f1_scores_on_a_hand_counted_example():
    truth = torch.tensor([[1.0, 0, 1], [0, 1, 0], [1, 1, 0]])
    logits = torch.tensor([[3.0, -3, -3], [-3, 3, 3], [3, 3, -3]])  # predicts {0}, {1, 2}, {0, 1}
    # per label (tp, fp, fn): 0 (2, 0, 0), 1 (2, 0, 0), 2 (0, 1, 1); micro: tp 4, fp 1, fn 1
    f1 = f1_scores(logits, truth)
    assert f1["f1-micro"] == pytest.approx(2 * 4 / (2 * 4 + 1 + 1))
    assert f1["f1-macro"] == pytest.approx((1 + 1 + 0) / 3)
    assert f1["f1-weighted"] == pytest.approx((2 * 1 + 2 * 1 + 1 * 0) / 5)
    samples = [2 * 1 / (1 + 2), 2 * 1 / (2 + 1), 1.0]  # per example: 2·|P∩T| / (|P| + |T|)
    assert f1["f1-samples"] == pytest.approx(sum(samples) / 3)
    m = view_metrics(logits, truth, "f1-micro", "multi-label")
    assert m["exact-match"] == pytest.approx(1 / 3) and "accuracy" not in m
    assert m["loss"] == pytest.approx(F.binary_cross_entropy_with_logits(logits, truth).item())
    assert predicted_text(logits[1], ["a", "b", "c"], "multi-label") == "b|c"
    assert predicted_text(torch.full((3,), -1.0), ["a", "b", "c"], "multi-label") == "(none)"
