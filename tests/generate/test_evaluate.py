import pytest

from hyperrep.generate.evaluate import (
    Recipe, accuracies, anchor_recipe, build_modules, finetune, random_init_state_dicts, transfer_dataset,
)
from hyperrep.workspace import Workspace, write_json
from hyperrep.zoo.store import Zoo


def _recipe():
    return Recipe(activation="relu", init="kaiming_uniform", optimizer="adam", lr=1e-2, weight_decay=0.0,
                  dropout=0.0, batch_size=64)


def test_finetune_improves_random_init(digits_zoo):
    state_dicts = random_init_state_dicts(digits_zoo, 1, "kaiming_uniform", seed=0)
    curve = finetune(digits_zoo, state_dicts, _recipe(), epochs=2)
    assert curve["test_acc"].iloc[2] > curve["test_acc"].iloc[0] + 0.2


def test_finetune_is_seeded(digits_zoo):
    state_dicts = random_init_state_dicts(digits_zoo, 1, "kaiming_uniform", seed=0)
    first = finetune(digits_zoo, state_dicts, _recipe(), epochs=1, seed=4)
    second = finetune(digits_zoo, state_dicts, _recipe(), epochs=1, seed=4)
    assert first.equals(second)


def test_zoo_member_accuracy_matches_table(digits_zoo):
    model_id = digits_zoo.model_ids()[0]
    activation = digits_zoo.hyperparameters(model_id)["activation"]
    modules = build_modules(digits_zoo, [digits_zoo.state_dict(model_id, 4)], activation)
    row = digits_zoo.table.query("model_id == @model_id and epoch == 4").iloc[0]
    assert accuracies(modules, digits_zoo.dataset)[0] == pytest.approx(row["test_acc"], abs=1e-6)


def test_anchor_recipe_takes_majority(digits_zoo):
    table = digits_zoo.table[digits_zoo.table["epoch"] == 4]
    recipe = anchor_recipe(digits_zoo, table[["model_id", "epoch"]])
    expected = table["activation"].value_counts()
    assert expected[recipe.activation] == expected.max()


def test_transfer_resizes_to_zoo_input(digits_zoo):
    data = transfer_dataset(digits_zoo)
    assert data.input_shape == digits_zoo.dataset.input_shape
    assert data.name.startswith("mnist-5k")


def test_transfer_without_pair_rejected(digits_zoo, tmp_path):
    import numpy as np

    path = tmp_path / "own.npz"
    rng = np.random.default_rng(0)
    np.savez(path, x=rng.random((40, 8, 8)).astype("float32"), y=np.arange(40) % 2)
    workspace = Workspace(tmp_path / "ws")
    config = dict(digits_zoo.config.__dict__, dataset=str(path))
    write_json(workspace.zoo_dir / "config.json", {"config": config})
    with pytest.raises(ValueError, match="no transfer pair"):
        transfer_dataset(Zoo(workspace))
