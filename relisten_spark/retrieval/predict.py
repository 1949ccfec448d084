"""A trained retriever version loaded for inference, once per Python worker.

:func:`load_retriever` resolves ``models/retriever/<version>/`` through the registry and returns a
:class:`RetrieverModel` from :data:`relisten_spark.runtime.MODELS` (keyed by the version's
folder), so a Spark task that scores many batches loads it once per worker. The item vectors are
computed once per loaded model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from relisten_spark import runtime
from relisten_spark.models import registry
from relisten_spark.retrieval.model import Retriever, RetrieverHyper
from relisten_spark.retrieval.sequences import VOCAB_FILE, Vocab
from relisten_spark.retrieval.worker import ITEMS_FOLDER


class RetrieverModel:
    """A saved retriever in eval mode on the CPU: the item matrix and user vectors as NumPy.

    ``items``: the item table ``[item_index, song_id, artist, genre, language, item_count]``
    (pandas, by ``item_index``, row 0 = padding); ``vocab``: the sequences' :class:`Vocab`.
    """

    def __init__(self, folder: str | Path) -> None:
        folder = Path(folder)
        saved = torch.load(folder / runtime.RETRIEVER_MODEL_FILE, map_location="cpu", weights_only=True)
        self.hyper = RetrieverHyper(**saved["hyper"])
        self.metadata: dict[str, Any] = registry.load_metadata(folder)
        self.version: str = self.metadata["version"]
        self.folder = str(folder)
        self.items: pd.DataFrame = (
            pd.read_parquet(folder / ITEMS_FOLDER).sort_values("item_index").reset_index(drop=True)
        )
        self.vocab = Vocab.from_dict(json.loads((folder / VOCAB_FILE).read_text(encoding="utf-8")))
        meta = torch.zeros((self.hyper.n_items + 1, 3), dtype=torch.long)
        self.model = Retriever(self.hyper, meta)
        self.model.load_state_dict(saved["state_dict"])
        self.model.eval()
        self._item_matrix: np.ndarray | None = None

    def item_matrix(self) -> np.ndarray:
        """float32 ``[n_items + 1, d]``: every item's vector (row 0 = padding, zeros)."""
        if self._item_matrix is None:
            with torch.no_grad():
                self._item_matrix = self.model.item_matrix().numpy().astype(np.float32, copy=False)
        return self._item_matrix

    def user_vectors(
        self,
        items: np.ndarray,
        artists: np.ndarray,
        genres: np.ndarray,
        languages: np.ndarray,
        sources: np.ndarray,
    ) -> np.ndarray:
        """float32 ``[B, d]``: the user vectors of int64 token arrays ``[B, L]``, LEFT-padded with 0
        to the same ``L <= max_len`` (the last column is each user's latest event)."""
        arrays = [
            torch.as_tensor(np.asarray(a, dtype=np.int64))
            for a in (items, artists, genres, languages, sources)
        ]
        with torch.inference_mode():
            return self.model.user_vectors(*arrays).numpy().astype(np.float32, copy=False)


def load_retriever(models_root: str, version: str = "latest") -> RetrieverModel:
    """The retriever ``version`` (``latest`` = newest) of the registry at ``models_root``, cached
    per Python worker in :data:`relisten_spark.runtime.MODELS`."""
    folder = str(registry.resolve(models_root, runtime.RETRIEVER, version).absolute())
    return runtime.MODELS.get((runtime.RETRIEVER, folder), lambda: RetrieverModel(folder))
