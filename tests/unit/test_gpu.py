"""Choosing where a model runs, and reading and freeing its memory."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from worker.gpu import (
    DeviceUnavailable,
    choose_device,
    describe_placement,
    device_map,
    free_cached_memory,
    memory_in_use,
    quantization_config,
    torch_dtype,
)

HAS_CUDA = torch.cuda.is_available()
no_gpu = pytest.mark.skipif(HAS_CUDA, reason="checks the behaviour on a machine without a GPU")


class Placed:
    def __init__(self, placement: dict[str, Any]) -> None:
        self.hf_device_map = placement


@no_gpu
def test_unset_device_is_the_cpu_without_a_gpu() -> None:
    assert choose_device(None) == "cpu"
    assert choose_device("") == "cpu"


@no_gpu
@pytest.mark.parametrize("setting", ["cuda", "cuda:1", "auto"])
def test_asking_for_a_gpu_that_is_not_there_fails_clearly(setting: str) -> None:
    with pytest.raises(DeviceUnavailable, match="no CUDA device"):
        choose_device(setting)


def test_an_unknown_device_is_refused() -> None:
    with pytest.raises(DeviceUnavailable, match="unknown AUDIOCHAT_DEVICE"):
        choose_device("tpu")


def test_cpu_is_always_available() -> None:
    assert choose_device("cpu") == "cpu"


def test_precision_is_bf16_on_a_gpu_and_float32_on_the_cpu() -> None:
    assert torch_dtype("cuda:0") is torch.bfloat16
    assert torch_dtype("auto") is torch.bfloat16
    assert torch_dtype("cpu") is torch.float32


def test_device_map_pins_one_device_or_lets_accelerate_spread() -> None:
    assert device_map("cuda:0") == {"": "cuda:0"}
    assert device_map("cpu") == {"": "cpu"}
    assert device_map("auto") == "auto"


def test_full_weights_need_no_quantization_config() -> None:
    assert quantization_config("none", "cpu") is None


@pytest.mark.parametrize("quantization", ["8bit", "4bit"])
def test_quantized_weights_need_a_gpu(quantization: Any) -> None:
    with pytest.raises(DeviceUnavailable, match="needs a CUDA device"):
        quantization_config(quantization, "cpu")


def test_placement_names_every_device_of_a_spread_model() -> None:
    spread = Placed({"audio_tower": 0, "language_model.layers.0": 0, "lm_head": "cpu"})
    assert describe_placement(spread, "auto") == "cuda:0+cpu"
    assert describe_placement(Placed({"": 0}), "cuda:0") == "cuda:0"
    assert describe_placement(object(), "cpu") == "cpu"


def test_cpu_memory_is_this_processes_resident_memory() -> None:
    before = memory_in_use("cpu")
    assert before is not None and before > 0
    block = bytearray(64 * 1024 * 1024)
    block[::4096] = b"x" * len(block[::4096])  # touch every page so it is resident
    after = memory_in_use("cpu")
    assert after is not None and after >= before + 48 * 1024 * 1024
    del block


@no_gpu
def test_freeing_without_cuda_does_nothing() -> None:
    free_cached_memory()
    assert not torch.cuda.is_initialized()


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA device")
def test_cached_gpu_memory_is_given_back() -> None:
    assert choose_device(None) == "cuda:0"
    block = torch.empty(256 * 1024 * 1024, dtype=torch.uint8, device="cuda")
    del block
    assert torch.cuda.memory_reserved() >= 256 * 1024 * 1024
    free_cached_memory()
    assert torch.cuda.memory_reserved() < 256 * 1024 * 1024
    used = memory_in_use("cuda:0")
    assert used is not None and used == torch.cuda.memory_allocated()
