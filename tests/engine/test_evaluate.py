"""Metrics per view and the one batched predictor behind the cache, evaluation and Compare."""

import math

import pytest
import torch

from msd_core.data import Collator, named_views
from msd_core.engine.evaluate import accuracy, auroc, evaluate, view_metrics
from msd_core.engine.predict import predict_views
from tests.conftest import tiny_model


def test_auroc_equals_scikit_learn_with_ties():
    from sklearn.metrics import roc_auc_score

    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        n = int(torch.randint(5, 200, (1,), generator=g))
        scores = torch.randint(0, 6, (n,), generator=g).float() / 5  # many ties
        targets = torch.randint(0, 2, (n,), generator=g)
        if targets.min() == targets.max():
            continue
        assert auroc(scores, targets) == pytest.approx(roc_auc_score(targets.numpy(), scores.numpy()), abs=1e-12)


def test_auroc_known_answers():
    assert auroc(torch.tensor([0.1, 0.2, 0.8, 0.9]), torch.tensor([0, 0, 1, 1])) == 1.0
    assert auroc(torch.tensor([0.9, 0.8, 0.2, 0.1]), torch.tensor([0, 0, 1, 1])) == 0.0
    assert auroc(torch.tensor([0.5, 0.5]), torch.tensor([0, 1])) == 0.5
    assert math.isnan(auroc(torch.tensor([0.1, 0.2]), torch.tensor([1, 1])))


def test_view_metrics_known_answer():
    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0], [2.0, 0.0]])
    targets = torch.tensor([0, 1, 1])
    m = view_metrics(logits, targets, "auroc")
    assert m["accuracy"] == pytest.approx(2 / 3) and accuracy(logits, targets) == pytest.approx(2 / 3)
    assert m["loss"] == pytest.approx(torch.nn.functional.cross_entropy(logits, targets).item())
    assert m["auroc"] == pytest.approx(0.75)  # p(1) = [.12, .88, .12]: positives rank 3 and 1.5 of 3
    assert "auroc" not in view_metrics(logits, targets, "accuracy")


def test_views_that_keep_the_same_modalities_run_once(synthetic3):
    ds = synthetic3.subset(range(20))
    model = tiny_model(ds)
    calls = []
    model.register_forward_hook(lambda *_: calls.append(1))
    views = {"a": ("text",), "b": ("text",), "full": tuple(ds.modality_names)}
    logits, targets = predict_views(model, ds, Collator(ds.modalities), "cpu", views, removal="mask", batch_size=8)
    assert len(calls) == 2 * 3  # two distinct views × three batches
    assert torch.equal(logits["a"], logits["b"]) and logits["a"] is not logits["b"]
    assert targets.tolist() == [e.target for e in ds.examples] and logits["full"].shape == (20, len(ds.labels))


def test_predictions_do_not_depend_on_the_batch_split(synthetic3):
    ds = synthetic3.subset(range(20))
    model = tiny_model(ds)
    views = named_views(ds.modality_names, without=True)
    a, _ = predict_views(model, ds, Collator(ds.modalities), "cpu", views, batch_size=20)
    b, _ = predict_views(model, ds, Collator(ds.modalities), "cpu", views, batch_size=7)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)
    assert list(a) == list(views)


def test_evaluate_reports_the_full_and_each_single_view_and_restores_training_mode(synthetic3):
    ds = synthetic3.subset(range(16))
    model = tiny_model(ds).train()
    out = evaluate(model, ds, Collator(ds.modalities), "cpu")
    assert list(out) == ["full", "only:image", "only:text", "only:tabular"] and model.training
    logits, targets = predict_views(model, ds, Collator(ds.modalities), "cpu", {"full": tuple(ds.modality_names)})
    assert out["full"]["accuracy"] == accuracy(logits["full"], targets)
