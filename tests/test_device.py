"""Tests for course_lib.device (CPU only: CUDA and MPS are simulated with monkeypatch)."""

from __future__ import annotations

import random
import warnings

import numpy as np
import pytest
import torch

from course_lib import device as dev


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for var in ("COURSE_DEVICE", "COURSE_FAST", "COURSE_SCALE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PYTHONHASHSEED", "0")  # restored afterwards: seed_everything sets it


@pytest.fixture
def no_accelerator(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(dev, "_mps_available", lambda: False)


@pytest.fixture
def fake_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)


def test_cpu_when_nothing_else(no_accelerator):
    assert dev.get_device() == torch.device("cpu")
    assert dev.get_device("auto") == torch.device("cpu")


def test_cuda_first_then_mps(monkeypatch, fake_cuda):
    monkeypatch.setattr(dev, "_mps_available", lambda: True)
    assert dev.get_device() == torch.device("cuda", 0)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert dev.get_device() == torch.device("mps", 0)


def test_explicit_cuda_index(fake_cuda):
    assert dev.get_device("cuda:1") == torch.device("cuda", 1)
    with pytest.warns(RuntimeWarning, match="only 2 CUDA device"):
        assert dev.get_device("cuda:5") == torch.device("cuda", 0)


def test_environment_overrides_auto_and_argument_overrides_environment(monkeypatch, fake_cuda):
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    assert dev.get_device() == torch.device("cpu")
    assert dev.get_device("cuda") == torch.device("cuda", 0)
    monkeypatch.setenv("COURSE_DEVICE", " AUTO ")
    assert dev.get_device() == torch.device("cuda", 0)


def test_unavailable_request_warns_and_falls_back(monkeypatch, no_accelerator):
    with pytest.warns(RuntimeWarning, match="CUDA is not available"):
        assert dev.get_device("cuda") == torch.device("cpu")
    monkeypatch.setenv("COURSE_DEVICE", "mps")
    with pytest.warns(RuntimeWarning, match="COURSE_DEVICE='mps'.*MPS is not available"):
        assert dev.get_device() == torch.device("cpu")


def test_invalid_device_string(monkeypatch):
    with pytest.raises(ValueError, match="'gpu please' is not a device"):
        dev.get_device("gpu please")
    monkeypatch.setenv("COURSE_DEVICE", "tpu-ish")
    with pytest.raises(ValueError, match="COURSE_DEVICE"):
        dev.get_device()


def test_real_device_is_usable():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        device = dev.get_device()
    x = torch.ones(3, device=device)
    assert x.device == device  # explicit index, so this comparison holds for cuda:0 / mps:0 too


def _draws(generator: torch.Generator):
    return (
        random.random(),
        float(np.random.rand()),
        torch.rand(3).tolist(),
        torch.rand(3, generator=generator).tolist(),
        torch.randperm(10, generator=generator).tolist(),
    )


def test_seed_everything_is_reproducible():
    first = _draws(dev.seed_everything(1234))
    second = _draws(dev.seed_everything(1234))
    third = _draws(dev.seed_everything(1235))
    assert first == second
    assert all(a != b for a, b in zip(first, third, strict=True))


def test_seed_everything_returns_seeded_cpu_generator():
    g = dev.seed_everything(7)
    assert isinstance(g, torch.Generator) and g.device.type == "cpu" and g.initial_seed() == 7
    assert torch.equal(torch.randn(4, generator=g), torch.randn(4, generator=torch.Generator().manual_seed(7)))


@pytest.mark.parametrize("seed", [-1, 2**32])
def test_seed_everything_rejects_out_of_range(seed):
    with pytest.raises(ValueError):
        dev.seed_everything(seed)


def test_seed_everything_accepts_numpy_int_rejects_float():
    assert dev.seed_everything(np.int64(3)).initial_seed() == 3
    with pytest.raises(TypeError):
        dev.seed_everything(3.0)


@pytest.mark.parametrize(
    "value,expected",
    [(None, False), ("", False), ("0", False), ("no", False), ("false", False),
     ("1", True), ("true", True), ("TRUE", True), ("yes", True), (" Yes ", True)],
)
def test_fast_mode(monkeypatch, no_accelerator, value, expected):
    if value is not None:
        monkeypatch.setenv("COURSE_FAST", value)
    assert dev.fast_mode() is expected
    assert dev.scale() == ("fast" if expected else "laptop")


def test_scale_follows_the_hardware_without_settings(monkeypatch, no_accelerator):
    assert dev.scale() == "laptop" and not dev.fast_mode()
    monkeypatch.setattr(dev, "_mps_available", lambda: True)  # Apple GPUs are not CUDA: still laptop
    assert dev.scale() == "laptop"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert dev.scale() == "full" and not dev.fast_mode()


@pytest.mark.parametrize("value,expected", [("fast", "fast"), ("laptop", "laptop"), ("full", "full"),
                                            (" Laptop ", "laptop"), ("FULL", "full")])
def test_course_scale_wins_over_course_fast_and_the_hardware(monkeypatch, no_accelerator, value, expected):
    monkeypatch.setenv("COURSE_SCALE", value)
    assert dev.scale() == expected
    monkeypatch.setenv("COURSE_FAST", "1")
    assert dev.scale() == expected and dev.fast_mode() is (expected == "fast")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert dev.scale() == expected


def test_empty_course_scale_is_unset(monkeypatch, fake_cuda):
    monkeypatch.setenv("COURSE_SCALE", "  ")
    assert dev.scale() == "full"
    monkeypatch.setenv("COURSE_FAST", "yes")
    assert dev.scale() == "fast"


@pytest.mark.parametrize("value", ["huge", "gpu", "1", "fast,laptop"])
def test_invalid_course_scale_names_the_allowed_values(monkeypatch, value):
    monkeypatch.setenv("COURSE_SCALE", value)
    with pytest.raises(ValueError) as info:
        dev.scale()
    message = str(info.value)
    assert repr(value) in message and all(name in message for name in ("fast", "laptop", "full"))
    with pytest.raises(ValueError):
        dev.fast_mode()
    assert dev.SCALES == ("fast", "laptop", "full")


def test_describe_device_cpu():
    text = dev.describe_device("cpu")
    assert text.startswith("cpu (") and "threads" in text and torch.__version__ in text
    assert dev.describe_device(torch.device("cpu")) == text


def test_describe_device_default(no_accelerator):
    assert dev.describe_device().startswith("cpu")


def test_describe_device_cuda(monkeypatch, fake_cuda):
    class Props:
        name, total_memory, major, minor = "NVIDIA Test GPU", 80 * 2**30, 9, 0

    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index: Props)
    text = dev.describe_device("cuda")
    assert text.startswith("cuda:0 (NVIDIA Test GPU, 80.0 GiB, compute capability 9.0)")
    assert "torch" in text


def test_describe_device_mps():
    assert dev.describe_device("mps").startswith("mps:0 (Apple GPU")


@pytest.mark.parametrize("value,expected", [(None, False), ("1", True), ("0", False), ("true", False), ("", False)])
def test_autograde_mode_is_course_autograde_equal_to_1(monkeypatch, value, expected):
    if value is None:
        monkeypatch.delenv("COURSE_AUTOGRADE", raising=False)
    else:
        monkeypatch.setenv("COURSE_AUTOGRADE", value)
    assert dev.autograde_mode() is expected
