"""Next-item losses of the retriever (``retriever.loss``).

Every loss scores the query vectors ``q`` (the transformer's output at each position that has a
next item, ``[N, d]``) against item vectors by dot product divided by the temperature ``tau``:
``z_j = <q, v_j> / tau``. Item index 0 is padding and never a candidate.

* ``full`` — softmax cross-entropy over the whole catalogue (items 1..n), the reference;
* ``sampled`` — softmax over the positive and the sampled negatives, no correction;
* ``sampled_logq`` — Yi et al. (RecSys 2019): every logit, the positive's included, minus
  ``log Q(j)``;
* ``sampled_logq_corrected`` — "Correcting the LogQ Correction" (RecSys 2025): the positive is
  always present, so it is neither corrected nor part of the sampled denominator; a negative
  ``j`` is drawn from Q restricted to ``j != pos``, ``Q'(j) = Q(j) / (1 - Q(pos))``, and
  corrected by ``log Q'(j)``; the row's loss ``-z_pos + log sum_j exp(z_j - log Q'(j))`` is
  weighted by the stop-gradient probability of misclassification ``1 - p_pos``, with
  ``p_pos = e^{z_pos} / (e^{z_pos} + (1/M) sum_j e^{z_j} / Q'(j))`` (the importance-sampled full
  softmax, ``M`` the row's draws). Its gradient is ``(1 - p_pos)`` times the self-normalised
  estimate of the full softmax's gradient restricted to the negatives.

The negatives (:func:`draw_negatives`) are mixed: the batch's own positives (in-batch
negatives, draws from the training stream's item frequencies ``p``; all of them, or
``retriever.in_batch_negatives`` drawn from them) and
``retriever.uniform_negatives`` uniform draws over items 1..n, so the proposal is the mixture
``Q(j) = (N p(j) + M_u / n) / (N + M_u)`` (:func:`log_q`, ``N`` in-batch draws). A negative drawn
``c`` times counts ``c`` times (its logit plus ``log c``), exactly as ``c`` duplicate columns
would. Accidental hits (a negative equal to the row's positive) are masked. Losses are means
over the rows.

Stage 2 (``finetune-retriever``) adds :func:`pairwise_logit_loss`: over a user's candidate list
scored by the ranker, every pair ``(i, j)`` with ranker scores ``r_i > r_j + margin`` costs
``log(1 + exp(-(z_i - z_j)))`` on the retriever's logits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch.nn import functional as nnf

LossName = Literal["full", "sampled", "sampled_logq", "sampled_logq_corrected"]
LOSSES: tuple[LossName, ...] = ("full", "sampled", "sampled_logq", "sampled_logq_corrected")


@dataclass(frozen=True)
class Negatives:
    """The distinct negatives of a batch: ``items [U]`` (sorted), ``counts [U]`` (draws of each,
    float), ``log_q [U]`` (log proposal probability of one draw) and the number of in-batch and
    uniform draws (the mixture's weights)."""

    items: torch.Tensor
    counts: torch.Tensor
    log_q: torch.Tensor
    in_batch: int
    uniform: int


def log_q(items: torch.Tensor, frequency: torch.Tensor, in_batch: int, uniform: int) -> torch.Tensor:
    """``log Q(items)`` of the mixture proposal: ``in_batch`` draws from ``frequency`` (``[n + 1]``,
    summing to 1, row 0 = padding) and ``uniform`` draws uniform over items 1..n.

    >>> f = torch.tensor([0.0, 0.75, 0.25])
    >>> log_q(torch.tensor([1, 2]), f, 2, 2).exp().tolist()
    [0.625, 0.375]
    """
    n = frequency.shape[0] - 1
    mixed = (in_batch * frequency[items] + uniform / n) / (in_batch + uniform)
    return torch.log(mixed)


def draw_negatives(
    positives: torch.Tensor,
    n_items: int,
    uniform: int,
    frequency: torch.Tensor,
    generator: torch.Generator,
    in_batch: int | None = None,
) -> Negatives:
    """In-batch negatives and ``uniform`` draws over 1..n, with counts and log Q.

    ``positives`` ``[N]`` are item indices >= 1. The in-batch draws are all ``N`` of them, or, when
    ``in_batch`` is below ``N``, that many drawn from them with replacement (each is still a draw
    from the stream's frequencies; the cap bounds the ``[N, U]`` logits of a long-sequence batch).
    Draws use ``generator`` (on the CPU), so a seeded generator gives the same negatives every run.
    """
    drawn = torch.randint(1, n_items + 1, (uniform,), generator=generator).to(positives.device)
    if in_batch is not None and in_batch < len(positives):
        picked = torch.randint(0, len(positives), (in_batch,), generator=generator)
        positives = positives[picked.to(positives.device)]
    items, counts = torch.unique(torch.cat([positives, drawn]), return_counts=True)
    k = len(positives)
    return Negatives(items, counts.float(), log_q(items, frequency, k, uniform), k, uniform)


@dataclass(frozen=True)
class Heard:
    """Sparse ``[N, C]`` mask of the (position, candidate) pairs whose candidate the position's user
    already heard: row indices ``rows`` and candidate columns ``cols`` (both ``[H]``)."""

    rows: torch.Tensor
    cols: torch.Tensor


def heard_pairs(inputs: torch.Tensor, candidates: torch.Tensor) -> Heard:
    """The heard pairs of the ``N`` predicted positions of the input item rows ``inputs`` ``[b, L]``
    (the real ones, ``inputs > 0``, row-major): position ``(i, t)`` heard every item of
    ``inputs[i, :t + 1]``; columns index ``candidates`` ``[C]`` (sorted, distinct); items not
    among them are left out.

    >>> h = heard_pairs(torch.tensor([[0, 3, 1]]), torch.tensor([1, 2, 3]))
    >>> h.rows.tolist(), h.cols.tolist()
    ([0, 1, 1], [2, 2, 0])
    """
    b, length = inputs.shape
    valid = inputs > 0
    at = torch.searchsorted(candidates, inputs.contiguous()).clamp(max=len(candidates) - 1)
    found = (candidates[at] == inputs) & valid
    position = torch.cumsum(valid.flatten(), 0).view(b, length) - 1  # row index of (i, t) among N
    earlier = torch.ones(length, length, dtype=torch.bool, device=inputs.device).tril()  # [t, t'] t' <= t
    i, t, heard_at = (valid[:, :, None] & found[:, None, :] & earlier).nonzero(as_tuple=True)
    return Heard(position[i, t], at[i, heard_at])


def full_softmax(
    q: torch.Tensor, positives: torch.Tensor, items: torch.Tensor, tau: float, heard: Heard | None = None
) -> torch.Tensor:
    """Cross-entropy of ``positives`` ``[N]`` over every item: ``items`` ``[n + 1, d]`` (row 0
    padding); ``heard`` (columns over items 0..n) leaves those items out of a row's softmax,
    its positive excepted."""
    logits = q @ items[1:].T / tau
    if heard is not None:
        keep = heard.cols != positives[heard.rows]
        logits = logits.index_put((heard.rows[keep], heard.cols[keep] - 1), logits.new_tensor(-math.inf))
    return nnf.cross_entropy(logits, positives - 1)


def sampled_softmax(
    kind: LossName,
    q: torch.Tensor,
    positives: torch.Tensor,
    positive_vectors: torch.Tensor,
    positive_log_q: torch.Tensor,
    negatives: Negatives,
    negative_vectors: torch.Tensor,
    tau: float,
    heard: Heard | None = None,
) -> torch.Tensor:
    """The sampled loss ``kind`` of ``positives`` ``[N]`` (vectors ``[N, d]``, ``log Q`` ``[N]``)
    against ``negatives`` (vectors ``[U, d]``); see the module doc for each kind. ``heard``
    (columns over ``negatives.items``) masks those negatives as accidental hits are."""
    z_pos = (q * positive_vectors).sum(-1) / tau
    z_neg = q @ negative_vectors.T / tau + torch.log(negatives.counts)
    hit = positives[:, None] == negatives.items[None, :]
    if heard is not None:
        hit[heard.rows, heard.cols] = True
    if kind == "sampled_logq_corrected":
        return _corrected(z_pos, z_neg, hit, positive_log_q, negatives)
    if kind == "sampled_logq":
        z_pos = z_pos - positive_log_q
        z_neg = z_neg - negatives.log_q
    elif kind != "sampled":
        raise ValueError(f"not a sampled loss: {kind}")
    z_neg = z_neg.masked_fill(hit, -math.inf)
    return (torch.logsumexp(torch.cat([z_pos[:, None], z_neg], 1), 1) - z_pos).mean()


def _corrected(
    z_pos: torch.Tensor,
    z_neg: torch.Tensor,
    hit: torch.Tensor,
    positive_log_q: torch.Tensor,
    negatives: Negatives,
) -> torch.Tensor:
    """``sampled_logq_corrected`` from the counted negative logits ``z_neg`` ``[N, U]``."""
    log_rest = torch.log1p(-positive_log_q.exp())  # log(1 - Q(pos))
    z_neg = (z_neg - negatives.log_q[None, :] + log_rest[:, None]).masked_fill(hit, -math.inf)
    draws = (negatives.counts[None, :] * ~hit).sum(1)
    has = draws > 0
    lse = torch.logsumexp(z_neg.masked_fill(~has[:, None], 0.0), 1)  # finite (and NaN-free grads)
    rows = torch.where(has, lse - z_pos, torch.zeros_like(z_pos))
    log_rest_mass = lse - torch.log(draws.clamp(min=1))  # log of the sampled estimate of sum_{j != pos} e^z
    weight = torch.where(has, torch.sigmoid(log_rest_mass - z_pos), torch.zeros_like(z_pos)).detach()
    return (weight * rows).mean()


def next_item_loss(
    kind: LossName,
    q: torch.Tensor,
    positives: torch.Tensor,
    candidates: torch.Tensor,
    vectors: torch.Tensor,
    negatives: Negatives | None,
    frequency: torch.Tensor,
    tau: float,
    inputs: torch.Tensor | None = None,
) -> torch.Tensor:
    """The loss ``kind`` of queries ``q`` ``[N, d]`` with next items ``positives`` ``[N]``.

    ``candidates`` ``[C]`` (sorted, distinct) are the items whose ``vectors`` ``[C, d]`` the model
    computed: every item 0..n for ``full``, else at least the positives and ``negatives.items``
    (:func:`candidate_items`). With the input item rows ``inputs`` ``[b, L]`` (``q`` are their
    real positions, row-major), the items a position already heard are no negatives of it
    (:func:`heard_pairs`): the ranking they learn for leaves heard items out.
    """
    if kind == "full":
        heard = None if inputs is None else heard_pairs(inputs, candidates)
        return full_softmax(q, positives, vectors, tau, heard)
    if negatives is None:
        raise ValueError(f"{kind} needs negatives")
    at = torch.searchsorted(candidates, positives)
    negative_vectors = vectors[torch.searchsorted(candidates, negatives.items)]
    pos_log_q = log_q(positives, frequency, negatives.in_batch, negatives.uniform)
    heard = None if inputs is None else heard_pairs(inputs, negatives.items)
    return sampled_softmax(
        kind, q, positives, vectors[at], pos_log_q, negatives, negative_vectors, tau, heard
    )


def candidate_items(positives: torch.Tensor, negatives: Negatives, *more: torch.Tensor) -> torch.Tensor:
    """The sorted distinct items whose vectors a sampled step needs: ``positives``, the negatives
    and any ``more`` item indices."""
    return torch.unique(torch.cat([positives, negatives.items, *more]))


def pairwise_logit_loss(z: torch.Tensor, r: torch.Tensor, valid: torch.Tensor, margin: float) -> torch.Tensor:
    """Pairwise logit loss of the retriever's logits ``z`` ``[B, M]`` against the ranker's scores
    ``r`` ``[B, M]`` (``valid`` ``[B, M]`` marks real list entries): per user the mean of
    ``log(1 + exp(-(z_i - z_j)))`` over the pairs with ``r_i > r_j + margin``, then the mean
    over the users that have a pair (0 when none has)."""
    pairs = (r[:, :, None] - r[:, None, :] > margin) & valid[:, :, None] & valid[:, None, :]
    cost = nnf.softplus(z[:, None, :] - z[:, :, None])  # log(1 + exp(-(z_i - z_j))) at [b, i, j]
    counts = pairs.sum((1, 2))
    has = counts > 0
    if not bool(has.any()):
        return z.sum() * 0.0
    per_user = torch.where(pairs, cost, torch.zeros_like(cost)).sum((1, 2))
    return (per_user[has] / counts[has]).mean()
