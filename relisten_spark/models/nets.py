"""JENN and F-ELU-Net (FEATURES.md §3, thesis §6.1-6.2) as PyTorch modules built from the manifest.

Inputs come from the feature manifest rows with ``in_nn = true``:

* ``categorical`` columns get an embedding (codes ``0..cardinality-1``; null, negative and
  unseen codes share one extra "unknown" row); the genre columns share one table;
* numeric columns are filled and standardised inside the model with statistics computed once
  in Spark on the ``fit`` rows (:class:`Standardization`, saved with the model). A missing value
  takes the manifest's ``nn_fill`` (FEATURES.md step 7); mean and std are those of the filled
  column (the thesis fit its StandardScaler after filling). SVD factor columns (``svd_component``
  set) are filled but stay unscaled (unit-norm singular vectors, as the thesis feeds them);
* ``entity`` (user | song | context) picks the branch. Deviation from the thesis: its
  "frozen lookup tables" (usr_feat, song_feat and the SVD components, indexed by user / song
  code) are plain per-row inputs here, because silver.features already carries them joined
  to every row. The computation is the same; the tables are standardised over fit rows
  instead of over users / songs. ``registration_init_time`` enters the user branch only (the
  notebook fed it to the context branch as well), so with the engine's manifest the context
  branch is one input narrower than the notebook's (303 / 270 instead of 304 / 271).

Role tables below name what the manifest's generic fields cannot say: which codes are the user
id (its embedding is added to the user tower) and the song ids (JENN's three trainable song
embeddings, sent to the context branch; F-ELU-Net has none), which columns share the genre
table, and what each SVD factor group (a column name less its ``_<svd_component>``) pairs with:
the raw dot products user x song and user x artist and the cosines of the previous / next song's
factors with the current one's enter the context branch, over the components both groups have.

Architectures (what the thesis code ran; FEATURES.md §3.2):

* user tower: Dense(H, act) -> Dense(K) -> + user-id embedding (K); song tower: Dense(H, act)
  -> Dense(K); context tower: Dense(H, act) for JENN, Dense(K, act) for F-ELU-Net;
* joint j = [u, s, c, u.s] (JENN 74+74+148+1 = 297, F-ELU-Net 74+74+74+1 = 223 at the
  thesis sizes);
* JENN head: h0 = D(j); h1 = D([j, h0]); h2 = D([j, h1]); out = Dense1(Dropout([j, h2]));
* F-ELU-Net head (DenseNet-style): p0 = D(j); p1 = D([j, p0]); p2 = D([j, p0, p1]);
  out = Dense1(Dropout([j, p0, p1, p2]));
* ELU, Glorot-uniform dense layers, embeddings U(+-0.005) (genre U(+-0.05)), user id
  U(+-0.005) for JENN and zeros for F-ELU-Net, dropout 0.5; the model returns the logit.

The thesis text's variants (ReLU, BatchNorm and dropout in the blocks, 2K hidden units, class
weights) are options of :class:`NetHyper` (class weights live in the training loop).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
import torch
from torch import nn

from relisten_spark.errors import InputError
from relisten_spark.features.spec import Entity, Fill
from relisten_spark.runtime import NET_MODEL_FILE

NetKind = Literal["jenn", "felu_net"]
KINDS: tuple[NetKind, ...] = ("jenn", "felu_net")

# ---- role tables (names as built by relisten_spark.features) ------------------------------
ID_ROLES = {
    "msno_code": "user_id",
    "song_code": "song_id",
    "before_song_code": "song_id",
    "after_song_code": "song_id",
}
SHARED_EMBEDDINGS = {"first_genre_id": "genre", "second_genre_id": "genre", "third_genre_id": "genre"}
INIT_SCALE = {"genre": 0.05}
DEFAULT_INIT_SCALE = 0.005
# SVD factor column groups (column name minus its trailing _<svd_component>) -> (pair, side):
# "song" pairs the user x song factors, "artist" the user x artist ones. A group named
# before_/after_ + a song-side group holds the previous / next song's factors (side "neighbour").
SVD_GROUPS = {
    "member_component": ("song", "user"),
    "song_component": ("song", "song"),
    "member_artist_component": ("artist", "user"),
    "artist_component": ("artist", "song"),
}
NEIGHBOUR_PREFIXES = ("before_", "after_")

SPEC_FILE = "net.json"
STATS_FILE = "standardization.json"


# ---- inputs -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Categorical:
    name: str
    entity: Entity  # the branch
    cardinality: int
    table: str  # embedding table (shared by the genre columns)
    role: str = "plain"  # plain | user_id | song_id


@dataclass(frozen=True)
class Numeric:
    name: str
    entity: Entity  # the branch
    scaled: bool = True  # False for SVD components (fed raw)
    fill: Fill = Fill.MEAN


@dataclass(frozen=True)
class SvdGroup:
    name: str  # column prefix, e.g. member_component
    pair: str  # song | artist
    side: str  # user | song | neighbour
    columns: tuple[str, ...]  # ordered by component index
    components: tuple[int, ...]


@dataclass(frozen=True)
class NetInputs:
    """The nets' inputs in a fixed order: ``categorical`` codes, ``numeric`` values, SVD groups."""

    categorical: tuple[Categorical, ...]
    numeric: tuple[Numeric, ...]
    svd_groups: tuple[SvdGroup, ...] = ()

    @property
    def categorical_names(self) -> list[str]:
        return [c.name for c in self.categorical]

    @property
    def numeric_names(self) -> list[str]:
        return [c.name for c in self.numeric]

    @classmethod
    def from_manifest(cls, rows: Sequence[Mapping[str, Any]], profile: str = "") -> NetInputs:
        """Build from manifest rows (schemas.MANIFEST) with ``in_nn`` true; other rows are ignored.
        ``entity`` picks a column's branch, ``nn_fill`` a numeric column's fill and
        ``svd_component`` marks an SVD factor column.

        Raises :class:`InputError` for a categorical without cardinality, an unknown entity or
        fill, a numeric column without fill, an SVD component outside the known factor groups, or
        a branch (user, song, context) left without inputs.
        """
        where = f" (profile {profile})" if profile else ""
        categorical: list[Categorical] = []
        numeric: list[Numeric] = []
        groups: dict[tuple[str, str, str], list[tuple[int, str]]] = {}
        for row in sorted((r for r in rows if r["in_nn"]), key=lambda r: r["name"]):
            name, entity = row["name"], _entity(row, where)
            if row["categorical"]:
                categorical.append(_categorical(row, entity, where))
                continue
            j = row["svd_component"]
            if j is not None:
                groups.setdefault(_svd_group(name, int(j), where), []).append((int(j), name))
            numeric.append(Numeric(name, entity, scaled=j is None, fill=_fill_rule(row, where)))
        inputs = cls(tuple(categorical), tuple(numeric), _svd_groups(groups))
        for branch in Entity:
            if not any(c.entity == branch and c.role == "plain" for c in categorical) and not any(
                n.entity == branch for n in numeric
            ):
                raise InputError(f"feature manifest{where}: no in_nn inputs for the {branch} branch")
        return inputs

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NetInputs:
        return cls(
            tuple(Categorical(**{**c, "entity": Entity(c["entity"])}) for c in data["categorical"]),
            tuple(
                Numeric(**{**n, "entity": Entity(n["entity"]), "fill": Fill(n["fill"])})
                for n in data["numeric"]
            ),
            tuple(
                SvdGroup(**{**g, "columns": tuple(g["columns"]), "components": tuple(g["components"])})
                for g in data["svd_groups"]
            ),
        )


def _entity(row: Mapping[str, Any], where: str) -> Entity:
    try:
        return Entity(row["entity"])
    except ValueError:
        expected = tuple(e.value for e in Entity)
        raise InputError(
            f"feature manifest{where}: column {row['name']} has entity {row['entity']!r}, expected {expected}"
        ) from None


def _categorical(row: Mapping[str, Any], entity: Entity, where: str) -> Categorical:
    name, cardinality = row["name"], row["cardinality"]
    if cardinality is None or cardinality < 1:
        raise InputError(f"feature manifest{where}: categorical column {name} has no cardinality")
    return Categorical(
        name, entity, int(cardinality), SHARED_EMBEDDINGS.get(name, name), ID_ROLES.get(name, "plain")
    )


def _fill_rule(row: Mapping[str, Any], where: str) -> Fill:
    rule = row["nn_fill"]
    if rule is None:
        raise InputError(f"feature manifest{where}: numeric column {row['name']} has no nn_fill")
    try:
        return Fill(rule)
    except ValueError:
        raise InputError(
            f"feature manifest{where}: column {row['name']} has unknown nn_fill={rule}"
        ) from None


def _svd_role(group: str) -> tuple[str, str] | None:
    """(pair, side) of an SVD column group, None for other columns.

    >>> _svd_role("member_artist_component"), _svd_role("after_song_component"), _svd_role("x")
    (('artist', 'user'), ('song', 'neighbour'), None)
    """
    if group in SVD_GROUPS:
        return SVD_GROUPS[group]
    for prefix in NEIGHBOUR_PREFIXES:
        stem = group.removeprefix(prefix)
        if group.startswith(prefix) and SVD_GROUPS.get(stem, ("", ""))[1] == "song":
            return SVD_GROUPS[stem][0], "neighbour"
    return None


def _svd_group(name: str, j: int, where: str) -> tuple[str, str, str]:
    """(group, pair, side) of SVD component ``j`` named ``name`` (``<group>_<j>``)."""
    group = name.removesuffix(f"_{j}")
    role = _svd_role(group) if group != name else None
    if role is None:
        raise InputError(
            f"feature manifest{where}: column {name} has svd_component {j} but is no component of "
            f"an SVD factor group ({', '.join(SVD_GROUPS)} or their before_ / after_ copies)"
        )
    return group, *role


def _svd_groups(groups: Mapping[tuple[str, str, str], list[tuple[int, str]]]) -> tuple[SvdGroup, ...]:
    """The SVD factor groups ``(group, pair, side) -> [(j, column)]`` by group name, each with its
    columns ordered by component index."""
    out = []
    for (group, pair, side), members in sorted(groups.items()):
        ordered = sorted(members)
        out.append(SvdGroup(group, pair, side, tuple(m[1] for m in ordered), tuple(m[0] for m in ordered)))
    return tuple(out)


@dataclass(frozen=True)
class Moments:
    """Fit-row moments of one numeric input: rows, non-missing rows, their mean and population
    variance, and the fill value of the missing ones."""

    rows: int
    present: int
    mean: float | None
    var: float | None
    fill: float


@dataclass(frozen=True)
class Standardization:
    """Per-numeric-input fill value, and mean and std of the filled fit rows (std 0 -> 1)."""

    names: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    fill: tuple[float, ...]

    @classmethod
    def from_moments(cls, moments: Mapping[str, Moments]) -> Standardization:
        """Combine the non-missing moments with the fill: the moments of the filled column.

        >>> m = Standardization.from_moments({"x": Moments(4, 2, 1.0, 1.0, 0.0)})
        >>> m.fill, m.mean, round(m.std[0] ** 2, 6)  # filled column: 0, 0, 0, 2 -> mean 0.5
        ((0.0,), (0.5,), 0.75)
        """
        names, means, stds, fills = [], [], [], []
        for name, m in moments.items():
            fill = float(m.fill) if m.fill is not None and np.isfinite(m.fill) else 0.0
            if m.rows == 0 or m.present == 0 or m.mean is None:
                mean, var = fill, 0.0
            else:
                missing = m.rows - m.present
                mean = (m.present * m.mean + missing * fill) / m.rows
                var = (
                    m.present * ((m.var or 0.0) + (m.mean - mean) ** 2) + missing * (fill - mean) ** 2
                ) / m.rows
            names.append(name)
            means.append(float(mean))
            stds.append(float(np.sqrt(var)) if var > 0 and np.isfinite(var) else 1.0)
            fills.append(fill)
        return cls(tuple(names), tuple(means), tuple(stds), tuple(fills))

    def to_dict(self) -> dict[str, Any]:
        rows = zip(self.names, self.mean, self.std, self.fill, strict=True)
        return {n: {"mean": m, "std": s, "fill": f} for n, m, s, f in rows}

    @classmethod
    def from_dict(cls, data: Mapping[str, Mapping[str, float]]) -> Standardization:
        names = tuple(data)
        return cls(
            names,
            tuple(data[n]["mean"] for n in names),
            tuple(data[n]["std"] for n in names),
            tuple(data[n]["fill"] for n in names),
        )


@dataclass(frozen=True)
class NetHyper:
    """Architecture settings; the defaults are the thesis code's (FEATURES.md §3.2)."""

    k_user: int = 74
    k_cat: int = 11
    hidden: int = 148
    activation: Literal["elu", "relu"] = "elu"
    batchnorm: bool = False
    block_dropout: float = 0.0
    dropout: float = 0.5
    l2_embedding: float = 5.315258e-4

    def context_hidden(self, kind: NetKind) -> int:
        return self.hidden if kind == "jenn" else self.k_user


# ---- modules -------------------------------------------------------------------------------
class Standardize(nn.Module):
    """NaN -> the column's fill, then ``(x - mean) / std`` for scaled inputs (raw for SVD)."""

    mean: torch.Tensor
    std: torch.Tensor
    fill: torch.Tensor
    scaled: torch.Tensor

    def __init__(self, inputs: NetInputs, stats: Standardization) -> None:
        super().__init__()
        lookup = {n: j for j, n in enumerate(stats.names)}
        missing = [n for n in inputs.numeric_names if n not in lookup]
        if missing:
            raise InputError(f"standardisation statistics miss columns {missing}")
        order = [lookup[n] for n in inputs.numeric_names]
        for field in ("mean", "std", "fill"):
            values = getattr(stats, field)
            self.register_buffer(field, torch.tensor([values[j] for j in order], dtype=torch.float32))
        self.register_buffer("scaled", torch.tensor([n.scaled for n in inputs.numeric], dtype=torch.bool))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        filled = torch.where(torch.isnan(x), self.fill, x)
        return torch.where(self.scaled, (filled - self.mean) / self.std, filled)


def _activation(name: str) -> nn.Module:
    return nn.ELU(alpha=1.0) if name == "elu" else nn.ReLU()


def _dense(n_in: int, n_out: int, hyper: NetHyper, activation: bool = True) -> nn.Sequential:
    """Dense layer (Glorot-uniform, zero bias) [+ BatchNorm] [+ activation] [+ block dropout]."""
    linear = nn.Linear(n_in, n_out)
    nn.init.xavier_uniform_(linear.weight)
    nn.init.zeros_(linear.bias)
    layers: list[nn.Module] = [linear]
    if activation:
        if hyper.batchnorm:
            layers.append(nn.BatchNorm1d(n_out))
        layers.append(_activation(hyper.activation))
        if hyper.block_dropout > 0:
            layers.append(nn.Dropout(hyper.block_dropout))
    return nn.Sequential(*layers)


class RelistenNet(nn.Module):
    """JENN (``kind="jenn"``) or F-ELU-Net (``kind="felu_net"``); ``forward(cat, num)`` -> logits.

    ``cat``: int64 ``[B, len(inputs.categorical)]`` codes; ``num``: float32
    ``[B, len(inputs.numeric)]`` raw values (NaN = missing), both in ``inputs`` order.
    """

    cardinality: torch.Tensor
    unknown: torch.Tensor

    def __init__(self, kind: NetKind, inputs: NetInputs, stats: Standardization, hyper: NetHyper) -> None:
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"unknown net {kind!r}, expected one of {KINDS}")
        self.kind, self.inputs, self.hyper = kind, inputs, hyper
        self.standardize = Standardize(inputs, stats)
        # the construction order fixes the random initialisation: embeddings, towers, head
        self._add_embeddings()
        self._route_inputs()
        self._pair_svd_groups()
        self._add_layers()

    # -- construction -----------------------------------------------------------------------
    def _add_embeddings(self) -> None:
        """One table per categorical column, the genres sharing one, none for F-ELU-Net's song
        ids; a table's last row is "unknown"."""
        sizes: dict[str, int] = {}
        roles: dict[str, str] = {}
        for c in self.inputs.categorical:
            roles.setdefault(c.table, c.role)
            if c.role == "song_id" and self.kind != "jenn":
                continue
            sizes[c.table] = max(sizes.get(c.table, 0), c.cardinality)
        categorical = self.inputs.categorical
        self.register_buffer("cardinality", torch.tensor([c.cardinality for c in categorical]))
        self.register_buffer(
            "unknown", torch.tensor([sizes.get(c.table, c.cardinality) for c in categorical])
        )
        self.embeddings = nn.ModuleDict()
        for table, cardinality in sorted(sizes.items()):
            self.embeddings[table] = self._embedding(table, roles[table], cardinality)
        self._l2_tables = [t for t in sorted(sizes) if roles[t] != "user_id"]

    def _embedding(self, table: str, role: str, cardinality: int) -> nn.Embedding:
        """The user id: K wide (zeros for F-ELU-Net); others K0 wide; uniform initialisation."""
        dim = self.hyper.k_user if role == "user_id" else self.hyper.k_cat
        emb = nn.Embedding(cardinality + 1, dim)
        if role == "user_id" and self.kind == "felu_net":
            nn.init.zeros_(emb.weight)
        else:
            scale = INIT_SCALE.get(table, DEFAULT_INIT_SCALE)
            nn.init.uniform_(emb.weight, -scale, scale)
        return emb

    def _route_inputs(self) -> None:
        """Which inputs feed which branch: the user id joins the user tower's output, JENN's song
        ids the context branch, every other input its entity's branch."""
        self._branch_cats: dict[str, list[tuple[int, str]]] = {e: [] for e in Entity}
        self._user_id: list[tuple[int, str]] = []
        for j, c in enumerate(self.inputs.categorical):
            if c.role == "user_id":
                self._user_id.append((j, c.table))
            elif c.role == "song_id":
                if self.kind == "jenn":
                    self._branch_cats[Entity.CONTEXT].append((j, c.table))
            else:
                self._branch_cats[c.entity].append((j, c.table))
        for entity in Entity:
            idx = [j for j, n in enumerate(self.inputs.numeric) if n.entity == entity]
            self.register_buffer(f"num_{entity}", torch.tensor(idx, dtype=torch.long))

    def _pair_svd_groups(self) -> None:
        """SVD dot products (user x song side) and neighbour cosines, over shared components."""
        position = {n: j for j, n in enumerate(self.inputs.numeric_names)}
        groups = self.inputs.svd_groups
        self._dots: list[tuple[str, str]] = []
        self._cosines: list[tuple[str, str]] = []
        by_side = {(g.pair, g.side): g for g in groups if g.side != "neighbour"}
        for pair in ("song", "artist"):
            song = by_side.get((pair, "song"))
            if song is None:
                continue
            user = by_side.get((pair, "user"))
            if user is not None:
                self._add_pair("dot", len(self._dots), user, song, position)
                self._dots.append((user.name, song.name))
            for g in groups:
                if g.pair == pair and g.side == "neighbour":
                    self._add_pair("cos", len(self._cosines), g, song, position)
                    self._cosines.append((g.name, song.name))

    def _branch_width(self, entity: str) -> int:
        emb = sum(self._table(t).embedding_dim for _, t in self._branch_cats[entity])
        extra = len(self._dots) + len(self._cosines) if entity == Entity.CONTEXT else 0
        return emb + len(getattr(self, f"num_{entity}")) + extra

    def _table(self, name: str) -> nn.Embedding:
        return cast(nn.Embedding, self.embeddings[name])

    def _add_layers(self) -> None:
        """The three towers, the head's blocks and the output layer."""
        hyper = self.hyper
        k, h, hc = hyper.k_user, hyper.hidden, hyper.context_hidden(self.kind)
        self.user_tower = nn.Sequential(
            _dense(self._branch_width(Entity.USER), h, hyper), _dense(h, k, hyper, activation=False)
        )
        self.song_tower = nn.Sequential(
            _dense(self._branch_width(Entity.SONG), h, hyper), _dense(h, k, hyper, activation=False)
        )
        self.context_tower = _dense(self._branch_width(Entity.CONTEXT), hc, hyper)
        self.joint_width = 2 * k + hc + 1
        j = self.joint_width
        if self.kind == "jenn":
            self.blocks = nn.ModuleList(
                [_dense(j, h, hyper), _dense(j + h, h, hyper), _dense(j + h, h, hyper)]
            )
            top = j + h
        else:
            self.blocks = nn.ModuleList(
                [_dense(j, h, hyper), _dense(j + h, h, hyper), _dense(j + 2 * h, h, hyper)]
            )
            top = j + 3 * h
        self.dropout = nn.Dropout(hyper.dropout)
        self.out = _dense(top, 1, hyper, activation=False)

    # -- pieces ---------------------------------------------------------------------------
    def _codes(self, cat: torch.Tensor) -> torch.Tensor:
        """Codes outside ``0..cardinality-1`` of their column (null = -1) -> the table's unknown row."""
        unseen = (cat < 0) | (cat >= self.cardinality)
        return torch.where(unseen, self.unknown.expand_as(cat), cat)

    def _branch(self, entity: str, codes: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        parts = [self.embeddings[t](codes[:, j]) for j, t in self._branch_cats[entity]]
        parts.append(x.index_select(1, getattr(self, f"num_{entity}")))
        if entity == "context":
            for i in range(len(self._dots)):
                a, b = self._pair(x, "dot", i)
                parts.append((a * b).sum(1, keepdim=True))
            for i in range(len(self._cosines)):
                a, b = self._pair(x, "cos", i)
                parts.append(nn.functional.cosine_similarity(a, b, dim=1).unsqueeze(1))
        return torch.cat(parts, dim=1)

    def _add_pair(self, kind: str, i: int, a: SvdGroup, b: SvdGroup, position: Mapping[str, int]) -> None:
        """Register the input positions of the components ``a`` and ``b`` both have."""
        shared = sorted(set(a.components) & set(b.components))
        for tag, group in (("a", a), ("b", b)):
            by_j = dict(zip(group.components, group.columns, strict=True))
            idx = torch.tensor([position[by_j[j]] for j in shared], dtype=torch.long)
            self.register_buffer(f"{kind}{i}_{tag}", idx)

    def _pair(self, x: torch.Tensor, kind: str, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return x.index_select(1, getattr(self, f"{kind}{i}_a")), x.index_select(
            1, getattr(self, f"{kind}{i}_b")
        )

    def joint(self, cat: torch.Tensor, num: torch.Tensor) -> torch.Tensor:
        """The joint vector ``[u, s, c, u.s]``."""
        codes = self._codes(cat)
        x = self.standardize(num)
        u = self.user_tower(self._branch("user", codes, x))
        for j, table in self._user_id:
            u = u + self.embeddings[table](codes[:, j])
        s = self.song_tower(self._branch("song", codes, x))
        c = self.context_tower(self._branch("context", codes, x))
        return torch.cat([u, s, c, (u * s).sum(1, keepdim=True)], dim=1)

    def forward(self, cat: torch.Tensor, num: torch.Tensor) -> torch.Tensor:
        j = self.joint(cat, num)
        if self.kind == "jenn":
            h = self.blocks[0](j)
            h = self.blocks[1](torch.cat([j, h], 1))
            h = self.blocks[2](torch.cat([j, h], 1))
            top = torch.cat([j, h], 1)
        else:
            p0 = self.blocks[0](j)
            p1 = self.blocks[1](torch.cat([j, p0], 1))
            p2 = self.blocks[2](torch.cat([j, p0, p1], 1))
            top = torch.cat([j, p0, p1, p2], 1)
        return self.out(self.dropout(top)).squeeze(1)

    def embedding_penalty(self) -> torch.Tensor:
        """Keras-style ``l2(lw)`` on the embedding tables (all but the user id): lw * sum(w^2)."""
        total = self.standardize.mean.new_zeros(())
        for table in self._l2_tables:
            total = total + self._table(table).weight.pow(2).sum()
        return self.hyper.l2_embedding * total

    def describe(self) -> dict[str, Any]:
        """Widths and parameter count, for metadata and logs."""
        return {
            "kind": self.kind,
            "joint_width": self.joint_width,
            "parameters": int(sum(p.numel() for p in self.parameters())),
            "svd_dots": [list(d) for d in self._dots],
            "svd_cosines": [list(c) for c in self._cosines],
        }


def build(kind: NetKind, inputs: NetInputs, stats: Standardization, hyper: NetHyper) -> RelistenNet:
    return RelistenNet(kind, inputs, stats, hyper)


# ---- persistence and inference -------------------------------------------------------------
def save(folder: str | Path, model: RelistenNet, stats: Standardization) -> None:
    """Write ``model.pt`` (state dict), ``net.json`` (kind, inputs, hyper) and the statistics."""
    folder = Path(folder)
    torch.save(model.state_dict(), folder / NET_MODEL_FILE)
    spec = {"kind": model.kind, "inputs": model.inputs.to_dict(), "hyper": asdict(model.hyper)}
    (folder / SPEC_FILE).write_text(json.dumps(spec, indent=2))
    (folder / STATS_FILE).write_text(json.dumps(stats.to_dict(), indent=2))


def load(folder: str | Path) -> RelistenNet:
    """Rebuild a saved net in eval mode on the CPU."""
    folder = Path(folder)
    spec = json.loads((folder / SPEC_FILE).read_text())
    stats = Standardization.from_dict(json.loads((folder / STATS_FILE).read_text()))
    model = build(spec["kind"], NetInputs.from_dict(spec["inputs"]), stats, NetHyper(**spec["hyper"]))
    model.load_state_dict(torch.load(folder / NET_MODEL_FILE, map_location="cpu", weights_only=True))
    return model.eval()


@torch.no_grad()
def predict(model: RelistenNet, cat: np.ndarray, num: np.ndarray) -> np.ndarray:
    """Probabilities (float64) for arrays from :func:`relisten_spark.models.shards.to_arrays`."""
    device = next(model.parameters()).device
    logits = model(torch.from_numpy(cat).to(device), torch.from_numpy(num).to(device))
    return torch.sigmoid(logits).double().cpu().numpy()
