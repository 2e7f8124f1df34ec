"""Novelty audit: how far each generated model is from its nearest zoo member, once neuron order is aligned.

Hidden neurons of a network can be permuted without changing its function, so a plain weight distance calls a
permuted copy new. Before measuring, the sample is aligned to each candidate zoo checkpoint by weight matching,
front to back. In every hidden layer, each neuron is described by its incoming weights and bias, with inputs
already reordered by the previous layer's match. ``scipy.optimize.linear_sum_assignment`` pairs the sample's
neurons with the reference's by minimal squared distance, and the next layer's inputs follow that order. The
match takes one pass over incoming weights only. An exact permuted copy aligns to distance 0, but the match is
not the optimum that alternating over incoming and outgoing weights could find.

Distances are the L2 norm over all parameters after alignment. They are reported relative to the zoo's typical
nearest-neighbour distance: the median, over probe checkpoints (the anchors), of the distance from a probe to
the nearest checkpoint of a *different* model. A sample with ``relative_distance < COPY_THRESHOLD`` is flagged
``is_copy``. To keep the search affordable, only the ``shortlist`` zoo checkpoints closest by a
permutation-invariant signature (each layer's sorted neuron norms) are aligned.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from scipy.optimize import linear_sum_assignment

from hyperrep.zoo.store import Zoo

logger = logging.getLogger(__name__)

StateDict = dict[str, torch.Tensor]

# A sample closer to a zoo member than this fraction of the zoo's typical nearest-neighbour distance is a copy.
COPY_THRESHOLD = 0.1
DEFAULT_SHORTLIST = 32


def layer_names(state_dict: StateDict) -> list[str]:
    """Return the names of the parameter layers (``conv1``, ``fc1`` ...) in forward order."""
    names = [key[: -len(".weight")] for key in state_dict if key.endswith(".weight")]
    missing = [name for name in names if f"{name}.bias" not in state_dict]
    if missing:
        raise ValueError(f"layers {missing} have no bias: the alignment needs weight and bias per layer")
    return names


def _stack(state_dicts: Sequence[StateDict]) -> StateDict:
    return {key: torch.stack([sd[key].float() for sd in state_dicts]) for key in state_dicts[0]}


def _neuron_features(weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Describe each output neuron by its incoming weights and bias: (R, n_out, fan_in + 1)."""
    return torch.cat([weight.flatten(2), bias[..., None]], dim=2)


def _permute_inputs(weight: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    """Reorder the input neurons (dimension 2 of a stacked weight) by ``perm`` of shape (R, n_in).

    A linear layer after a flattened conv output takes H*W consecutive inputs per channel, so the inputs are
    grouped by channel before the gather.
    """
    R, n_out = weight.shape[:2]
    n_in = perm.shape[1]
    grouped = weight.reshape(R, n_out, n_in, -1)  # (R, n_out, n_in, group)
    index = perm[:, None, :, None].expand(R, n_out, n_in, grouped.shape[3])
    return grouped.gather(2, index).reshape(weight.shape)


def align_to(sample: StateDict, references: StateDict) -> StateDict:
    """Align one sample to each of R stacked references; return the sample permuted R ways, stacked.

    Parameters
    ----------
    sample : dict of str to Tensor
        One state_dict of a ``build_model`` network.
    references : dict of str to Tensor
        R state_dicts of the same architecture, stacked along a leading axis.
    """
    names = layer_names(sample)
    R = next(iter(references.values())).shape[0]
    aligned = {key: value.float().expand(R, *value.shape).clone() for key, value in sample.items()}

    # The last layer's outputs are the classes, so only hidden layers are matched.
    for name, next_name in zip(names[:-1], names[1:]):
        w_key, b_key = f"{name}.weight", f"{name}.bias"
        ours = _neuron_features(aligned[w_key], aligned[b_key])  # (R, n, f)
        theirs = _neuron_features(references[w_key].float(), references[b_key].float())  # (R, n, f)
        cost = torch.cdist(theirs, ours).pow(2).numpy()  # (R, n, n): reference neuron i vs sample neuron j
        perm = torch.stack([torch.from_numpy(linear_sum_assignment(c)[1]) for c in cost])  # (R, n)

        aligned[w_key] = aligned[w_key].gather(1, perm.view(R, -1, *[1] * (aligned[w_key].dim() - 2))
                                               .expand_as(aligned[w_key]))
        aligned[b_key] = aligned[b_key].gather(1, perm)
        next_w = f"{next_name}.weight"
        aligned[next_w] = _permute_inputs(aligned[next_w], perm)
    return aligned


def aligned_distances(sample: StateDict, references: StateDict) -> np.ndarray:
    """Return the L2 distance (over all parameters) from the aligned sample to each of R stacked references."""
    aligned = align_to(sample, references)
    squared = sum((aligned[key] - references[key].float()).flatten(1).pow(2).sum(1) for key in sample)
    return squared.sqrt().numpy()


def permute_neurons(state_dict: StateDict, generator: torch.Generator | None = None) -> StateDict:
    """Return a function-preserving random permutation of every hidden layer's neurons (for tests and checks)."""
    names = layer_names(state_dict)
    out = {key: value.clone()[None] for key, value in state_dict.items()}
    for name, next_name in zip(names[:-1], names[1:]):
        n = out[f"{name}.bias"].shape[1]
        perm = torch.randperm(n, generator=generator)[None]  # (1, n)
        weight = out[f"{name}.weight"]
        out[f"{name}.weight"] = weight[:, perm[0]]
        out[f"{name}.bias"] = out[f"{name}.bias"][:, perm[0]]
        out[f"{next_name}.weight"] = _permute_inputs(out[f"{next_name}.weight"], perm)
    return {key: value[0] for key, value in out.items()}


def signature(state_dicts: StateDict) -> torch.Tensor:
    """Return a permutation-invariant signature per stacked model: each layer's sorted neuron norms, (R, s)."""
    parts = []
    for name in layer_names(state_dicts):
        features = _neuron_features(state_dicts[f"{name}.weight"].float(), state_dicts[f"{name}.bias"].float())
        parts.append(features.norm(dim=2).sort(dim=1).values)  # (R, n_out)
    return torch.cat(parts, dim=1)


_MAX_CACHED_REFERENCES = 2
_REFERENCES: dict[tuple[str, int], "ZooReference"] = {}  # see ZooReference.cached


@dataclass
class ZooReference:
    """Every usable checkpoint of a zoo, stacked for nearest-member search.

    Attributes
    ----------
    keys : pandas.DataFrame
        Columns model_id, epoch; one row per checkpoint, in the order of ``weights``.
    weights : dict of str to Tensor
        The checkpoints' state_dicts stacked along a leading axis of length ``len(keys)``.
    signatures : Tensor of shape (len(keys), s)
    """

    keys: pd.DataFrame
    weights: StateDict
    signatures: torch.Tensor

    @staticmethod
    def from_zoo(zoo: Zoo, model_ids: Sequence[str] | None = None) -> "ZooReference":
        """Load every epoch of the zoo's models with status "ok" (or of ``model_ids``)."""
        model_ids = zoo.model_ids() if model_ids is None else list(model_ids)
        if not model_ids:
            raise ValueError(f"zoo {zoo.dir} has no models with status 'ok' to compare samples with")
        state_dicts, keys = [], []
        for model_id in model_ids:
            for epoch, state_dict in zoo.checkpoints(model_id).items():
                state_dicts.append(state_dict)
                keys.append((model_id, epoch))
        weights = _stack(state_dicts)
        return ZooReference(pd.DataFrame(keys, columns=["model_id", "epoch"]), weights, signature(weights))

    @staticmethod
    def cached(zoo: Zoo) -> "ZooReference":
        """``from_zoo(zoo)``, kept in memory for the zoo's current table, so that a worker's later sampling jobs
        on the same zoo skip reading every checkpoint again. Holds the references of two zoos at most."""
        table = zoo.dir / "table.parquet"
        key = (str(zoo.dir.resolve()), table.stat().st_mtime_ns if table.is_file() else 0)
        if key not in _REFERENCES:
            while len(_REFERENCES) >= _MAX_CACHED_REFERENCES:
                _REFERENCES.pop(next(iter(_REFERENCES)))
            _REFERENCES[key] = ZooReference.from_zoo(zoo)
        return _REFERENCES[key]

    def __len__(self) -> int:
        return len(self.keys)

    def subset(self, index: np.ndarray) -> StateDict:
        return {key: value[torch.as_tensor(index)] for key, value in self.weights.items()}

    def nearest(
        self, state_dicts: Sequence[StateDict], shortlist: int | None = DEFAULT_SHORTLIST,
        exclude_model: Sequence[str | None] | None = None,
    ) -> pd.DataFrame:
        """Find each state_dict's nearest checkpoint after alignment.

        Parameters
        ----------
        state_dicts : sequence of dict
        shortlist : int or None, default 32
            Align only this many candidates, the closest by signature; None aligns every checkpoint.
        exclude_model : sequence of str or None, optional
            Per state_dict, a model_id whose checkpoints are not candidates (to measure a zoo member's distance
            to other models).

        Returns
        -------
        pandas.DataFrame with columns nearest_model_id, nearest_epoch, distance (one row per state_dict; a
        state_dict with NaN or Inf weights gets no nearest checkpoint and distance NaN)
        """
        if len(state_dicts) == 0:
            return pd.DataFrame(columns=["nearest_model_id", "nearest_epoch", "distance"])
        signatures = signature(_stack(state_dicts))
        gaps = torch.cdist(signatures, self.signatures)  # (n, R)
        model_ids = self.keys["model_id"].to_numpy()
        rows = []
        for i, state_dict in enumerate(state_dicts):
            if not all(torch.isfinite(v).all() for v in state_dict.values()):
                rows.append({"nearest_model_id": None, "nearest_epoch": -1, "distance": float("nan")})
                continue
            allowed = np.ones(len(self), dtype=bool)
            if exclude_model is not None and exclude_model[i] is not None:
                allowed = model_ids != exclude_model[i]
            candidates = np.flatnonzero(allowed)
            if len(candidates) == 0:
                raise ValueError("the zoo has no other model to compare with: the audit needs at least 2 models")
            if shortlist is not None and len(candidates) > shortlist:
                order = np.argsort(gaps[i, candidates].numpy(), kind="stable")
                candidates = candidates[order[:shortlist]]
            distances = aligned_distances(state_dict, self.subset(candidates))
            best = int(np.argmin(distances))
            key = self.keys.iloc[candidates[best]]
            rows.append({"nearest_model_id": key["model_id"], "nearest_epoch": int(key["epoch"]),
                         "distance": float(distances[best])})
        return pd.DataFrame(rows)

    def typical_distance(
        self, probes: pd.DataFrame, max_probes: int = 64, seed: int = 0, shortlist: int | None = DEFAULT_SHORTLIST,
    ) -> float:
        """Return the median distance from a probe checkpoint to the nearest checkpoint of another model.

        Parameters
        ----------
        probes : pandas.DataFrame
            Columns model_id, epoch of zoo checkpoints to measure from, such as the anchors.
        max_probes : int, default 64
            A seeded random subset of at most this many probes is used.

        Returns NaN for a zoo of one model, which has no other model to measure against.
        """
        if self.keys["model_id"].nunique() < 2:
            logger.warning("the zoo has one model: no typical distance, so samples are not compared with it")
            return float("nan")
        lookup = {(m, int(e)): i for i, (m, e) in enumerate(zip(self.keys["model_id"], self.keys["epoch"]))}
        index = [lookup[(m, int(e))] for m, e in zip(probes["model_id"], probes["epoch"]) if (m, int(e)) in lookup]
        if not index:
            raise ValueError("none of the probe checkpoints is in the zoo reference: pass zoo checkpoints as probes")
        if len(index) > max_probes:
            index = sorted(np.random.default_rng(seed).choice(index, size=max_probes, replace=False).tolist())
        state_dicts = [{key: value[i] for key, value in self.weights.items()} for i in index]
        exclude = [self.keys["model_id"].iloc[i] for i in index]
        nearest = self.nearest(state_dicts, shortlist=shortlist, exclude_model=exclude)
        return float(np.median(nearest["distance"]))


def agreement(predictions: torch.Tensor, reference: torch.Tensor) -> float:
    """Return the fraction of inputs on which two models predict the same class."""
    if predictions.shape != reference.shape:
        raise ValueError(
            f"predictions have shape {tuple(predictions.shape)} but the reference has {tuple(reference.shape)}"
        )
    return float((predictions == reference).float().mean())
