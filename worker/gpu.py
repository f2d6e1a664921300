"""Where a model runs: choosing the device, precision and quantization, and GPU memory.

`AUDIOCHAT_DEVICE` is `cuda` (or `cuda:N`), `cpu`, or `auto` (the model is spread over GPU and
CPU memory by accelerate, for cards too small to hold it whole); unset, it is `cuda` when a GPU
is visible, else `cpu`. A worker pinned to one GPU sees it as `cuda:0` through
`CUDA_VISIBLE_DEVICES`. torch is imported only inside the functions that need it, so workers
of models without torch (echo) never load it.
"""

from __future__ import annotations

import gc
import importlib.util
import os
import sys
from typing import Any, Literal

Quantization = Literal["none", "8bit", "4bit"]


class DeviceUnavailable(RuntimeError):
    """The configured device or quantization cannot be used on this machine."""


def choose_device(setting: str | None) -> str:
    """The device a model loads on: `cuda:N`, `cpu` or `auto`, checked against the machine."""
    import torch

    if not setting:
        return "cuda:0" if torch.cuda.is_available() else "cpu"
    if setting == "cpu":
        return "cpu"
    if setting == "auto" or setting.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceUnavailable(f"AUDIOCHAT_DEVICE={setting} but no CUDA device is visible")
        return "cuda:0" if setting == "cuda" else setting
    raise DeviceUnavailable(f"unknown AUDIOCHAT_DEVICE {setting!r}: use cuda, cuda:N, cpu or auto")


def uses_gpu(device: str) -> bool:
    return device != "cpu"


def torch_dtype(device: str) -> Any:
    """bf16 on GPU (the checkpoints' own precision); float32 on CPU, where bf16 is slow."""
    import torch

    return torch.bfloat16 if uses_gpu(device) else torch.float32


def device_map(device: str) -> str | dict[str, str]:
    """`from_pretrained`'s device_map: everything on one device, or spread by accelerate."""
    return "auto" if device == "auto" else {"": device}


def quantization_config(quantization: Quantization, device: str) -> Any | None:
    """A bitsandbytes config for 8-bit or 4-bit weights (GPU only), or None for full weights."""
    if quantization == "none":
        return None
    if not uses_gpu(device):
        raise DeviceUnavailable(f"{quantization} loading needs a CUDA device (bitsandbytes)")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise DeviceUnavailable(
            f"{quantization} loading needs bitsandbytes: install audiochat[gpu] in this worker"
        )
    import torch
    from transformers import BitsAndBytesConfig

    if quantization == "8bit":
        # With `auto`, layers that do not fit on the card stay on the CPU in float32.
        return BitsAndBytesConfig(  # type: ignore[no-untyped-call]
            load_in_8bit=True, llm_int8_enable_fp32_cpu_offload=device == "auto"
        )
    return BitsAndBytesConfig(  # type: ignore[no-untyped-call]
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_compute_dtype=torch.bfloat16,
        bnb_4bit_use_double_quant=True,
    )


def describe_placement(model: Any, device: str) -> str:
    """Where a loaded model's weights are, for the heartbeat: `cuda:0`, `cpu`, `cuda:0+cpu`."""
    placement = getattr(model, "hf_device_map", None)
    if device != "auto" or not isinstance(placement, dict):
        return device
    names = {
        f"cuda:{where}" if isinstance(where, int) else str(where) for where in placement.values()
    }
    return "+".join(sorted(names, key=lambda name: (not name.startswith("cuda"), name)))


def memory_in_use(device: str) -> int | None:
    """Bytes the model holds: GPU memory allocated by torch, or this process's resident memory."""
    if uses_gpu(device):
        torch = sys.modules.get("torch")
        if torch is None or not torch.cuda.is_available():
            return None
        return sum(int(torch.cuda.memory_allocated(i)) for i in range(torch.cuda.device_count()))
    try:
        with open("/proc/self/statm") as statm:
            resident_pages = int(statm.read().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return resident_pages * os.sysconf("SC_PAGE_SIZE")


def free_cached_memory() -> None:
    """Give the GPU memory torch caches after a stage back, so a long-lived worker does not creep.

    Does nothing in a process that has not used CUDA, where there is nothing to give back.
    """
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_initialized():
        return
    # Tensors kept alive by reference cycles (a failed generate thread's traceback) go first.
    gc.collect()
    torch.cuda.empty_cache()
