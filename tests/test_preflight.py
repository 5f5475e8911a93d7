"""What train.py settles before weights load, as plain functions: the precision plan, model-state arithmetic,
and the weights' identity from file metadata."""

import os

import pytest
import torch

from spot.errors import ConfigError
from spot.models import weights_key
from spot.preflight import _check_fits, load_dtype, state_bytes_per_device

GB = 2**30


@pytest.mark.parametrize("model_dtype, precision, deepspeed, lora, want", [
    ("bfloat16", "bf16-mixed", False, False, "float32"),   # fp32 master weights, bf16 autocast
    ("bfloat16", "bf16", False, False, "float32"),          # Lightning's short spelling
    ("bfloat16", "bf16-mixed", True, False, "bfloat16"),   # DeepSpeed keeps its own fp32 masters
    ("bfloat16", "bf16-true", True, False, "bfloat16"),
    ("bfloat16", "32-true", False, True, "bfloat16"),      # LoRA: the base is frozen, adapters are fp32
    ("float32", "32-true", False, False, "float32"),
    ("float32", "bf16-mixed", True, False, "float32"),
    ("float16", "16-mixed", False, False, "float32"),
])
def test_the_weights_load_in_a_dtype_that_trains(model_dtype, precision, deepspeed, lora, want):
    assert load_dtype(model_dtype, precision, deepspeed, lora) == want


@pytest.mark.parametrize("model_dtype, precision, deepspeed", [
    ("bfloat16", "32-true", False), ("bfloat16", 32, False), ("bfloat16", "bf16-true", False),
    ("bfloat16", "32-true", True), ("float16", "16-true", False), ("bfloat16", "16-mixed", False),
])
def test_combinations_that_would_not_train_are_refused(model_dtype, precision, deepspeed):
    with pytest.raises(ConfigError, match=f"model.dtype={model_dtype} with trainer.precision="):
        load_dtype(model_dtype, precision, deepspeed)


def test_model_state_arithmetic_for_qwen3_8b():
    """ZeRO paper accounting for 8.19B parameters: 16 bytes each replicated, sharded over 8 GPUs under ZeRO."""
    n = 8_190_000_000
    one_gpu = state_bytes_per_device(n, n, 4, 1, None, False, False)  # fp32 masters: 4 + 4 grads + 8 Adam
    assert one_gpu == 16 * n
    zero2 = state_bytes_per_device(n, n, 2, 8, 2, False, False)
    assert zero2 == pytest.approx(n * (2 + 2 / 8 + 12 / 8))
    zero3 = state_bytes_per_device(n, n, 2, 8, 3, False, False)
    assert zero3 == pytest.approx(n * 16 / 8)
    lora = state_bytes_per_device(n, 40_000_000, 2, 1, None, False, False)  # bf16 base + fp32 adapters
    assert lora == pytest.approx(2 * n + 40e6 * (2 + 8 + 4))
    with pytest.raises(ConfigError, match="8.19B parameters need 122.0 GiB"):
        _check_fits("Qwen/Qwen3-8B", n, one_gpu, 80 * GB, "a H100 has", 1)
    for fits in (zero2, zero3, lora):
        _check_fits("Qwen/Qwen3-8B", n, fits, 80 * GB, "a H100 has", 1)
    with pytest.raises(ConfigError, match="per process x 2 processes"):
        _check_fits("m", n, 0.5 * 80 * GB, 80 * GB, "this machine's RAM is", 2)


def test_weights_key_comes_from_file_metadata(tmp_path):
    from safetensors.torch import save_file

    f = tmp_path / "model.safetensors"
    save_file({"w": torch.zeros(1000)}, f)
    key = weights_key(str(tmp_path))
    assert key == weights_key(str(tmp_path))  # stable
    save_file({"w": torch.ones(1000)}, f)  # re-saved: a new mtime
    assert weights_key(str(tmp_path)) != key
    key, stat = weights_key(str(tmp_path)), f.stat()
    save_file({"v": torch.ones(1000)}, f)  # same size, another tensor name
    os.utime(f, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert f.stat().st_size == stat.st_size and weights_key(str(tmp_path)) != key  # the header tells them apart
    # the weights themselves are not read: bytes changed in place, size and mtime kept, give the same key
    key, stat = weights_key(str(tmp_path)), f.stat()
    data = bytearray(f.read_bytes())
    data[-1] ^= 0xFF
    f.write_bytes(bytes(data))
    os.utime(f, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert weights_key(str(tmp_path)) == key


def test_weights_key_of_a_hub_model_is_its_commit(tmp_path):
    class Config:
        _commit_hash = "0123abcd"

    assert weights_key("Qwen/Qwen3-8B", Config()) == "hub:Qwen/Qwen3-8B@0123abcd"
    assert weights_key("Qwen/Qwen3-8B") is None  # no commit known: nothing is cached
    assert weights_key(str(tmp_path)) is None  # a directory without weight files
