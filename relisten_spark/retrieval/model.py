"""The retriever: a SASRec-style causal transformer over a user's event sequence.

* An item is the sum of its id, artist, genre and language embeddings (:meth:`Retriever.items`),
  the same tables on the input side and the output side, so a rarely played song borrows
  from its artist and genre. The item table (artist, genre, language per item index) is a
  buffer of the model, so the output side needs only item indices.
* An input token is its item's representation plus the event's source context embedding
  (input side only) and a learned position embedding; pre-LayerNorm blocks of causal
  self-attention and a feed-forward layer follow, then a final LayerNorm.
* The user is the output at the last position; scores are dot products with the items.
* With ``item_bias`` an item also has a learned scalar bias, its popularity prior: item vectors
  carry it as one more coordinate and the transformer's outputs a constant 1 there, so a score
  stays one dot product (``<q, v_j> + b_j``) for every consumer of the vectors (the losses,
  the blocked top-K). Without it a popular item can only stand out by its embedding's norm.
  Training starts the bias at the item's log count (:meth:`Retriever.start_bias_at_popularity`).

Index 0 is padding for every token kind (and "unknown" for the metadata). Sequences are
LEFT-padded; positions are counted from the right end (the last event always has position
``max_len - 1``) and a query never attends to padding, so a sequence's outputs do not depend on
how much padding its batch carries.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as nnf


@dataclass(frozen=True)
class RetrieverHyper:
    """The architecture: vocabulary sizes (padding 0 included) and the transformer's shape."""

    n_items: int  # item indices 1..n_items (the embedding has n_items + 1 rows)
    artists: int
    genres: int
    languages: int
    sources: int
    max_len: int
    hidden: int = 64
    layers: int = 2
    heads: int = 2
    inner: int = 256
    dropout: float = 0.2
    item_bias: bool = False  # False for versions saved before the bias existed

    @property
    def width(self) -> int:
        """Length of the user and item vectors: ``hidden``, plus 1 for the bias coordinate."""
        return self.hidden + int(self.item_bias)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Block(nn.Module):
    """Pre-LayerNorm block: ``x + attn(LN(x))``, then ``x + ffn(LN(x))``."""

    def __init__(self, hidden: int, heads: int, inner: int, dropout: float) -> None:
        super().__init__()
        if hidden % heads:
            raise ValueError(f"retriever.hidden ({hidden}) must divide by retriever.heads ({heads})")
        self.heads, self.dropout = heads, dropout
        self.norm1, self.norm2 = nn.LayerNorm(hidden), nn.LayerNorm(hidden)
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.out = nn.Linear(hidden, hidden)
        self.ffn = nn.Sequential(
            nn.Linear(hidden, inner), nn.GELU(), nn.Dropout(dropout), nn.Linear(inner, hidden)
        )
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor, last_only: bool = False) -> torch.Tensor:
        """``x`` ``[B, L, d]``; ``allowed`` ``[B, 1, L, L]`` (True = the query may attend the key).
        Returns ``[B, L, d]``, or with ``last_only`` the last position's output ``[B, 1, d]`` (the
        other queries skipped)."""
        b, length, d = x.shape
        q, k, v = (
            self.qkv(self.norm1(x)).view(b, length, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        )
        if last_only:
            q, allowed, x = q[:, :, -1:], allowed[:, :, -1:], x[:, -1:]
        drop = self.dropout if self.training else 0.0
        attended = nnf.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=drop)
        x = x + self.drop(self.out(attended.transpose(1, 2).reshape(b, x.shape[1], d)))
        return x + self.drop(self.ffn(self.norm2(x)))


class Retriever(nn.Module):
    """Causal transformer retriever (module doc). ``item_meta`` ``[n_items + 1, 3]``: artist, genre,
    language index of every item index (row 0 = padding)."""

    item_meta: torch.Tensor  # a buffer

    def __init__(self, hyper: RetrieverHyper, item_meta: torch.Tensor) -> None:
        super().__init__()
        if tuple(item_meta.shape) != (hyper.n_items + 1, 3):
            raise ValueError(f"item_meta must be [{hyper.n_items + 1}, 3], got {list(item_meta.shape)}")
        self.hyper = hyper
        d = hyper.hidden
        self.item = nn.Embedding(hyper.n_items + 1, d, padding_idx=0)
        self.artist = nn.Embedding(hyper.artists, d, padding_idx=0)
        self.genre = nn.Embedding(hyper.genres, d, padding_idx=0)
        self.language = nn.Embedding(hyper.languages, d, padding_idx=0)
        self.source = nn.Embedding(hyper.sources, d, padding_idx=0)
        self.position = nn.Embedding(hyper.max_len, d)
        self.bias = nn.Embedding(hyper.n_items + 1, 1, padding_idx=0) if hyper.item_bias else None
        self.blocks = nn.ModuleList(
            Block(d, hyper.heads, hyper.inner, hyper.dropout) for _ in range(hyper.layers)
        )
        self.norm = nn.LayerNorm(d)
        self.drop = nn.Dropout(hyper.dropout)
        self.register_buffer("item_meta", item_meta.long())
        self.apply(_init)
        if self.bias is not None:
            nn.init.zeros_(self.bias.weight)  # every item starts with the same prior

    def start_bias_at_popularity(self, counts: torch.Tensor, temperature: float) -> None:
        """Set every item's bias to ``temperature * log(1 + count)`` (``counts`` ``[n_items + 1]``,
        the item's occurrences among the training targets; padding stays 0), so the untrained
        model ranks by popularity and training learns the user's taste on top of it (a bias
        started at 0 moves by about the learning rate per step: far too few steps to reach the
        log-counts' range). A model without a bias is left as it is."""
        if self.bias is not None:
            with torch.no_grad():
                prior = temperature * torch.log1p(counts.to(self.bias.weight).clamp(min=0))
                self.bias.weight[1:, 0] = prior[1:]

    def items(self, items: torch.Tensor) -> torch.Tensor:
        """Item vectors of item indices (any shape ``S``) -> ``[*S, width]``, from the item table
        (the bias, when the model has one, as the last coordinate)."""
        meta = self.item_meta[items]
        vectors = self._represent(items, meta[..., 0], meta[..., 1], meta[..., 2])
        return vectors if self.bias is None else torch.cat([vectors, self.bias(items)], -1)

    def item_matrix(self) -> torch.Tensor:
        """Every item's vector ``[n_items + 1, width]`` (row 0 = padding: zeros)."""
        return self.items(torch.arange(self.hyper.n_items + 1, device=self.item_meta.device))

    def _represent(
        self, items: torch.Tensor, artists: torch.Tensor, genres: torch.Tensor, languages: torch.Tensor
    ) -> torch.Tensor:
        return self.item(items) + self.artist(artists) + self.genre(genres) + self.language(languages)

    def encode(
        self,
        items: torch.Tensor,
        artists: torch.Tensor,
        genres: torch.Tensor,
        languages: torch.Tensor,
        sources: torch.Tensor,
        *,
        last_only: bool = False,
    ) -> torch.Tensor:
        """Outputs ``[B, L, width]`` of left-padded token ``[B, L]`` int64 tensors (L <= max_len),
        the bias coordinate's constant 1 last when the model has one; with ``last_only`` the last
        position's ``[B, 1, width]`` (the last block computes no other query).

        The rows are encoded in groups of similar length (:func:`length_groups`), each group
        without the padding columns all its rows share: a row's outputs do not depend on its
        padding, so only the cost changes (a batch of mixed lengths is mostly padding). The
        outputs at positions left of a row's group width are zeros (padding: no consumer reads
        them)."""
        length = items.shape[1]
        if length > self.hyper.max_len:
            raise ValueError(f"sequence length {length} is over max_len {self.hyper.max_len}")
        tokens = (items, artists, genres, languages, sources)
        groups = length_groups(items)
        if len(groups) == 1:
            return self._encode(tuple(t[:, length - groups[0][1] :] for t in tokens), last_only)
        pieces = []
        for rows, width in groups:
            out = self._encode(tuple(t[rows, length - width :] for t in tokens), last_only)
            pieces.append(nnf.pad(out, (0, 0, (1 if last_only else length) - out.shape[1], 0)))
        order = torch.cat([rows for rows, _ in groups]).argsort()
        return torch.cat(pieces)[order]

    def _encode(self, tokens: tuple[torch.Tensor, ...], last_only: bool) -> torch.Tensor:
        """:meth:`encode` of the five token tensors ``tokens`` as they are (every column computed)."""
        items, artists, genres, languages, sources = tokens
        length = items.shape[1]
        valid = items > 0
        positions = torch.arange(self.hyper.max_len - length, self.hyper.max_len, device=items.device)
        x = (
            self._represent(items, artists, genres, languages)
            + self.source(sources)
            + self.position(positions)
        )
        x = self.drop(x)
        causal = torch.ones(length, length, dtype=torch.bool, device=items.device).tril()
        eye = torch.eye(length, dtype=torch.bool, device=items.device)
        allowed = (causal & valid[:, None, :]) | eye  # a padded query attends itself only (no NaN)
        last = len(self.blocks) - 1
        for i, block in enumerate(self.blocks):
            x = block(x, allowed[:, None], last_only and i == last)
        x = self.norm(x)
        return x if self.bias is None else nnf.pad(x, (0, 1), value=1.0)

    def forward(self, *tokens: torch.Tensor, candidates: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Training step's forward (one call, as DDP wants): the outputs ``[B, L, width]`` of the
        five token tensors (:meth:`encode`) and the vectors ``[C, width]`` of the ``candidates``
        item indices."""
        return self.encode(*tokens), self.items(candidates)

    def user_vectors(self, *tokens: torch.Tensor) -> torch.Tensor:
        """The user vectors ``[B, width]`` of the five token tensors (:meth:`encode`): the output at
        the last position."""
        return self.encode(*tokens, last_only=True)[:, -1]


def length_groups(items: torch.Tensor) -> list[tuple[torch.Tensor, int]]:
    """The rows of left-padded ``items`` ``[B, L]`` as ``(row indices, width)`` groups: rows
    sorted by length (from the first non-padding column to the end; at least 1), longest first,
    a new group starting where a length is at most half its group's ``width`` (its longest), so
    that at most about half of a group's cells are padding.

    >>> [(rows.tolist(), width) for rows, width in length_groups(torch.tensor(
    ...     [[0, 0, 0, 4], [1, 2, 3, 4], [0, 0, 5, 6], [0, 7, 8, 9]]))]
    [([1, 3], 4), ([2], 2), ([0], 1)]
    """
    width = items.shape[1]
    real = items > 0
    first = torch.where(real.any(1), real.int().argmax(1), width - 1)
    lengths = (width - first).tolist()
    order = sorted(range(len(lengths)), key=lambda row: -lengths[row])
    groups: list[list[int]] = []
    for row in order:
        if not groups or 2 * lengths[row] <= lengths[groups[-1][0]]:
            groups.append([])
        groups[-1].append(row)
    device = items.device
    return [(torch.tensor(rows, device=device), lengths[rows[0]]) for rows in groups]


def _init(module: nn.Module) -> None:
    """Truncated-normal (std 0.02) weights, zero biases, zero padding rows (as SASRec does)."""
    if isinstance(module, nn.Linear | nn.Embedding):
        nn.init.trunc_normal_(module.weight, std=0.02, a=-0.04, b=0.04)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)
    if isinstance(module, nn.Embedding) and module.padding_idx is not None:
        with torch.no_grad():
            module.weight[module.padding_idx].zero_()
