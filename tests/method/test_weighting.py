import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from msd_core.errors import ConfigError
from msd_core.method.losses import kd_per_example
from msd_core.method.weighting import MetaWeighter, fixed_weights

SAL = {"image": torch.tensor([2.0, -1.0, 0.0]), "text": torch.tensor([0.5, 3.0, 0.0])}
POP = {"image": 1.0, "text": 0.0}


def test_fixed_schemes_on_known_saliency():
    u = fixed_weights("uniform", SAL, None, lam=0.5)
    assert all(torch.equal(w, torch.full((3,), 0.5)) for w in u.values())
    p = fixed_weights("population", SAL, POP, lam=1.0, tau=1.0)
    e = torch.softmax(torch.tensor([1.0, 0.0]), 0) * 2
    assert p["image"][0].item() == pytest.approx(e[0].item()) and p["text"][2].item() == pytest.approx(e[1].item())
    s = fixed_weights("instance-soft", SAL, None, lam=2.0, tau=0.5)
    torch.testing.assert_close(s["image"] + s["text"], torch.full((3,), 4.0))
    assert s["image"][0] > s["text"][0] and s["image"][1] < s["text"][1]
    torch.testing.assert_close(s["image"][2], torch.tensor(2.0))  # a tie splits evenly


def test_instance_hard_puts_all_weight_on_the_argmax_modality():
    h = fixed_weights("instance-hard", SAL, None, lam=1.5)
    assert h["image"].tolist() == [3.0, 0.0, 3.0] and h["text"].tolist() == [0.0, 3.0, 0.0]


def test_bad_scheme_settings():
    with pytest.raises(ConfigError, match="unknown weighting"):
        fixed_weights("random", SAL, None)
    with pytest.raises(ConfigError, match="τ must be positive"):
        fixed_weights("instance-soft", SAL, None, tau=0)
    with pytest.raises(ConfigError, match="population saliency"):
        fixed_weights("population", SAL, None)


@pytest.mark.parametrize("scheme", ["learned", "learned-global"])
def test_learned_weights_move_toward_the_helpful_modality(scheme):
    """Toy problem: the student sees only a feature vector. The teacher's 'good' view targets
    equal the true labels; its 'bad' view targets are wrong labels. The meta loss (CE on held-out
    true labels) falls when the good auxiliary term weighs more, so ``w_good`` must grow."""
    torch.manual_seed(0)
    n, d, c = 256, 8, 3
    x = torch.randn(n, d)
    true_w = torch.randn(d, c)
    y = (x @ true_w).argmax(1)
    good_targets = F.one_hot(y, c).float() * 6
    bad_targets = F.one_hot((y + 1) % c, c).float() * 6
    student = nn.Linear(d, c)
    weighter = MetaWeighter(["good", "bad"], scheme, lam=1.0, lr=0.05)
    features = torch.randn(n, 6)
    meta_x, meta_y = torch.randn(128, d), None
    meta_y = (meta_x @ true_w).argmax(1)

    def train_loss(params, w):
        z = functional_call(student, params, (x,))
        return ((w["good"] * kd_per_example(good_targets, z, 2.0)).mean()
                + (w["bad"] * kd_per_example(bad_targets, z, 2.0)).mean())

    def meta_loss(params):
        return F.cross_entropy(functional_call(student, params, (meta_x,)), meta_y)

    opt = torch.optim.SGD(student.parameters(), lr=0.1)
    for _ in range(30):
        weighter.meta_step(student, train_loss, meta_loss, features, inner_lr=0.1)
        with torch.no_grad():
            w = weighter(features)
        opt.zero_grad()
        train_loss(dict(student.named_parameters()), w).backward()
        opt.step()
    with torch.no_grad():
        w = weighter(features)
    assert w["good"].mean() > 1.5 and w["bad"].mean() < 0.5
    torch.testing.assert_close(w["good"] + w["bad"], torch.full((n,), 2.0))  # λ·|M| in total


def test_a_longer_look_ahead_takes_that_many_sgd_steps_on_the_batch():
    """On a quadratic ``L_train(θ) = w·|θ − a|²/2`` each look-ahead step is ``θ ← θ − η·w·(θ − a)``:
    after K steps ``θ_K − a = (1 − η·w)^K (θ − a)``, and the meta loss is read there."""
    student = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        student.weight.fill_(3.0)
    weighter = MetaWeighter(["m", "n"], "learned-global", lam=1.0, lr=0.0)
    a, eta = 1.0, 0.25
    seen = []

    def train_loss(params, w):
        return w["m"].mean() * ((params["weight"] - a) ** 2).sum() / 2

    def meta_loss(params):
        seen.append(float(params["weight"].detach()))
        return (params["weight"] ** 2).sum()

    for k in (1, 3):
        weighter.meta_step(student, train_loss, meta_loss, torch.zeros(4, 1), inner_lr=eta, lookahead=k)
        assert seen[-1] == pytest.approx(a + (1 - eta * 1.0) ** k * (3.0 - a))  # w_m = λ = 1 at the start
    assert float(student.weight.detach()) == 3.0  # only a look-ahead: the student itself does not move


def test_the_entropy_bonus_pulls_the_weights_towards_uniform():
    """With a meta loss that ignores the weights, only the entropy term moves ``φ``: towards equal
    shares with ``entropy > 0``, not at all without it."""
    student = nn.Linear(2, 2)

    def train_loss(params, w):
        return sum(v.mean() for v in w.values()) * params["weight"].sum()

    def meta_loss(params):
        return params["weight"].sum() * 0.0

    gaps = {}
    for entropy in (0.0, 1.0):
        weighter = MetaWeighter(["image", "text"], "learned-global", lam=1.0, lr=0.1)
        with torch.no_grad():
            weighter.logits.copy_(torch.tensor([2.0, -2.0]))
        for _ in range(5):
            weighter.meta_step(student, train_loss, meta_loss, torch.zeros(3, 1), inner_lr=0.1, entropy=entropy)
        gaps[entropy] = float((weighter.logits[0] - weighter.logits[1]).detach())
    assert gaps[0.0] == pytest.approx(4.0)
    assert gaps[1.0] < 4.0 - 0.5
