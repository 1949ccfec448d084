"""The retriever's losses against a direct NumPy computation on a tiny batch.

The reference treats every draw as its own column (duplicates included), the torch code counts
distinct negatives; agreeing proves the counting, the masks and each correction.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from relisten_spark.retrieval import losses

N_ITEMS, D, TAU = 7, 4, 0.5


@pytest.fixture
def batch():
    """Queries ``[5, d]``, positives with a repeat, item vectors ``[n + 1, d]``, frequencies and
    uniform draws that include an accidental hit (item 3 is row 1's positive) and a repeat."""
    rng = np.random.default_rng(3)
    q = rng.normal(size=(5, D))
    vectors = rng.normal(size=(N_ITEMS + 1, D))
    vectors[0] = 0
    positives = np.array([2, 3, 2, 5, 7])
    counts = np.array([0, 4, 6, 1, 3, 2, 1, 5], dtype=float)
    uniform = np.array([3, 6, 6, 1])
    return q, vectors, positives, counts / counts.sum(), uniform


def _q(freq: np.ndarray, in_batch: int, uniform: int) -> np.ndarray:
    return (in_batch * freq + uniform / N_ITEMS) / (in_batch + uniform)


def _reference(kind: str, q, vectors, positives, freq, uniform, in_batch=None, heard=None) -> float:
    """Row by row, one column per draw: in-batch draws (the batch's positives unless given), then
    the uniform ones; ``heard`` (a set per row) leaves those items out of the row's negatives."""
    in_batch = positives if in_batch is None else in_batch
    draws = np.concatenate([in_batch, uniform])
    big_q = _q(freq, len(in_batch), len(uniform))
    total = 0.0
    for i, pos in enumerate(positives):
        z = vectors @ q[i] / TAU
        negs = [j for j in draws if j != pos and j not in (heard[i] if heard else ())]  # hits masked
        if kind == "sampled":
            logits = [z[pos]] + [z[j] for j in negs]
            total += -z[pos] + np.log(np.sum(np.exp(logits)))
        elif kind == "sampled_logq":
            logits = [z[pos] - np.log(big_q[pos])] + [z[j] - np.log(big_q[j]) for j in negs]
            total += -(z[pos] - np.log(big_q[pos])) + np.log(np.sum(np.exp(logits)))
        else:  # corrected: Q'(j) = Q(j) / (1 - Q(pos)), positive alone in the numerator
            q_rest = np.array([big_q[j] / (1 - big_q[pos]) for j in negs])
            neg = np.array([z[j] for j in negs]) - np.log(q_rest)
            rest = np.mean(np.exp(neg))  # importance-sampled sum over j != pos of e^{z_j}
            weight = rest / (np.exp(z[pos]) + rest)  # 1 - p(pos)
            total += weight * (-z[pos] + np.log(np.sum(np.exp(neg))))
    return total / len(positives)


# two input rows whose real positions (row-major) are the batch's five: position (i, t) heard
# inputs[i, :t + 1]; the fourth heard its own positive (5), a repeat listen
HEARD_INPUTS = torch.tensor([[0, 6, 1], [4, 5, 2]])
HEARD = [{6}, {6, 1}, {4}, {4, 5}, {4, 5, 2}]


def _torch_loss(kind: str, q, vectors, positives, freq, uniform, inputs=None) -> float:
    pos = torch.tensor(positives)
    frequency = torch.tensor(freq)
    drawn = torch.cat([pos, torch.tensor(uniform)])
    items, counts = torch.unique(drawn, return_counts=True)
    neg = losses.Negatives(
        items, counts.double(), losses.log_q(items, frequency, len(pos), len(uniform)), len(pos), len(uniform)
    )
    vec = torch.tensor(vectors)
    out = losses.next_item_loss(kind, torch.tensor(q), pos, items, vec[items], neg, frequency, TAU, inputs)  # type: ignore[arg-type]
    return float(out)


@pytest.mark.parametrize("kind", ["sampled", "sampled_logq", "sampled_logq_corrected"])
def test_sampled_losses_match_numpy(batch, kind) -> None:
    assert _torch_loss(kind, *batch) == pytest.approx(_reference(kind, *batch), rel=1e-9)


@pytest.mark.parametrize("kind", ["sampled", "sampled_logq", "sampled_logq_corrected"])
def test_heard_items_are_no_negatives(batch, kind) -> None:
    """Items 6, 1, 4 and 2 are drawn and heard by some positions: masked there, as accidental hits."""
    got = _torch_loss(kind, *batch, inputs=HEARD_INPUTS)
    assert got == pytest.approx(_reference(kind, *batch, heard=HEARD), rel=1e-9)
    assert got != pytest.approx(_torch_loss(kind, *batch), rel=1e-6)


def test_full_softmax_leaves_heard_items_out_but_the_positive(batch) -> None:
    q, vectors, positives, _, _ = batch
    expected = 0.0
    for i, pos in enumerate(positives):
        z = vectors[1:] @ q[i] / TAU
        kept = [j for j in range(1, N_ITEMS + 1) if j == pos or j not in HEARD[i]]
        expected += np.log(np.exp(z[np.array(kept) - 1]).sum()) - z[pos - 1]
    items = torch.arange(N_ITEMS + 1)
    pos, vec = torch.tensor(positives), torch.tensor(vectors)
    got = losses.next_item_loss(
        "full", torch.tensor(q), pos, items, vec, None, torch.ones(1), TAU, HEARD_INPUTS
    )
    assert float(got) == pytest.approx(expected / len(positives), rel=1e-12)


def test_heard_pairs_list_every_earlier_input_of_each_position() -> None:
    gen = torch.Generator().manual_seed(5)
    inputs = torch.randint(0, 9, (4, 6), generator=gen)
    inputs[0, :2] = 0  # left padding
    candidates = torch.tensor([1, 3, 4, 8])
    heard = losses.heard_pairs(inputs, candidates)
    expected = set()
    for n, (i, t) in enumerate((inputs > 0).nonzero().tolist()):
        for item in inputs[i, : t + 1].tolist():
            if item in candidates.tolist():
                expected.add((n, candidates.tolist().index(item)))
    got = list(zip(heard.rows.tolist(), heard.cols.tolist(), strict=True))
    assert expected
    assert set(got) == expected


def test_full_softmax_matches_numpy(batch) -> None:
    q, vectors, positives, _, _ = batch
    logits = q @ vectors[1:].T / TAU
    expected = np.mean(np.log(np.exp(logits).sum(1)) - logits[np.arange(5), positives - 1])
    got = losses.full_softmax(torch.tensor(q), torch.tensor(positives), torch.tensor(vectors), TAU)
    assert float(got) == pytest.approx(expected, rel=1e-12)


def test_sampled_logq_over_the_whole_catalogue_is_the_full_softmax(batch) -> None:
    """Every item once as a negative with a uniform Q: the correction is a constant, the positive
    is masked among the negatives, so the sampled loss is the full softmax exactly."""
    q, vectors, positives, _, _ = batch
    q_t, pos, vec = torch.tensor(q), torch.tensor(positives), torch.tensor(vectors)
    items = torch.arange(1, N_ITEMS + 1)
    uniform_q = torch.full((N_ITEMS,), -np.log(N_ITEMS), dtype=torch.float64)
    neg = losses.Negatives(items, torch.ones(N_ITEMS, dtype=torch.float64), uniform_q, 0, N_ITEMS)
    sampled = losses.sampled_softmax(
        "sampled_logq", q_t, pos, vec[pos], uniform_q[pos - 1], neg, vec[items], TAU
    )
    assert float(sampled) == pytest.approx(float(losses.full_softmax(q_t, pos, vec, TAU)), rel=1e-12)


@pytest.mark.parametrize("kind", ["sampled", "sampled_logq", "sampled_logq_corrected"])
def test_capped_in_batch_negatives_match_numpy(batch, kind) -> None:
    """Two in-batch draws (item 5, and 2 twice would do too): positives 3 and 7 are among neither
    the in-batch nor the uniform draws, so their vectors come from the candidates alone."""
    q, vectors, positives, freq, _ = batch
    uniform, in_batch = np.array([6, 6, 1]), np.array([5, 2])
    pos, frequency = torch.tensor(positives), torch.tensor(freq)
    items, counts = torch.unique(torch.tensor(np.concatenate([in_batch, uniform])), return_counts=True)
    neg = losses.Negatives(items, counts.double(), losses.log_q(items, frequency, 2, 3), 2, 3)
    candidates = losses.candidate_items(pos, neg)
    assert not {3, 7} & set(items.tolist())
    assert {3, 7} <= set(candidates.tolist())
    vec = torch.tensor(vectors)
    got = losses.next_item_loss(kind, torch.tensor(q), pos, candidates, vec[candidates], neg, frequency, TAU)  # type: ignore[arg-type]
    expected = _reference(kind, q, vectors, positives, freq, uniform, in_batch)
    assert float(got) == pytest.approx(expected, rel=1e-9)


def test_draw_negatives_caps_the_in_batch_draws() -> None:
    """``in_batch`` below the batch's positions: that many seeded draws among the positives, Q's
    in-batch weight is the cap; at or above the positions every positive is drawn once."""
    freq = torch.tensor([0.0, 0.5, 0.25, 0.25, 0.0, 0.0])
    pos = torch.tensor([1, 1, 3, 2, 3, 1])
    capped = losses.draw_negatives(pos, 5, 4, freq, torch.Generator().manual_seed(2), in_batch=3)
    again = losses.draw_negatives(pos, 5, 4, freq, torch.Generator().manual_seed(2), in_batch=3)
    assert torch.equal(capped.items, again.items)
    assert torch.equal(capped.counts, again.counts)
    assert (capped.in_batch, capped.uniform, float(capped.counts.sum())) == (3, 4, 7.0)
    assert torch.allclose(capped.log_q.exp(), (3 * freq[capped.items] + 4 / 5) / 7)
    whole = losses.draw_negatives(pos, 5, 4, freq, torch.Generator().manual_seed(2), in_batch=6)
    assert (whole.in_batch, float(whole.counts.sum())) == (6, 10.0)
    assert {1, 2, 3} <= set(whole.items.tolist())


def test_draw_negatives_mixes_in_batch_and_seeded_uniform_draws() -> None:
    freq = torch.tensor([0.0, 0.5, 0.25, 0.25, 0.0, 0.0])
    pos = torch.tensor([1, 1, 3])
    a = losses.draw_negatives(pos, 5, 6, freq, torch.Generator().manual_seed(1))
    b = losses.draw_negatives(pos, 5, 6, freq, torch.Generator().manual_seed(1))
    assert torch.equal(a.items, b.items)
    assert torch.equal(a.counts, b.counts)
    assert (a.in_batch, a.uniform, float(a.counts.sum())) == (3, 6, 9.0)
    assert 0 not in a.items.tolist()
    assert {1, 3} <= set(a.items.tolist())
    expected = (3 * freq[a.items] + 6 / 5) / 9
    assert torch.allclose(a.log_q.exp(), expected)


def test_corrected_loss_weights_by_misclassification() -> None:
    """A confidently right row (positive far above the negatives) weighs almost nothing; a wrong one
    almost fully; a row whose only negatives are accidental hits contributes 0."""
    vectors = torch.tensor([[0.0, 0.0], [10.0, 0.0], [-10.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    q = torch.tensor([[1.0, 0.0], [-1.0, 0.0]], dtype=torch.float64)
    freq = torch.tensor([0.0, 0.4, 0.4, 0.2], dtype=torch.float64)
    for positive, expected_weight in ((1, 0.0), (2, 1.0)):
        pos = torch.tensor([positive, positive])
        items = torch.tensor([1, 2, 3])
        neg = losses.Negatives(
            items, torch.ones(3, dtype=torch.float64), losses.log_q(items, freq, 2, 1), 2, 1
        )
        value = losses.next_item_loss(
            "sampled_logq_corrected", q[:1], pos[:1], items, vectors[items], neg, freq, 1.0
        )
        z, big_q = vectors @ q[0], (2 * freq + 1 / 3) / 3
        negs = [j for j in (1, 2, 3) if j != positive]
        row = -z[positive] + torch.logsumexp(z[negs] - torch.log(big_q[negs] / (1 - big_q[positive])), 0)
        assert float(value) == pytest.approx(expected_weight * float(row), abs=1e-3)
    only_hit = losses.Negatives(torch.tensor([1]), torch.ones(1, dtype=torch.float64), torch.zeros(1), 1, 0)
    zero = losses.next_item_loss(
        "sampled_logq_corrected",
        q[:1],
        torch.tensor([1]),
        torch.tensor([1]),
        vectors[[1]],
        only_hit,
        freq,
        1.0,
    )
    assert float(zero) == 0.0
