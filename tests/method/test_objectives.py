"""The objectives none / kd / msd: registered by name, equal to hand-written formulas, and called
with what they need as arguments (model, batch, step, learning rate), never with a trainer."""

import inspect

import pytest
import torch
import torch.nn.functional as F

from msd_core.config import DistillConfig
from msd_core.data import Collator
from msd_core.method.objectives import OBJECTIVES, Supervised, build_objective, unwrap
from msd_core.method.view_logits import TeacherLogits
from tests.conftest import tiny_model


@pytest.fixture(scope="module")
def setting(synthetic3):
    ds = synthetic3
    model = tiny_model(ds, preset="student-two-tower")
    batch = Collator(ds.modalities)(ds.examples[:6])
    g = torch.Generator().manual_seed(0)
    names = ["full", *(f"only:{m}" for m in ds.modality_names), *(f"without:{m}" for m in ds.modality_names)]
    logits = {v: torch.randn(len(ds), len(ds.labels), generator=g) for v in names}
    teacher = TeacherLogits([e.id for e in ds.examples], torch.tensor([e.target for e in ds.examples]), logits,
                            ds.labels, ds.modality_names, "drop")
    return ds, model, batch, teacher


def kd_ref(t, s, T):
    """T² · KL(softmax(t/T) ‖ softmax(s/T)), per example, written out."""
    p = torch.softmax(t / T, -1)
    return T * T * (p * (torch.log(p) - torch.log_softmax(s / T, -1))).sum(-1)


def test_objectives_are_a_registry_and_take_no_trainer():
    assert OBJECTIVES.names() == ["none", "kd", "msd"]
    for cls in [Supervised, *(OBJECTIVES.get(n) for n in OBJECTIVES)]:
        params = list(inspect.signature(cls.__call__).parameters)
        assert params == ["self", "model", "batch", "step", "lr", "total_steps", "share"], cls


def test_none_is_cross_entropy_on_the_labels(setting):
    ds, model, batch, teacher = setting
    out = build_objective(DistillConfig(method="none"))(model, batch, step=0, lr=1e-3)
    torch.testing.assert_close(out["loss"], F.cross_entropy(model(batch), batch.targets), rtol=1e-6, atol=1e-6)
    assert set(out) == {"loss", "ce"}


def test_kd_matches_the_formula_with_teacher_rows_found_by_id(setting):
    ds, model, batch, teacher = setting
    cfg = DistillConfig(method="kd", alpha=0.3, temperature=3.0)
    out = build_objective(cfg, teacher=teacher)(model, batch, step=0, lr=1e-3)
    rows = [teacher.ids.index(i) for i in batch.ids]
    s = model(batch)
    want = 0.7 * F.cross_entropy(s, batch.targets) + 0.3 * kd_ref(teacher.logits["full"][rows], s, 3.0).mean()
    torch.testing.assert_close(out["loss"], want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("weighting", ["uniform", "instance-hard"])
def test_msd_adds_one_weighted_term_per_modality(setting, weighting):
    ds, model, batch, teacher = setting
    cfg = DistillConfig(method="msd", weighting=weighting, alpha=0.5, temperature=2.0, lam=0.75)
    out = build_objective(cfg, teacher=teacher)(model, batch, step=0, lr=1e-3)
    rows = [teacher.ids.index(i) for i in batch.ids]
    mods = ds.modality_names
    sal = {m: F.cross_entropy(teacher.logits[f"without:{m}"][rows], batch.targets, reduction="none")
           - F.cross_entropy(teacher.logits["full"][rows], batch.targets, reduction="none") for m in mods}
    if weighting == "uniform":
        w = {m: torch.full((len(rows),), 0.75) for m in mods}  # λ for every modality's term (§7.1)
    else:
        best = torch.stack([sal[m] for m in mods], 1).argmax(1)
        w = {m: 0.75 * len(mods) * (best == i).float() for i, m in enumerate(mods)}
    s_full = model(batch)
    want = 0.5 * F.cross_entropy(s_full, batch.targets) + 0.5 * kd_ref(teacher.logits["full"][rows], s_full, 2.0).mean()
    from msd_core.data import make_view

    for m in mods:
        term = (w[m] * kd_ref(teacher.logits[f"only:{m}"][rows], model(make_view(batch, [m])), 2.0)).mean()
        torch.testing.assert_close(out[f"kd:{m}"], term, rtol=1e-5, atol=1e-6)
        want = want + term
        assert out[f"w:{m}:mean"] == pytest.approx(w[m].mean().item())
    torch.testing.assert_close(out["loss"], want, rtol=1e-5, atol=1e-6)


def test_a_weight_source_replaces_the_configured_weights(setting):
    ds, model, batch, teacher = setting
    mods = ds.modality_names
    calls = []

    def only_text(ids, device):
        calls.append(list(ids))
        return {m: torch.full((len(ids),), 3.0 if m == "text" else 0.0) for m in mods}

    out = build_objective(DistillConfig(method="msd", weighting="uniform"), teacher=teacher,
                          weights=only_text)(model, batch, step=0, lr=1e-3)
    assert calls == [batch.ids] and out["kd:image"] == 0 and out["w:text:mean"] == 3.0


def test_learned_weights_take_a_meta_step_at_the_given_step_and_learning_rate(setting):
    ds, model, batch, teacher = setting
    cfg = DistillConfig(method="msd", weighting="learned-global", meta_every=2, meta_lr=0.5)
    torch.manual_seed(0)
    objective = build_objective(cfg, teacher=teacher, meta_examples=ds.examples[10:20],
                                collator=Collator(ds.modalities), batch_size=4)
    before = objective.weighter.logits.detach().clone()
    objective(model, batch, step=1, lr=1e-3)  # 1 % 2 != 0: no meta step
    assert torch.equal(objective.weighter.logits, before)
    objective(model, batch, step=2, lr=0.0)  # a meta step, but a zero look-ahead learns nothing of θ
    assert torch.allclose(objective.weighter.logits, before)
    objective(model, batch, step=4, lr=1.0)
    assert not torch.allclose(objective.weighter.logits, before)
    w = objective.example_weights()
    assert set(w) == set(ds.modality_names)
    total = sum(w.values())
    torch.testing.assert_close(total, torch.full_like(total, float(len(ds.modality_names))))  # λ·|M|


def test_meta_steps_wait_for_meta_start_and_leave_the_students_random_numbers_alone(setting):
    """``meta_start = 0.25`` of 8 steps: no meta step before step 2, one from it on. A meta step
    draws its random numbers from a fork, so the student's step after it sees those it would see
    without one (here: a draw right after the call), dropout and all."""
    ds, _, batch, teacher = setting
    model = tiny_model(ds, preset="student-two-tower", dropout=0.3).train()
    cfg = DistillConfig(method="msd", weighting="learned-global", meta_start=0.25, meta_lr=0.5)
    objective = build_objective(cfg, teacher=teacher, meta_examples=ds.examples[10:20],
                                collator=Collator(ds.modalities), batch_size=4)
    before = objective.weighter.logits.detach().clone()
    objective(model, batch, step=1, lr=1.0, total_steps=8)
    assert torch.equal(objective.weighter.logits, before)
    draws = []
    for step in (2, 3):  # meta steps from here on
        torch.manual_seed(0)
        objective(model, batch, step=step, lr=1.0, total_steps=8)
        draws.append(torch.rand(3))
    assert not torch.allclose(objective.weighter.logits, before)
    torch.manual_seed(0)
    fixed = build_objective(DistillConfig(method="msd", weighting="uniform"), teacher=teacher)
    fixed(model, batch, step=2, lr=1.0, total_steps=8)
    assert torch.equal(draws[0], torch.rand(3)) and torch.equal(draws[0], draws[1])


def test_unwrap_finds_the_model_inside_a_compiled_wrapper(setting):
    _, model, _, _ = setting

    class Compiled(torch.nn.Module):  # what torch.compile returns keeps the model as _orig_mod
        def __init__(self, inner):
            super().__init__()
            self._orig_mod = inner

    assert unwrap(model) is model and unwrap(Compiled(Compiled(model))) is model
