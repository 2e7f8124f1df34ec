"""Linear probes: predict a checkpoint's properties (accuracy, epoch, hyperparameters) from its features.

Ridge regression for numeric targets and logistic regression for categorical ones, each with its regularisation
chosen on a validation split. Splits are by model, taken from the zoo's ``split`` column, so no model's epochs
fall on both sides of a train/test boundary.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from scipy.linalg import LinAlgWarning
from scipy.stats import kendalltau
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import GroupShuffleSplit, ShuffleSplit
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted, check_X_y, validate_data
from threadpoolctl import threadpool_limits

from hyperrep.analysis.features import KEY_COLUMNS
from hyperrep.zoo.config import CATEGORICAL_HYPERPARAMETERS

logger = logging.getLogger(__name__)

Task = Literal["regression", "classification"]
DEFAULT_ALPHAS: tuple[float, ...] = tuple(np.logspace(-4, 5, 19).tolist())
DEFAULT_CS: tuple[float, ...] = tuple(np.logspace(-3, 3, 13).tolist())
# Numeric hyperparameters with at most this many distinct values are also probed as classes.
MAX_CLASSES = 10
NUMERIC_HYPERPARAMETERS: tuple[str, ...] = ("lr", "weight_decay", "dropout")
LOG_HYPERPARAMETERS: tuple[str, ...] = ("lr", "weight_decay")


def _validation_split(X, y, groups, validation_fraction: float, random_state: int):
    """Split (X, y) into fit and validation parts, by group when ``groups`` is given."""
    splitter_class = GroupShuffleSplit if groups is not None else ShuffleSplit
    splitter = splitter_class(n_splits=1, test_size=validation_fraction, random_state=random_state)
    fit_index, val_index = next(splitter.split(X, y, groups))
    return X[fit_index], y[fit_index], X[val_index], y[val_index]


class _ValidatedProbe(BaseEstimator):
    """Shared fit: standardise on the training rows, score each regularisation value on validation, refit."""

    def _grid(self) -> tuple[float, ...]:
        raise NotImplementedError

    def _make(self, value: float):
        raise NotImplementedError

    def _score(self, y_true, y_pred) -> float:
        raise NotImplementedError

    def _validation_scores(self, X, y, X_val, y_val, grid) -> np.ndarray:
        """Return the validation score of an estimator fitted on (X, y) for each value of ``grid``."""
        return np.array([self._score(y_val, self._make(value).fit(X, y).predict(X_val)) for value in grid])

    def fit(self, X, y, X_val=None, y_val=None, groups=None):
        """Fit on (X, y), choosing the regularisation on (X_val, y_val).

        Without a validation set, ``validation_fraction`` of the rows is held out (by ``groups`` when given,
        e.g. model ids, so one model's epochs stay together). The chosen estimator is then refit on training
        and validation rows together; the standardisation is the one fitted on the training rows.
        """
        X, y = check_X_y(X, y, dtype=np.float64, y_numeric=isinstance(self, RegressorMixin))
        if X_val is None:
            groups = None if groups is None else np.asarray(groups)
            X, y, X_val, y_val = _validation_split(X, y, groups, self.validation_fraction, self.random_state)
        else:
            X_val, y_val = check_X_y(X_val, y_val, dtype=np.float64, y_numeric=isinstance(self, RegressorMixin))
        if len(X_val) == 0:
            raise ValueError("the validation set is empty: pass X_val, y_val or use more training rows")
        self.n_features_in_ = X.shape[1]

        self.scaler_ = StandardScaler().fit(X)
        X_scaled, X_val_scaled = self.scaler_.transform(X), self.scaler_.transform(X_val)
        grid = self._grid()
        with warnings.catch_warnings():
            # The weakest penalties are ill-conditioned when features outnumber rows (e.g. W); validation
            # rejects them, so their solver warnings are expected.
            warnings.filterwarnings("ignore", category=LinAlgWarning)
            warnings.filterwarnings("ignore", message="Singular matrix in solving dual problem")
            scores = self._validation_scores(X_scaled, y, X_val_scaled, y_val, grid)
        self.val_scores_ = scores

        # Ties go to the strongest regularisation (the grid runs from strongest to weakest).
        best = int(np.nanargmax(scores)) if np.isfinite(scores).any() else 0
        self.best_value_ = grid[best]
        self.estimator_ = self._make(self.best_value_).fit(
            np.concatenate([X_scaled, X_val_scaled]), np.concatenate([y, y_val])
        )
        return self

    def predict(self, X):
        check_is_fitted(self, "estimator_")
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return self.estimator_.predict(self.scaler_.transform(X))


class RidgeProbe(RegressorMixin, _ValidatedProbe):
    """Ridge regression with alpha chosen on validation R².

    Parameters
    ----------
    alphas : sequence of float
        Candidate L2 penalties. Default: 19 values from 1e-4 to 1e5, evenly spaced in log.
    validation_fraction : float
        Share of rows held out for validation when ``fit`` gets no validation set.
    random_state : int
        Seed of that hold-out split.

    Attributes
    ----------
    alpha_ : float
        The chosen penalty.
    val_scores_ : ndarray of shape (n_alphas,)
        Validation R² of each alpha, in ascending order of alpha.
    scaler_ : StandardScaler
        Standardisation fitted on the training rows.
    estimator_ : Ridge
        The refit regression on standardised features.
    """

    def __init__(self, alphas=DEFAULT_ALPHAS, validation_fraction: float = 0.2, random_state: int = 0):
        self.alphas = alphas
        self.validation_fraction = validation_fraction
        self.random_state = random_state

    def _grid(self):
        return tuple(sorted(self.alphas, reverse=True))

    def _make(self, value: float):
        return Ridge(alpha=value)

    def _validation_scores(self, X, y, X_val, y_val, grid) -> np.ndarray:
        # One Ridge fit with a column of y per alpha: scikit-learn then computes X^T X (or the kernel) once and
        # solves per alpha, which is what makes probes of a few thousand features fast.
        targets = np.repeat(np.asarray(y, dtype=np.float64)[:, None], len(grid), axis=1)  # (n, n_alphas)
        predictions = Ridge(alpha=np.asarray(grid)).fit(X, targets).predict(X_val)  # (n_val, n_alphas)
        return np.array([self._score(y_val, predictions[:, i]) for i in range(len(grid))])

    def _score(self, y_true, y_pred) -> float:
        return r2_score(y_true, y_pred)

    def fit(self, X, y, X_val=None, y_val=None, groups=None):
        super().fit(X, y, X_val, y_val, groups)
        self.val_scores_ = self.val_scores_[::-1]  # back to ascending alpha order
        self.alpha_ = self.best_value_
        return self


class LogisticProbe(ClassifierMixin, _ValidatedProbe):
    """Multinomial logistic regression with the inverse penalty C chosen on validation accuracy.

    Parameters
    ----------
    Cs : sequence of float
        Candidate inverse L2 penalties. Default: 13 values from 1e-3 to 1e3, evenly spaced in log.
    validation_fraction, random_state
        As in ``RidgeProbe``.
    max_iter : int
        Iterations of the lbfgs solver.

    Attributes
    ----------
    C_ : float
        The chosen inverse penalty.
    classes_ : ndarray
        The class labels seen in training.
    val_scores_ : ndarray of shape (n_Cs,)
        Validation accuracy of each C, in ascending order of C.
    scaler_, estimator_
        As in ``RidgeProbe``; ``estimator_`` is a LogisticRegression.
    """

    def __init__(self, Cs=DEFAULT_CS, validation_fraction: float = 0.2, random_state: int = 0, max_iter: int = 1000):
        self.Cs = Cs
        self.validation_fraction = validation_fraction
        self.random_state = random_state
        self.max_iter = max_iter

    def _grid(self):
        return tuple(sorted(self.Cs))

    def _make(self, value: float):
        return LogisticRegression(C=value, max_iter=self.max_iter)

    def _validation_scores(self, X, y, X_val, y_val, grid) -> np.ndarray:
        # Along the path from strongest to weakest penalty, each fit starts from the previous solution
        # (warm_start). That usually saves lbfgs iterations; the optimum of each C is unchanged.
        estimator = LogisticRegression(C=grid[0], max_iter=self.max_iter, warm_start=True)
        scores = []
        for value in grid:
            estimator.set_params(C=value).fit(X, y)
            scores.append(self._score(y_val, estimator.predict(X_val)))
        return np.array(scores)

    def _score(self, y_true, y_pred) -> float:
        return accuracy_score(y_true, y_pred)

    def fit(self, X, y, X_val=None, y_val=None, groups=None):
        classes = np.unique(np.asarray(y))
        if len(classes) < 2:
            raise ValueError(f"the training labels have a single class {classes.tolist()}: a classifier needs two")
        super().fit(X, y, X_val, y_val, groups)
        self.C_ = self.best_value_
        self.classes_ = self.estimator_.classes_
        return self


# --- targets ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """A property to probe: a column of the zoo table (or the generalisation gap), as regression or classes."""

    name: str
    task: Task
    transform: Literal["none", "log10"] = "none"

    @property
    def metrics(self) -> tuple[str, ...]:
        return ("r2", "kendall_tau") if self.task == "regression" else ("accuracy",)

    def values(self, table: pd.DataFrame) -> np.ndarray:
        """Return the target's values for the rows of ``table`` (the zoo table or a subset)."""
        if self.name == "generalisation_gap":
            values = (table["train_acc"] - table["test_acc"]).to_numpy(dtype=np.float64)
        elif self.task == "classification":
            values = table[self.name].astype(str).to_numpy()
        else:
            values = table[self.name].to_numpy(dtype=np.float64)
        return np.log10(values) if self.transform == "log10" else values


def candidate_targets(table: pd.DataFrame) -> list[Target]:
    """Return every target the probes consider for a zoo table, before skipping.

    Regression: test_acc, epoch, generalisation_gap, and lr, weight_decay (log10 when every value is positive)
    and dropout. Classification: activation, init, optimizer, lr, weight_decay and dropout.
    """
    candidates = [Target("test_acc", "regression"), Target("epoch", "regression"),
                  Target("generalisation_gap", "regression")]
    candidates += [Target(name, "classification") for name in CATEGORICAL_HYPERPARAMETERS]
    for name in NUMERIC_HYPERPARAMETERS:
        positive = name in LOG_HYPERPARAMETERS and bool((table[name] > 0).all())
        candidates.append(Target(name, "regression", "log10" if positive else "none"))
        candidates.append(Target(name, "classification"))
    return candidates


def skip_reason(target: Target, table: pd.DataFrame) -> str | None:
    """Return why ``target`` cannot be probed on ``table``, or None when it can."""
    n_distinct = len(np.unique(target.values(table)))
    if n_distinct < 2:
        return "it has a single distinct value"
    if target.task == "classification" and target.name in NUMERIC_HYPERPARAMETERS and n_distinct > MAX_CLASSES:
        return f"{n_distinct} distinct values, more than {MAX_CLASSES} classes"
    return None


def probe_targets(table: pd.DataFrame) -> list[Target]:
    """Return the candidate targets that can be probed on ``table``, logging why each other one is skipped.

    Numeric hyperparameters are classes only with at most ``MAX_CLASSES`` distinct values, and a target with a
    single distinct value is skipped.
    """
    targets = []
    for target in candidate_targets(table):
        reason = skip_reason(target, table)
        if reason is None:
            targets.append(target)
        else:
            logger.info("skipping target %s (%s): %s", target.name, target.task, reason)
    return targets


# --- probing ------------------------------------------------------------------------------------------------------


def check_model_splits(table: pd.DataFrame) -> None:
    """Raise ValueError when a model has rows in more than one split."""
    n_splits = table.groupby("model_id")["split"].nunique()
    mixed = n_splits[n_splits > 1]
    if not mixed.empty:
        raise ValueError(
            f"{len(mixed)} model(s) have checkpoints in more than one split, e.g. {mixed.index[0]!r}: "
            "splits must be by model; rebuild the zoo table"
        )


def score(target: Target, y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """Return the target's metrics: r2 and kendall_tau for regression, accuracy for classification."""
    if target.task == "classification":
        return {"accuracy": float(accuracy_score(y_true, y_pred))}
    tau = kendalltau(y_true, y_pred).statistic if len(np.unique(y_pred)) > 1 else np.nan
    return {"r2": float(r2_score(y_true, y_pred)), "kendall_tau": float(tau)}


@dataclass
class ProbeResult:
    """Test-split metrics of one probe and its predictions for every row."""

    target: Target
    metrics: dict[str, float]
    regularisation: float  # the chosen alpha (ridge) or C (logistic)
    predictions: pd.DataFrame  # model_id, epoch, split, true, predicted


def run_probe(features: np.ndarray, table: pd.DataFrame, target: Target) -> ProbeResult:
    """Fit a probe for ``target`` on the train split, choose its regularisation on val, and score it on test.

    Parameters
    ----------
    features : ndarray of shape (n_rows, n_features)
        One row per row of ``table``.
    table : DataFrame
        model_id, epoch, split and the target's columns, one row per checkpoint, aligned with ``features``.
    target : Target
        What to predict.

    Raises ValueError when the train or test split is empty, or the train split has a single class.
    """
    if len(features) != len(table):
        raise ValueError(f"features have {len(features)} rows but the table has {len(table)}: align them first")
    check_model_splits(table)
    split = table["split"].to_numpy()
    y = target.values(table)
    train, val, test = (split == "train"), (split == "val"), (split == "test")
    for name, mask in (("train", train), ("test", test)):
        if not mask.any():
            raise ValueError(f"the zoo has no {name} models: build a zoo with more models")

    probe = RidgeProbe() if target.task == "regression" else LogisticProbe()
    # Probe fits are many small BLAS calls, which threads slow down: 3 logistic fits on (100, 848) took 0.68 s
    # with 2 OpenBLAS threads and 0.11 s with one, on a busy 2-core CPU.
    with threadpool_limits(limits=1, user_api="blas"):
        if val.any():
            probe.fit(features[train], y[train], features[val], y[val])
        else:
            logger.warning("the zoo has no val models; holding out train models to choose the regularisation")
            probe.fit(features[train], y[train], groups=table.loc[train, "model_id"].to_numpy())

    predicted = probe.predict(features)
    predictions = table.loc[:, [*KEY_COLUMNS, "split"]].reset_index(drop=True).assign(true=y, predicted=predicted)
    regularisation = probe.alpha_ if target.task == "regression" else probe.C_
    return ProbeResult(target, score(target, y[test], predicted[test]), float(regularisation), predictions)
