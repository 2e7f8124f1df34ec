import numpy as np
import pytest
import torch

from hyperrep.datasets import load_dataset, resize


def test_digits_contents():
    data = load_dataset("digits")
    x = torch.cat([data.x_train, data.x_val, data.x_test])
    y = torch.cat([data.y_train, data.y_val, data.y_test])
    assert x.shape == (1797, 1, 8, 8)
    assert data.n_classes == 10
    assert x.min().item() == 0.0
    assert x.max().item() == 1.0
    assert torch.bincount(y).min().item() >= 174


def test_mnist_5k_contents():
    data = load_dataset("mnist-5k")
    x = torch.cat([data.x_train, data.x_val, data.x_test])
    y = torch.cat([data.y_train, data.y_val, data.y_test])
    assert x.shape == (5000, 1, 28, 28)
    assert torch.bincount(y).tolist() == [500] * 10
    assert x.min().item() == 0.0
    assert x.max().item() == 1.0
    # Digit strokes are bright on a dark background: most pixels are 0.
    assert (x == 0).float().mean().item() > 0.7


def test_mnist_5k_split_is_shuffled_and_stratified():
    data = load_dataset("mnist-5k")
    assert torch.bincount(data.y_test).tolist() == [75] * 10
    assert torch.bincount(data.y_train[:100]).count_nonzero().item() == 10


def test_split_is_seeded():
    a, b, c = load_dataset("digits", seed=3), load_dataset("digits", seed=3), load_dataset("digits", seed=4)
    assert torch.equal(a.x_test, b.x_test)
    assert not torch.equal(a.x_test, c.x_test)


def test_npz_dataset(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "toy.npz"
    np.savez(path, x=rng.integers(0, 256, size=(200, 12, 12)).astype(np.uint8), y=np.repeat(np.arange(4), 50))
    data = load_dataset(str(path))
    assert data.input_shape == (1, 12, 12)
    assert data.n_classes == 4
    assert data.x_train.max().item() <= 1.0


def test_npz_missing_array(tmp_path):
    path = tmp_path / "bad.npz"
    np.savez(path, images=np.zeros((10, 8, 8)))
    with pytest.raises(ValueError, match="needs 'x' and 'y'"):
        load_dataset(str(path))


def test_npz_object_array_rejected(tmp_path):
    path = tmp_path / "pickled.npz"
    np.savez(path, x=np.array([object()] * 10, dtype=object), y=np.zeros(10, dtype=int))
    with pytest.raises(ValueError, match="object arrays"):
        load_dataset(str(path))


def test_npz_nan_rejected(tmp_path):
    path = tmp_path / "nan.npz"
    x = np.zeros((40, 8, 8), dtype=np.float32)
    x[3, 2, 2] = np.nan
    np.savez(path, x=x, y=np.repeat([0, 1], 20))
    with pytest.raises(ValueError, match="NaN"):
        load_dataset(str(path))


def test_unknown_dataset():
    with pytest.raises(ValueError, match="digits, mnist-5k"):
        load_dataset("cifar")


def test_resize_to_28():
    data = load_dataset("digits")
    assert resize(data.x_test[:5], 28).shape == (5, 1, 28, 28)
