"""The saliency explorer's tables, on hand-made teacher logits whose answers are known."""

import pytest
import torch
import torch.nn.functional as F

from msd_core.analysis.explore import saliency_frame, scheme_weights
from msd_core.data.example import Example, ModalitySpec, MultimodalDataset
from msd_core.method.view_logits import TeacherLogits


@pytest.fixture
def two_examples():
    mods = [ModalitySpec("image", "image"), ModalitySpec("text", "text")]
    ds = MultimodalDataset("toy", "val", mods, ["no", "yes"],
                           [Example("e0", {"text": "is it red"}, 0, {"reliance": "image-only"}),
                            Example("e1", {"text": "is it blue"}, 1, {"reliance": "text-only"})])
    full = torch.tensor([[4.0, 0.0], [0.0, 4.0]])
    logits = {"full": full,
              "only:image": torch.tensor([[4.0, 0.0], [0.0, 0.0]]),  # image alone answers e0 only
              "only:text": torch.tensor([[0.0, 0.0], [0.0, 4.0]])}  # text alone answers e1 only
    logits["without:text"], logits["without:image"] = logits["only:image"], logits["only:text"]
    logits["subset:image"], logits["subset:text"], logits["subset:image+text"] = (
        logits["only:image"], logits["only:text"], full)
    cache = TeacherLogits(["e0", "e1"], torch.tensor([0, 1]), logits, ["no", "yes"], ["image", "text"], "drop")
    return ds, cache


def test_one_row_per_example_with_known_saliency_and_dominance(two_examples):
    ds, cache = two_examples
    frame = saliency_frame(cache, ds)
    ce = F.cross_entropy
    lost = (ce(torch.tensor([[0.0, 0.0]]), torch.tensor([0])) - ce(torch.tensor([[4.0, 0.0]]), torch.tensor([0]))).item()
    assert frame["sal image"].tolist() == pytest.approx([lost, 0.0], abs=1e-6)
    assert frame["sal text"].tolist() == pytest.approx([0.0, lost], abs=1e-6)
    assert frame["dominant"].tolist() == ["image", "text"] and frame["reliance"].tolist() == ["image-only", "text-only"]
    assert frame["pred full"].tolist() == ["no", "yes"] and frame["correct"].all()
    assert frame["pred only:text"].tolist() == ["no", "yes"]  # a 0/0 tie goes to the first label
    assert frame["p(y) only:image"].tolist() == pytest.approx([torch.sigmoid(torch.tensor(4.0)).item(), 0.5])
    # Shapley values sum to v(M) − v(∅), with ∅ the (add-one smoothed) label prior: both labels at 1/2
    total = frame["shapley image"] + frame["shapley text"]
    want = (torch.log(torch.tensor(2.0)) - ce(torch.tensor([[4.0, 0.0]]), torch.tensor([0]))).item()
    assert total.tolist() == pytest.approx([want, want], abs=1e-6)
    assert "interaction image×text" in frame


def test_scheme_weights_are_what_each_fixed_scheme_gives(two_examples):
    ds, cache = two_examples
    frame = saliency_frame(cache, ds)
    w = scheme_weights(frame, 0, ["image", "text"], lam=1.5, tau=1.0).set_index(["scheme", "modality"])["weight"]
    assert set(w.index.get_level_values(0)) == {"uniform", "population", "instance-soft", "instance-hard"}
    assert w["uniform", "image"] == w["uniform", "text"] == 1.5  # λ each (§7.1)
    assert (w["instance-hard", "image"], w["instance-hard", "text"]) == (3.0, 0.0)  # λ·|M| on the dominant one
    assert w["population", "image"] == pytest.approx(1.5)  # S_image = S_text: an even split of λ·|M|
    for scheme in ("uniform", "population", "instance-soft", "instance-hard"):
        assert w[scheme, "image"] + w[scheme, "text"] == pytest.approx(3.0)
