"""Linear probes on synthetic features with a known linear relation or labelling, and on a real digits zoo."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone

from hyperrep.analysis.features import weight_statistics
from hyperrep.analysis.probes import (
    LogisticProbe, RidgeProbe, Target, check_model_splits, probe_targets, run_probe,
)


@pytest.fixture
def linear_data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 12)) * rng.uniform(0.1, 10.0, size=12)  # features on different scales
    coef = rng.normal(size=12)
    y = X @ coef + 3.0 + rng.normal(scale=0.01, size=400)
    return X, y


def test_ridge_recovers_linear_relation(linear_data):
    X, y = linear_data
    probe = RidgeProbe().fit(X[:200], y[:200], X[200:300], y[200:300])
    r2 = probe.score(X[300:], y[300:])
    assert r2 > 0.99


def test_ridge_chooses_alpha_from_grid(linear_data):
    X, y = linear_data
    probe = RidgeProbe(alphas=(1e-3, 1.0, 1e3)).fit(X[:200], y[:200], X[200:300], y[200:300])
    assert probe.alpha_ in (1e-3, 1.0, 1e3)
    assert probe.val_scores_.shape == (3,)
    assert probe.val_scores_[0] >= probe.val_scores_[2]


def test_ridge_scores_match_single_fits(linear_data):
    from sklearn.linear_model import Ridge
    from sklearn.metrics import r2_score

    X, y = linear_data
    y = y + np.random.default_rng(2).normal(scale=5.0, size=len(y))  # noise, so the alphas score differently
    alphas = (1e-3, 1.0, 30.0, 1e3)
    probe = RidgeProbe(alphas=alphas).fit(X[:200], y[:200], X[200:300], y[200:300])
    scaled, scaled_val = probe.scaler_.transform(X[:200]), probe.scaler_.transform(X[200:300])
    expected = [r2_score(y[200:300], Ridge(alpha=a).fit(scaled, y[:200]).predict(scaled_val)) for a in alphas]
    np.testing.assert_allclose(probe.val_scores_, expected, rtol=1e-6)
    assert len(set(np.round(expected, 6))) > 1


def test_ridge_without_validation_set(linear_data):
    X, y = linear_data
    groups = np.repeat(np.arange(40), 10)
    probe = RidgeProbe().fit(X, y, groups=groups)
    assert probe.score(X, y) > 0.99


def test_ridge_is_a_clonable_estimator(linear_data):
    X, y = linear_data
    probe = RidgeProbe(alphas=(0.1, 1.0), random_state=3)
    assert clone(probe).get_params() == probe.get_params()
    assert not hasattr(probe, "alpha_")
    probe.fit(X, y)
    assert probe.n_features_in_ == 12


def test_ridge_rejects_wrong_width(linear_data):
    X, y = linear_data
    probe = RidgeProbe().fit(X, y)
    with pytest.raises(ValueError, match="features"):
        probe.predict(X[:, :5])


def test_classifier_separates_labels():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 6))
    labels = np.where(X[:, 0] + 0.5 * X[:, 3] > 0, "relu", "tanh")
    probe = LogisticProbe().fit(X[:150], labels[:150], X[150:225], labels[150:225])
    assert probe.score(X[225:], labels[225:]) > 0.95
    assert set(probe.classes_) == {"relu", "tanh"}
    assert probe.C_ in probe.Cs


def test_classifier_path_matches_single_fits():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(4)
    X = rng.normal(size=(300, 6))
    labels = np.where(X[:, 0] + rng.normal(scale=1.0, size=300) > 0, "relu", "tanh")
    Cs = (1e-3, 1e-2, 1.0, 100.0)
    probe = LogisticProbe(Cs=Cs).fit(X[:150], labels[:150], X[150:225], labels[150:225])
    scaled, scaled_val = probe.scaler_.transform(X[:150]), probe.scaler_.transform(X[150:225])
    expected = [(LogisticRegression(C=c, max_iter=1000).fit(scaled, labels[:150]).predict(scaled_val)
                 == labels[150:225]).mean() for c in Cs]
    np.testing.assert_allclose(probe.val_scores_, expected)


def test_classifier_rejects_single_class():
    X = np.zeros((10, 2))
    with pytest.raises(ValueError, match="single class"):
        LogisticProbe().fit(X, ["adam"] * 10)


def test_targets_of_digits_zoo(digits_zoo):
    targets = {(t.name, t.task): t for t in probe_targets(digits_zoo.table)}
    assert ("test_acc", "regression") in targets
    assert ("activation", "classification") in targets
    assert targets[("lr", "regression")].transform == "log10"
    # The default zoo draws weight_decay from {0, 1e-4, 1e-3}: zero has no log.
    assert targets[("weight_decay", "regression")].transform == "none"


def test_targets_skip_constant(digits_zoo):
    table = digits_zoo.table.assign(optimizer="adam")
    names = {(t.name, t.task) for t in probe_targets(table)}
    assert ("optimizer", "classification") not in names


def test_probe_on_digits_zoo(digits_zoo):
    table = digits_zoo.table
    features = weight_statistics(digits_zoo, table)
    result = run_probe(features, table, Target("epoch", "regression"))
    assert set(result.metrics) == {"r2", "kendall_tau"}
    assert np.isfinite(result.metrics["r2"])
    assert -1.0 <= result.metrics["kendall_tau"] <= 1.0
    assert len(result.predictions) == len(table)


def test_probe_predictions_split_by_model(digits_zoo):
    table = digits_zoo.table
    result = run_probe(weight_statistics(digits_zoo, table), table, Target("activation", "classification"))
    splits_per_model = result.predictions.groupby("model_id")["split"].nunique()
    assert (splits_per_model == 1).all()
    assert set(result.predictions["split"]) == {"train", "val", "test"}


def test_mixed_split_rejected(digits_zoo):
    table = digits_zoo.table.copy()
    table.loc[table.index[0], "split"] = "test" if table.loc[table.index[0], "split"] != "test" else "train"
    with pytest.raises(ValueError, match="more than one split"):
        check_model_splits(table)
