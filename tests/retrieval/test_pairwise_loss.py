"""The stage-2 pairwise logit loss against a direct NumPy computation."""

from __future__ import annotations

import numpy as np
import torch

from relisten_spark.retrieval.losses import pairwise_logit_loss


def _numpy_loss(z: np.ndarray, r: np.ndarray, valid: np.ndarray, margin: float) -> float:
    per_user = []
    for zu, ru, vu in zip(z, r, valid, strict=True):
        costs = [
            np.log1p(np.exp(-(zu[i] - zu[j])))
            for i in range(len(zu))
            for j in range(len(zu))
            if vu[i] and vu[j] and ru[i] > ru[j] + margin
        ]
        if costs:
            per_user.append(np.mean(costs))
    return float(np.mean(per_user)) if per_user else 0.0


def _batch() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    z = rng.normal(size=(4, 6))
    r = rng.uniform(size=(4, 6))
    valid = np.ones((4, 6), dtype=bool)
    valid[1, 4:] = False  # a shorter list
    r[2] = 0.5  # all ties: no pair, the user is left out
    return z, r, valid


def test_pairwise_loss_matches_numpy() -> None:
    z, r, valid = _batch()
    for margin in (0.0, 0.1):
        got = pairwise_logit_loss(torch.tensor(z), torch.tensor(r), torch.tensor(valid), margin)
        assert np.isclose(float(got), _numpy_loss(z, r, valid, margin), rtol=1e-10)


def test_pair_direction_rewards_the_ranker_order() -> None:
    r = torch.tensor([[0.9, 0.1]])
    valid = torch.ones((1, 2), dtype=torch.bool)
    agree = pairwise_logit_loss(torch.tensor([[2.0, -1.0]]), r, valid, 0.0)
    flipped = pairwise_logit_loss(torch.tensor([[-1.0, 2.0]]), r, valid, 0.0)
    assert np.isclose(float(agree), np.log1p(np.exp(-3.0)))
    assert float(agree) < float(flipped)
    z = torch.tensor([[0.0, 0.0]], requires_grad=True)
    pairwise_logit_loss(z, r, valid, 0.0).backward()
    assert z.grad is not None
    assert z.grad[0, 0] < 0 < z.grad[0, 1]


def test_no_pair_gives_zero_loss_with_a_gradient() -> None:
    z = torch.zeros((1, 3), requires_grad=True)
    loss = pairwise_logit_loss(z, torch.full((1, 3), 0.5), torch.ones((1, 3), dtype=torch.bool), 0.0)
    loss.backward()
    assert float(loss.detach()) == 0.0
