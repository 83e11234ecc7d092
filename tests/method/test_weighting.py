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
