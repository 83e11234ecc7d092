"""Weights ``w_m(x) ≥ 0`` of MSD's auxiliary terms (docs/METHOD.md §7).

Every scheme is registered by name in ``WEIGHTINGS``. Under each, the weights of one example
sum to ``λ·|M|`` (§7.1), so ``uniform`` gives every modality's term ``λ``; ``τ`` is a temperature.

Fixed schemes (functions of the teacher's saliency):

- ``uniform``: ``w_m = λ``
- ``population``: ``w_m = λ·|M|·softmax_m(S/τ)``, ``S_m`` the population saliency
- ``instance-soft``: ``w_m(x) = λ·|M|·softmax_m(sal(x)/τ)``
- ``instance-hard``: ``w_m(x) = λ·|M|·1[m = argmax_m' sal_m'(x)]``

Learned schemes (``MetaWeighter``): ``learned`` — a small weight network ``g_φ`` maps each
example's features (the teacher's per-view losses and saliencies) to
``w(x) = λ·|M|·softmax(g_φ(features))``; ``learned-global`` — one logit per modality,
``w = λ·|M|·softmax(φ)``. ``φ`` is meta-learned (Ren et al. 2018; Shu et al. 2019): a one-step
look-ahead ``θ' = θ − η∇_θ L_train(θ, w_φ)`` of the student on the training batch, then a step
on ``φ`` that lowers the student's loss ``L_meta(θ')`` on a held-out meta batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from ..distributed import sum_across_ranks
from ..errors import ConfigError
from ..registries import NamedRegistry


@dataclass(frozen=True)
class Weighting:
    """A registered scheme: ``fixed(sal, population, lam, tau) -> {m: w_m}`` for the fixed ones;
    ``fixed`` is None for the meta-learned ones, whose weights come from a ``MetaWeighter``."""

    fixed: Callable | None
    doc: str
    per_example: bool = False  # reads each training example's own saliency (or features), §5.6
    population: bool = False   # reads the population saliency S (§5.5)

    @property
    def learned(self) -> bool:
        return self.fixed is None


WEIGHTINGS: NamedRegistry[Weighting] = NamedRegistry("weighting")


def register_scheme(name: str, per_example: bool = False, population: bool = False):
    """Register a fixed scheme; its docstring (with the formula) is what the pages show."""
    def deco(fn):
        WEIGHTINGS.register(name)(Weighting(fn, (fn.__doc__ or "").strip(), per_example, population))
        return fn
    return deco


META_SPLITS = ("train", "val")  # where a learned weighting's meta split comes from (§7.6)


def is_learned(name: str) -> bool:
    return WEIGHTINGS.get(name).learned


def reads_population_saliency(name: str) -> bool:
    """Whether the weighting reads the population saliency ``S`` (§5.5)."""
    return WEIGHTINGS.get(name).population


def reads_example_saliency(name: str) -> bool:
    """Whether the weighting reads each training example's saliency (the ones out-of-fold
    saliency changes, §5.6)."""
    return WEIGHTINGS.get(name).per_example


def _stack(sal: dict[str, torch.Tensor]) -> torch.Tensor:
    return torch.stack([sal[m] for m in sal], 1)  # B x |M|


@register_scheme("uniform")
def uniform(sal, population, lam, tau):
    """§7.2: ``w_m = λ`` for every modality and example."""
    return {m: torch.full_like(v, lam) for m, v in sal.items()}


@register_scheme("population", population=True)
def population(sal, population, lam, tau):
    """§7.3: ``w_m = λ·|M|·softmax_m(S/τ)``, one weight per modality from population saliency ``S``."""
    mods = list(sal)
    s = torch.tensor([population[m] for m in mods])
    w = lam * len(mods) * torch.softmax(s / tau, 0)
    return {m: torch.full_like(sal[m], w[i].item()) for i, m in enumerate(mods)}


@register_scheme("instance-soft", per_example=True)
def instance_soft(sal, population, lam, tau):
    """§7.4: ``w_m(x) = λ·|M|·softmax_m(sal(x)/τ)``."""
    w = lam * len(sal) * torch.softmax(_stack(sal) / tau, 1)
    return {m: w[:, i] for i, m in enumerate(sal)}


@register_scheme("instance-hard", per_example=True)
def instance_hard(sal, population, lam, tau):
    """§7.5: ``w_m(x) = λ·|M|·1[m = argmax_m' sal_m'(x)]``."""
    s = _stack(sal)
    hard = torch.zeros_like(s).scatter_(1, s.argmax(1, keepdim=True), 1.0)
    return {m: lam * len(sal) * hard[:, i] for i, m in enumerate(sal)}


def fixed_weights(scheme: str, sal: dict[str, torch.Tensor], population: dict[str, float] | None,
                  lam: float = 1.0, tau: float = 1.0) -> dict[str, torch.Tensor]:
    """``w_m(x)`` of a fixed scheme for a batch of per-example saliencies."""
    entry = WEIGHTINGS.get(scheme)
    if entry.learned:
        raise ConfigError(f"weighting {scheme!r} is meta-learned: its weights come from a MetaWeighter")
    if tau <= 0:
        raise ConfigError(f"the temperature τ must be positive, got {tau}")
    if entry.population and population is None:
        raise ConfigError(f"{scheme} weighting needs the population saliency S")
    return entry.fixed(sal, population, lam, tau)


WEIGHTINGS.register("learned")(Weighting(None, "§7.6: w(x) = λ·|M|·softmax(g_φ(features(x))), φ meta-learned",
                                         per_example=True))
WEIGHTINGS.register("learned-global")(Weighting(None, "§7.6: w = λ·|M|·softmax(φ), one logit per modality, "
                                                      "meta-learned"))


class MetaWeighter(nn.Module):
    """Meta-learned MSD weights (``learned`` or ``learned-global``, §7.6); see the module docstring."""

    def __init__(self, modalities: list[str], scheme: str = "learned", *, lam: float = 1.0,
                 n_features: int | None = None, hidden: int = 32, lr: float = 1e-2):
        super().__init__()
        if not is_learned(scheme):
            raise ConfigError(f"MetaWeighter takes a meta-learned weighting, not {scheme!r}")
        self.modalities, self.scheme, self.lam = list(modalities), scheme, lam
        if scheme == "learned":
            n_features = n_features or 3 * len(modalities)
            self.net = nn.Sequential(nn.Linear(n_features, hidden), nn.Tanh(), nn.Linear(hidden, len(modalities)))
            nn.init.zeros_(self.net[-1].weight)
            nn.init.zeros_(self.net[-1].bias)  # starts uniform: w_m = λ
        else:
            self.logits = nn.Parameter(torch.zeros(len(modalities)))
        self.optimizer = torch.optim.Adam(self.parameters(), lr=lr)

    def shares(self, features: torch.Tensor) -> torch.Tensor:
        """Each example's split of its budget over the modalities (``B x |M|``, rows sum to 1)."""
        if self.scheme == "learned":
            return torch.softmax(self.net(features), 1)
        return torch.softmax(self.logits, 0).expand(features.shape[0], len(self.modalities))

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{m: w_m(x)}`` for a ``B x F`` feature batch (features ignored by learned-global)."""
        w = self.lam * len(self.modalities) * self.shares(features)
        return {m: w[:, i] for i, m in enumerate(self.modalities)}

    def meta_step(self, model: nn.Module, train_loss: Callable[[dict, dict], torch.Tensor],
                  meta_loss: Callable[[dict], torch.Tensor], features: torch.Tensor, inner_lr: float,
                  *, lookahead: int = 1, entropy: float = 0.0, fraction: float = 1.0) -> float:
        """One update of ``φ``. ``train_loss(params, weights)`` is the student's MSD loss with
        parameters ``params`` (used through ``torch.func.functional_call``) and weights
        ``weights``; ``meta_loss(params)`` its loss on the held-out meta batch. The look-ahead
        takes ``lookahead`` plain SGD steps of size ``inner_lr`` on the same batch, and the meta
        objective is ``L_meta(θ') − entropy · mean_x H(shares(x))``. Returns ``L_meta(θ')``.

        Under ``torchrun`` (docs/METHOD.md §17.3) both losses are this rank's part of the global
        batch's (its share of the mean), ``fraction`` is this rank's share of the training batch
        (for the entropy term), the look-ahead's gradients are summed over the ranks inside the
        graph, and ``φ``'s gradients are summed before the Adam step: every rank takes the step one
        process with the global batch takes."""
        from torch.nn.attention import SDPBackend, sdpa_kernel

        params = {k: p for k, p in model.named_parameters() if p.requires_grad}
        # Second derivatives: the fused attention kernels have none, the math one does.
        with sdpa_kernel(SDPBackend.MATH):
            shares = self.shares(features)
            weights = {m: self.lam * len(self.modalities) * shares[:, i] for i, m in enumerate(self.modalities)}
            ahead = params
            for _ in range(lookahead):
                loss = train_loss(ahead, weights)
                grads = torch.autograd.grad(loss, list(ahead.values()), create_graph=True, allow_unused=True)
                used = [g for g in grads if g is not None]
                summed = iter(sum_across_ranks(used, differentiable=True))
                grads = [None if g is None else next(summed) for g in grads]
                ahead = {k: p if g is None else p - inner_lr * g for (k, p), g in zip(ahead.items(), grads)}
            meta = meta_loss(ahead)
            objective = meta
            if entropy:
                negentropy = (shares * shares.clamp_min(1e-12).log()).sum(1).mean()
                objective = meta + entropy * (negentropy if fraction == 1.0 else negentropy * fraction)
            self.optimizer.zero_grad(set_to_none=True)
            objective.backward(inputs=list(self.parameters()))
        stepped = [p for p in self.parameters() if p.grad is not None]
        for p, g in zip(stepped, sum_across_ranks([p.grad for p in stepped])):
            p.grad = g
        self.optimizer.step()
        return float(meta.detach())


def weight_features(teacher_view_losses: dict[str, torch.Tensor], sal: dict[str, torch.Tensor],
                    full_loss: torch.Tensor) -> torch.Tensor:
    """Per-example inputs of ``g_φ``: for each modality the teacher's loss on its single view,
    its saliency, and the teacher's full-input loss (``B x 3|M|``)."""
    cols = []
    for m in sal:
        cols += [teacher_view_losses[m], sal[m], full_loss]
    return torch.stack(cols, 1).float()
