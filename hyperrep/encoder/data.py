"""Read a zoo's checkpoints as one token tensor, keyed by model_id and epoch, leaving diverged models out."""

from __future__ import annotations

import logging
from typing import Sequence

import pandas as pd
import torch

from hyperrep.weights.tokens import TokenLayout, layout_from_module, tokenize_many
from hyperrep.zoo.store import Zoo

logger = logging.getLogger(__name__)


def zoo_layout(zoo: Zoo) -> TokenLayout:
    """Return the token layout of the zoo's architecture."""
    return layout_from_module(zoo.build_module())


def zoo_tokens(
    zoo: Zoo,
    layout: TokenLayout,
    split: str | None = None,
    epochs: Sequence[int] | None = None,
    model_ids: Sequence[str] | None = None,
) -> tuple[torch.Tensor, pd.DataFrame]:
    """Tokenize every checkpoint (model x epoch) of the zoo's models with status "ok".

    Parameters
    ----------
    zoo : Zoo
    layout : TokenLayout
        The layout of the zoo's architecture (``zoo_layout(zoo)``).
    split : {"train", "val", "test"} or None, default None
        Only models of this split; None takes every split.
    epochs : sequence of int, optional
        Only these zoo epochs; None takes every epoch.
    model_ids : sequence of str, optional
        Only these models (``split`` is then ignored); None takes every model of the split with status "ok".

    Returns
    -------
    tokens : torch.Tensor of shape (n_checkpoints, n_tokens, token_dim)
    index : pandas.DataFrame with columns model_id, epoch
        One row per checkpoint, in the order of ``tokens``; sorted by model_id, then epoch.
    """
    if model_ids is None:
        all_ids = zoo.model_ids(split=split, status=None)
        model_ids = zoo.model_ids(split=split)
        n_diverged = len(all_ids) - len(model_ids)
        if n_diverged:
            logger.info("left out %d diverged models of %d in split %s", n_diverged, len(all_ids), split or "all")

    if epochs is not None:
        missing = sorted(set(epochs) - set(zoo.epochs))
        if missing:
            raise ValueError(f"checkpoint epochs {missing} are not in the zoo: it has epochs {zoo.epochs}")
        wanted = set(epochs)

    state_dicts, keys = [], []
    for model_id in model_ids:
        for epoch, state_dict in zoo.checkpoints(model_id).items():
            if epochs is None or epoch in wanted:
                state_dicts.append(state_dict)
                keys.append((model_id, epoch))

    index = pd.DataFrame(keys, columns=["model_id", "epoch"])
    if not state_dicts:
        return torch.zeros(0, layout.n_tokens, layout.token_dim), index
    labels = [f"model {model_id} epoch {epoch}" for model_id, epoch in keys]
    return tokenize_many(state_dicts, layout, labels=labels), index
