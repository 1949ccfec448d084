"""How far a retriever's order of a candidate list agrees with the ranker's (stage 2's measure).

For a user's list of candidates with the retriever's logits ``z`` and the ranker's scores ``r``
(probabilities, >= 0):

* ``agreement_ndcg@N`` — DCG@N of the list in the retriever's order with the ranker's scores as
  gains, over the DCG@N of the ranker's own order (1: the retriever's top N is the ranker's, in
  the ranker's order);
* ``ranker_top<N>_in_top<K>`` — the share of the ranker's top N that the retriever's top K of
  the same list holds (how much of what the ranker would pick the retriever puts first).

Both are means over the users with a non-empty list.
"""

from __future__ import annotations

import math

import torch


def metric_names(n: int, k: int) -> tuple[str, str]:
    """The two measures' metric names for ``N = n`` and ``K = k``."""
    return f"agreement_ndcg@{n}", f"ranker_top{n}_in_top{k}"


def agreement_sums(z: torch.Tensor, r: torch.Tensor, valid: torch.Tensor, n: int, k: int) -> torch.Tensor:
    """``[ndcg@n sum, top-n-in-top-k sum, users]`` of the lists ``z``, ``r``, ``valid`` ``[B, M]``
    (``valid`` marks real entries); float64, ready to all-reduce.

    >>> z = torch.tensor([[3.0, 2.0, 1.0]]); r = torch.tensor([[0.1, 0.9, 0.5]])
    >>> [round(v, 4) for v in agreement_sums(z, r, torch.ones(1, 3, dtype=torch.bool), 1, 2).tolist()]
    [0.1111, 1.0, 1.0]
    """
    width = z.shape[1]
    top_n, top_k = min(n, width), min(k, width)
    by_z = z.masked_fill(~valid, -math.inf)
    by_r = r.masked_fill(~valid, -math.inf)
    gains = r.masked_fill(~valid, 0.0).double()
    discount = 1.0 / torch.log2(torch.arange(2, top_n + 2, device=z.device, dtype=torch.float64))
    dcg = (gains.gather(1, by_z.topk(top_n, dim=1).indices) * discount).sum(1)
    ideal = (gains.topk(top_n, dim=1).values * discount).sum(1)
    ranker_top = by_r.topk(top_n, dim=1).indices
    retriever_top = by_z.topk(top_k, dim=1).indices
    inside = (ranker_top[:, :, None] == retriever_top[:, None, :]).any(-1) & valid.gather(1, ranker_top)
    size = valid.sum(1)
    has = size > 0
    ndcg = torch.where(ideal > 0, dcg / ideal.clamp(min=1e-300), torch.ones_like(dcg))
    share = inside.sum(1).double() / size.clamp(min=1, max=top_n).double()
    return torch.stack([ndcg[has].sum(), share[has].sum(), has.sum().double()])
