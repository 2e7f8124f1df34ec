"""The device choice and the CPU thread limit."""

import pytest
import torch

from hyperrep.device import cpu_threads, get_device


def test_env_forces_cpu(monkeypatch):
    monkeypatch.setenv("HYPERREP_DEVICE", "cpu")
    assert get_device() == torch.device("cpu")


def test_unknown_device_is_named(monkeypatch):
    monkeypatch.setenv("HYPERREP_DEVICE", "tpu")
    with pytest.raises(ValueError, match="'tpu' is not supported"):
        get_device()


def test_cpu_threads_limits_and_restores():
    before = torch.get_num_threads()
    with cpu_threads("cpu", n=1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_cpu_threads_restores_after_error():
    before = torch.get_num_threads()
    with pytest.raises(RuntimeError):
        with cpu_threads(torch.device("cpu")):
            raise RuntimeError("inside")
    assert torch.get_num_threads() == before
