"""Bit-exact comparison of mcaconv's cast kernels with torch's Tensor.to() on CPU.

Runs the mcaconv-cast-check binary (found in $MCACONV_BUILD_DIR, default <repo>/build) over every
bf16 and f16 bit pattern and over 10+ million f32 values, in all directions among float32,
bfloat16 and float16, once with the default kernel and once with MCACONV_CAST_KERNEL=portable.
"""

import os
import pathlib
import subprocess

import numpy as np
import pytest
import torch

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
BUILD_DIR = pathlib.Path(os.environ.get("MCACONV_BUILD_DIR", REPO_ROOT / "build"))
if not BUILD_DIR.is_absolute():
    BUILD_DIR = REPO_ROOT / BUILD_DIR
CAST_CHECK = BUILD_DIR / "mcaconv-cast-check"

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
BITS = {"float32": torch.int32, "bfloat16": torch.int16, "float16": torch.int16}
KERNELS = ["default", "portable"]



@pytest.fixture(autouse=True, scope="module")
def _cast_check_built():
    assert CAST_CHECK.exists(), f"{CAST_CHECK} not built (build the mcaconv-cast-check target)"


def _require_vector_torch():
    # mcaconv follows torch's vectorized x86 kernels; torch's scalar fallback (no AVX2) writes
    # different NaN bits for f32->bf16 and bf16->f16, so comparing against it would be wrong.
    capability = torch.backends.cpu.get_cpu_capability()
    if capability not in ("AVX2", "AVX512"):
        pytest.skip(f"torch CPU capability {capability}: NaN conventions differ from AVX2")


def _f32_from_bits(bits):
    return torch.from_numpy(np.asarray(bits, dtype=np.uint32).view(np.int32)).view(torch.float32)


def _f32_specials():
    exact = [
        0x00000000, 0x80000000, 0x00000001, 0x80000001, 0x007FFFFF, 0x00800000,  # f32 subnormals
        0x7F800000, 0xFF800000, 0x7F7FFFFF, 0xFF7FFFFF,  # inf, max finite
        0x7FC00000, 0xFFC00000, 0x7F800001, 0xFF800001, 0x7FA00000, 0x7FBFFFFF,  # NaN payloads
        0x7FFFFFFF, 0xFFFFFFFF, 0x7FC00001, 0x7F802000, 0x7F801FFF, 0xFFD23456,
        0x477FE000, 0x477FEFFF, 0x477FF000, 0x477FF001, 0x47800000,  # f16 max-finite boundary
        0x7F7F7FFF, 0x7F7F8000, 0x7F7F8001, 0x7F7EFFFF,  # bf16 max-finite boundary
        0x33000000, 0x33000001, 0x32FFFFFF, 0x33800000, 0x33C00000, 0x34400000,  # f16 subnormals
        0x387FC000, 0x387FE000, 0x387FF000, 0x38800000, 0x38801000, 0x38803000,
        0x3F808000, 0x3F818000, 0x3F800001, 0x3F801000, 0x3F803000,  # ties at 1.0
    ]
    rng = np.random.default_rng(1)
    # Every NaN payload class: random mantissas with the all-ones exponent, both signs.
    nans = (rng.integers(1, 1 << 23, 20000, dtype=np.uint32) | np.uint32(0x7F800000)) | (
        rng.integers(0, 2, 20000, dtype=np.uint32) << np.uint32(31))
    return np.concatenate([np.array(exact, dtype=np.uint32), nans])


def _f32_inputs():
    rng = np.random.default_rng(2024)
    n = 2_000_000
    random_bits = rng.integers(0, 1 << 32, 4 * n, dtype=np.uint32)
    sign = rng.integers(0, 2, n, dtype=np.uint32) << np.uint32(31)
    # Exponents 94..146 cover f16 zero-rounding, subnormals, normals and overflow.
    exponent = rng.integers(94, 147, n, dtype=np.uint32) << np.uint32(23)
    mantissa_hi = rng.integers(0, 1 << 10, n, dtype=np.uint32) << np.uint32(13)
    low = rng.choice(np.array([0x1000, 0x0FFF, 0x1001, 0x0000, 0x1FFF], dtype=np.uint32), n)
    f16_ties = sign | exponent | mantissa_hi | low
    bf16_mantissa = rng.integers(0, 1 << 7, n, dtype=np.uint32) << np.uint32(16)
    bf16_low = rng.choice(np.array([0x8000, 0x7FFF, 0x8001, 0x0000], dtype=np.uint32), n)
    bf16_exponent = rng.integers(0, 256, n, dtype=np.uint32) << np.uint32(23)
    bf16_ties = sign | bf16_exponent | bf16_mantissa | bf16_low
    scales = rng.choice(np.array([1e-8, 1e-6, 1e-3, 1.0, 1e3, 6e4], dtype=np.float32), n)
    realistic = (rng.standard_normal(n, dtype=np.float32) * scales).view(np.uint32)
    parts = [_f32_specials(), random_bits, f16_ties, bf16_ties, realistic]
    return _f32_from_bits(np.concatenate(parts))


@pytest.fixture(scope="module")
def inputs():
    all16 = torch.arange(-32768, 32768, dtype=torch.int32).to(torch.int16)
    return {
        "float32": _f32_inputs(),
        "bfloat16": all16.view(torch.bfloat16),
        "float16": all16.view(torch.float16),
    }


def _run_cast_check(src, dst, in_path, out_path, kernel):
    env = dict(os.environ)
    env.pop("MCACONV_CAST_KERNEL", None)
    if kernel == "portable":
        env["MCACONV_CAST_KERNEL"] = "portable"
    subprocess.run([str(CAST_CHECK), src, dst, str(in_path), str(out_path)], env=env, check=True)


def test_kernel_selection_env_var():
    env = dict(os.environ, MCACONV_CAST_KERNEL="portable")
    out = subprocess.run([str(CAST_CHECK), "--kernel"], env=env, check=True,
                         capture_output=True, text=True).stdout.strip()
    assert out == "portable"


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("src", list(DTYPES))
@pytest.mark.parametrize("dst", list(DTYPES))
def test_cast_matches_torch(inputs, tmp_path, src, dst, kernel):
    _require_vector_torch()
    source = inputs[src]
    in_path, out_path = tmp_path / "in.bin", tmp_path / "out.bin"
    source.view(BITS[src]).numpy().tofile(in_path)
    _run_cast_check(src, dst, in_path, out_path, kernel)

    expected = source.to(DTYPES[dst]).view(BITS[dst]).numpy()
    got = np.fromfile(out_path, dtype=expected.dtype)
    assert got.shape == expected.shape
    bad = np.flatnonzero(got != expected)
    if bad.size:
        unsigned = {np.dtype(np.int16): np.uint16, np.dtype(np.int32): np.uint32}
        raw = source.view(BITS[src]).numpy()
        src_bits = raw.view(unsigned[raw.dtype])
        first = bad[:5]
        pytest.fail(
            f"{src}->{dst} ({kernel}): {bad.size} of {got.size} differ; first inputs "
            f"{[hex(x) for x in src_bits[first]]} got "
            f"{[hex(x) for x in got[first].view(unsigned[got.dtype])]} want "
            f"{[hex(x) for x in expected[first].view(unsigned[expected.dtype])]}")
