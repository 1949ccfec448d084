"""The retriever's transformer: shared item representation, causality, padding, source context,
item bias."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from relisten_spark.retrieval.model import Retriever, RetrieverHyper

HYPER = RetrieverHyper(
    n_items=9, artists=4, genres=3, languages=2, sources=3, max_len=6, hidden=16, layers=2, heads=2, inner=32
)


@pytest.fixture
def model() -> Retriever:
    torch.manual_seed(0)
    meta = torch.tensor([[0, 0, 0]] + [[1 + i % 3, 1 + i % 2, 1] for i in range(9)])
    net = Retriever(HYPER, meta)
    with torch.no_grad():  # visible metadata embeddings (the init keeps them tiny)
        for table in (net.artist, net.genre, net.language, net.source):
            table.weight[1:] = torch.randn_like(table.weight[1:])
    return net.eval()


def _tokens(items: list[int], sources: list[int] | None = None) -> list[torch.Tensor]:
    """Token tensors ``[1, L]`` of ``items`` (0 = padding) with the metadata of the model's table."""
    item = torch.tensor([items])
    meta = torch.tensor([[0, 0, 0]] + [[1 + i % 3, 1 + i % 2, 1] for i in range(9)])[item]
    source = torch.tensor([sources]) if sources else (item > 0).long()
    return [item, meta[..., 0], meta[..., 1], meta[..., 2], source]


def test_items_sum_id_and_metadata_embeddings_shared_with_the_input_side(model) -> None:
    matrix = model.item_matrix()
    assert matrix.shape == (10, 16)
    assert torch.equal(matrix[0], torch.zeros(16))  # padding
    expected = model.item.weight[4] + model.artist.weight[1 + 3 % 3] + model.genre.weight[1 + 3 % 2]
    assert torch.allclose(matrix[4], expected + model.language.weight[1])
    # the same tables make the input token: retraining the artist table moves both sides
    with torch.no_grad():
        before = model.user_vectors(*_tokens([4]))
        model.artist.weight[1] += torch.randn(16)
        assert not torch.allclose(model.user_vectors(*_tokens([4])), before)
        assert not torch.allclose(model.item_matrix()[4], matrix[4])


def test_user_vector_ignores_left_padding_and_is_the_last_output(model) -> None:
    with torch.no_grad():
        short = model.user_vectors(*_tokens([3, 5, 7]))
        padded = model.user_vectors(*_tokens([0, 0, 0, 3, 5, 7]))
        outputs = model.encode(*_tokens([3, 5, 7]))
    assert torch.allclose(short, padded, atol=1e-6)
    assert torch.allclose(short, outputs[:, -1], atol=1e-6)


def test_user_vectors_skip_the_other_queries_and_equal_the_full_encoding(model) -> None:
    """The last block computes the last query only; a batch of mixed lengths gives the full
    encoding's last position all the same."""
    rows = [[0] * (6 - n) + [1 + (3 * n + j) % 9 for j in range(n)] for n in range(1, 7)]
    batch = [torch.cat(parts) for parts in zip(*[_tokens(r) for r in rows], strict=True)]
    with torch.no_grad():
        full = model.encode(*batch)[:, -1]
        last = model.encode(*batch, last_only=True)
        fast = model.user_vectors(*batch)
    assert last.shape == (6, 1, 16)
    assert torch.allclose(fast, full, atol=1e-6)
    assert not torch.allclose(fast[0], fast[1])


def test_attention_is_causal(model) -> None:
    with torch.no_grad():
        a = model.encode(*_tokens([3, 5, 7, 2]))
        b = model.encode(*_tokens([3, 5, 7, 9]))
    assert torch.allclose(a[:, :3], b[:, :3])
    assert not torch.allclose(a[:, 3], b[:, 3])


def test_source_context_feeds_the_input_side_only(model) -> None:
    items = model.item_matrix()
    with torch.no_grad():
        one = model.user_vectors(*_tokens([3, 5], sources=[1, 1]))
        two = model.user_vectors(*_tokens([3, 5], sources=[1, 2]))
    assert not torch.allclose(one, two)
    assert torch.equal(model.item_matrix(), items)


def test_forward_gives_outputs_and_candidate_vectors(model) -> None:
    hidden, vectors = model(*_tokens([3, 5, 7]), candidates=torch.tensor([2, 4]))
    assert hidden.shape == (1, 3, 16)
    assert torch.allclose(vectors, model.item_matrix()[[2, 4]])
    with pytest.raises(ValueError, match="over max_len"):
        model.encode(*_tokens([1] * 7))


def test_item_bias_rides_as_one_more_coordinate_of_both_vectors() -> None:
    """With ``item_bias`` an item vector ends with its bias and an output with a constant 1, so a
    score is still one dot product: ``<q, v_j> + b_j``."""
    torch.manual_seed(0)
    meta = torch.tensor([[0, 0, 0]] + [[1 + i % 3, 1 + i % 2, 1] for i in range(9)])
    net = Retriever(replace(HYPER, item_bias=True), meta).eval()
    assert net.bias is not None
    assert HYPER.width == 16
    assert net.hyper.width == 17
    assert not net.bias.weight.any()  # every item starts with the same prior
    with torch.no_grad():
        net.bias.weight[1:, 0] = torch.arange(1.0, 10.0)
        matrix, users = net.item_matrix(), net.user_vectors(*_tokens([3, 5, 7]))
        outputs, vectors = net(*_tokens([3, 5, 7]), candidates=torch.tensor([2, 4]))
    assert matrix.shape == (10, 17)
    assert outputs.shape == (1, 3, 17)
    assert vectors.shape == (2, 17)
    assert torch.equal(matrix[:, -1], torch.tensor([0.0, *range(1, 10)]))  # padding's bias stays 0
    assert torch.equal(outputs[..., -1], torch.ones(1, 3))
    assert users[0, -1] == 1.0
    plain = Retriever(HYPER, meta)
    plain.load_state_dict({k: v for k, v in net.state_dict().items() if not k.startswith("bias.")})
    with torch.no_grad():
        expected = plain.eval().user_vectors(*_tokens([3, 5, 7])) @ plain.item_matrix().T
    assert torch.allclose(users @ matrix.T, expected + matrix[:, -1], atol=1e-5)


def test_hypers_saved_before_the_bias_load_without_it() -> None:
    saved = {k: v for k, v in replace(HYPER, item_bias=True).to_dict().items() if k != "item_bias"}
    assert RetrieverHyper(**saved) == HYPER
    assert not HYPER.item_bias


def test_training_starts_the_bias_at_the_items_log_counts() -> None:
    """``tau * log(1 + count)`` per item, padding 0: the untrained model ranks by popularity; a
    model without a bias is left alone."""
    torch.manual_seed(0)
    meta = torch.tensor([[0, 0, 0]] + [[1 + i % 3, 1 + i % 2, 1] for i in range(9)])
    counts = torch.tensor([5, 0, 1, 3, 0, 7, 2, 0, 0, 40])
    net = Retriever(replace(HYPER, item_bias=True), meta)
    net.start_bias_at_popularity(counts, 0.5)
    assert net.bias is not None
    expected = torch.cat([torch.zeros(1), 0.5 * torch.log1p(counts[1:].double()).float()])
    assert torch.allclose(net.bias.weight[:, 0], expected)
    with torch.no_grad():
        top = (net.eval().user_vectors(*_tokens([3, 5, 7])) @ net.item_matrix().T)[0, 1:].argmax()
    assert int(top) + 1 == 9  # the most played item, whatever the tiny initial embeddings say
    plain = Retriever(HYPER, meta)
    before = {k: v.clone() for k, v in plain.state_dict().items()}
    plain.start_bias_at_popularity(counts, 0.5)
    assert all(torch.equal(before[k], v) for k, v in plain.state_dict().items())


def test_a_batch_of_mixed_lengths_encodes_each_row_as_if_alone(model) -> None:
    """The rows are encoded in length groups without their shared padding: every real position's
    output equals the row's own encoding, whatever the others' lengths."""
    rows = [[0] * (6 - n) + [1 + (2 * n + j) % 9 for j in range(n)] for n in (6, 1, 4, 2, 5, 3)]
    batch = [torch.cat(parts) for parts in zip(*[_tokens(r) for r in rows], strict=True)]
    with torch.no_grad():
        outputs = model.encode(*batch)
        for i, row in enumerate(rows):
            n = sum(1 for item in row if item)
            alone = model.encode(*_tokens(row[6 - n :]))[0]
            assert torch.allclose(outputs[i, 6 - n :], alone, atol=1e-6)
