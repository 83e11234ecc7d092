"""KD and MSD against hand-written references on fixed logits."""

import math

import torch

from msd_core.method.losses import ce_per_example, kd_loss, kd_per_example, msd_loss

T_LOGITS = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]])
S_LOGITS = torch.tensor([[1.0, 1.0, 0.0], [-0.5, 0.0, 2.0]])
Y = torch.tensor([0, 2])


def reference_kd(a, b, T):
    """T² · Σ_c p_c log(p_c / q_c), p = softmax(a/T), q = softmax(b/T), written out by hand."""
    out = []
    for ra, rb in zip(a.tolist(), b.tolist()):
        ea = [math.exp(x / T) for x in ra]
        eb = [math.exp(x / T) for x in rb]
        p = [x / sum(ea) for x in ea]
        q = [x / sum(eb) for x in eb]
        out.append(T * T * sum(pi * math.log(pi / qi) for pi, qi in zip(p, q)))
    return torch.tensor(out)


def test_kd_matches_the_hand_written_formula():
    for T in (1.0, 2.0, 4.0):
        torch.testing.assert_close(kd_per_example(T_LOGITS, S_LOGITS, T), reference_kd(T_LOGITS, S_LOGITS, T))
    assert kd_per_example(T_LOGITS, T_LOGITS, 3.0).abs().max() < 1e-6


def test_multi_label_kd_is_mean_binary_kl_times_t_squared():
    a, b, T = torch.tensor([[1.0, -2.0]]), torch.tensor([[0.0, 1.0]]), 2.0
    expected = 0.0
    for x, z in zip(a[0].tolist(), b[0].tolist()):
        p, q = 1 / (1 + math.exp(-x / T)), 1 / (1 + math.exp(-z / T))
        expected += p * math.log(p / q) + (1 - p) * math.log((1 - p) / (1 - q))
    got = kd_per_example(a, b, T, task="multi-label")
    torch.testing.assert_close(got, torch.tensor([T * T * expected / 2]))


def test_kd_loss_mixes_ce_and_kd_by_alpha():
    out = kd_loss(S_LOGITS, T_LOGITS, Y, alpha=0.3, T=2.0)
    ce = -torch.log_softmax(S_LOGITS, -1)[torch.arange(2), Y].mean()
    kd = reference_kd(T_LOGITS, S_LOGITS, 2.0).mean()
    torch.testing.assert_close(out["loss"], 0.7 * ce + 0.3 * kd)
    torch.testing.assert_close(out["ce"], ce)


def test_msd_with_zero_weights_is_kd_exactly_and_adds_weighted_terms():
    views_s = {"image": S_LOGITS * 0.5, "text": S_LOGITS.flip(-1)}
    views_t = {"image": T_LOGITS.flip(-1), "text": T_LOGITS * 2}
    zero = {m: torch.zeros(2) for m in views_s}
    kd = kd_loss(S_LOGITS, T_LOGITS, Y, alpha=0.5, T=2.0)
    msd0 = msd_loss(S_LOGITS, T_LOGITS, Y, views_s, views_t, zero, alpha=0.5, T=2.0)
    assert torch.equal(msd0["loss"], kd["loss"])
    w = {"image": torch.tensor([1.0, 0.0]), "text": torch.tensor([0.5, 2.0])}
    msd = msd_loss(S_LOGITS, T_LOGITS, Y, views_s, views_t, w, alpha=0.5, T=2.0)
    extra = sum((w[m] * reference_kd(views_t[m], views_s[m], 2.0)).mean() for m in w)
    torch.testing.assert_close(msd["loss"], kd["loss"] + extra)
    torch.testing.assert_close(msd["kd:image"], (w["image"] * reference_kd(views_t["image"], views_s["image"], 2.0)).mean())


def test_soft_target_ce():
    z = torch.tensor([[0.0, 2.0]])
    y = torch.tensor([[0.3, 1.0]])
    exp = -(0.3 * math.log(0.5) + 0.7 * math.log(0.5) + math.log(1 / (1 + math.exp(-2)))) / 2
    torch.testing.assert_close(ce_per_example(z, y, "soft"), torch.tensor([exp]))
