import pandas as pd
import pytest
import torch

from hyperrep.generate.novelty import ZooReference, aligned_distances, permute_neurons


@pytest.fixture(scope="module")
def reference(digits_zoo):
    return ZooReference.from_zoo(digits_zoo)


@pytest.fixture(scope="module")
def member(digits_zoo):
    model_id = digits_zoo.model_ids()[3]
    return model_id, digits_zoo.state_dict(model_id, 4)


def _noisy(state_dict, scale, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return {k: v + scale * v.std() * torch.randn(v.shape, generator=generator) for k, v in state_dict.items()}


def test_permutation_preserves_outputs(digits_zoo, member):
    model_id, state_dict = member
    permuted = permute_neurons(state_dict, torch.Generator().manual_seed(0))
    original = digits_zoo.load_module(model_id, 4)
    moved = digits_zoo.build_module(digits_zoo.hyperparameters(model_id)["activation"])
    moved.load_state_dict(permuted)
    x = digits_zoo.dataset.x_test[:32]
    assert torch.allclose(original(x), moved.eval()(x), atol=1e-5)


def test_copy_has_distance_zero(reference, member):
    model_id, state_dict = member
    nearest = reference.nearest([state_dict]).iloc[0]
    assert nearest["distance"] == pytest.approx(0.0, abs=1e-5)
    assert (nearest["nearest_model_id"], nearest["nearest_epoch"]) == (model_id, 4)


def test_permuted_copy_has_distance_zero(reference, member):
    model_id, state_dict = member
    permuted = permute_neurons(state_dict, torch.Generator().manual_seed(1))
    plain = sum((permuted[k] - state_dict[k]).pow(2).sum() for k in state_dict).sqrt().item()
    nearest = reference.nearest([permuted]).iloc[0]
    assert plain > 0.1
    assert nearest["distance"] == pytest.approx(0.0, abs=1e-4)
    assert nearest["nearest_model_id"] == model_id


def test_distance_grows_with_noise(member):
    _, state_dict = member
    stacked = {k: v[None] for k, v in state_dict.items()}
    distances = [aligned_distances(_noisy(state_dict, scale), stacked)[0] for scale in (0.01, 0.1, 0.5)]
    assert 0 < distances[0] < distances[1] < distances[2]


def test_typical_distance_is_positive(reference, digits_zoo):
    probes = pd.DataFrame({"model_id": digits_zoo.model_ids()[:4], "epoch": 4})
    assert reference.typical_distance(probes) > 0


def test_typical_distance_excludes_own_model(reference, digits_zoo):
    model_id = digits_zoo.model_ids()[0]
    state_dict = digits_zoo.state_dict(model_id, 4)
    nearest = reference.nearest([state_dict], exclude_model=[model_id]).iloc[0]
    assert nearest["nearest_model_id"] != model_id
    assert nearest["distance"] > 0


def test_nan_weights_have_no_nearest(reference, member):
    _, state_dict = member
    broken = {k: v.clone() for k, v in state_dict.items()}
    broken["fc1.weight"][0, 0] = float("nan")
    nearest = reference.nearest([broken, state_dict])
    assert pd.isna(nearest["nearest_model_id"].iloc[0])
    assert pd.isna(nearest["distance"].iloc[0])
    assert nearest["distance"].iloc[1] == pytest.approx(0.0, abs=1e-5)


def test_cached_reference_is_reused_until_table_changes(digits_zoo):
    first = ZooReference.cached(digits_zoo)
    assert ZooReference.cached(digits_zoo) is first
    assert first.keys.equals(ZooReference.from_zoo(digits_zoo).keys)


def test_cached_reference_follows_new_table(digits_zoo, tmp_path):
    import shutil

    from hyperrep.workspace import Workspace
    from hyperrep.zoo.store import Zoo

    workspace = Workspace(tmp_path / "copy")
    shutil.copytree(digits_zoo.workspace.zoo_dir, workspace.zoo_dir)
    zoo = Zoo(workspace)
    before = ZooReference.cached(zoo)
    table = zoo.table
    zoo.assemble_table()  # rewrites table.parquet: a new modification time
    assert ZooReference.cached(zoo) is not before
    assert len(ZooReference.cached(zoo)) == len(before) == int((table["status"] == "ok").sum())


def test_one_model_zoo_has_no_typical_distance(digits_zoo):
    [first, *_] = digits_zoo.model_ids()
    reference = ZooReference.from_zoo(digits_zoo, model_ids=[first])
    probes = reference.keys.head(2)
    assert pd.isna(reference.typical_distance(probes))
