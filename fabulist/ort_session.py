"""How every onnxruntime CPU session in Fabulist is set up: one place, so the runtime, export validation
and the benchmark rows all compute the same arithmetic.

    from fabulist.ort_session import session_options
    ort.InferenceSession(path, session_options(threads=2), providers=["CPUExecutionProvider"])

**Accurate integer matmuls.** A dynamic INT8 graph (`MatMulInteger` / `DynamicQuantizeMatMul`: uint8
activations x int8 weights) runs on x86 through MLAS's u8s8 kernels. On CPUs with AVX-512 VNNI or
AVX-VNNI they accumulate in 32 bits; on AVX2 without VNNI they use `vpmaddubsw`, which adds pairs of
products into a saturating 16-bit lane, so a large activation times a large weight clips. ONNX Runtime's
session option `session.x64quantprecision` = "1" selects kernels that do not saturate. Without it, on an
AVX2-only CPU the same INT8 graph moves logits by up to ~1.0 from fp32 and flips greedy tokens; with it,
the results equal those of VNNI CPUs (tests/runtime/test_int8_precision.py checks this on an AVX2 CPU
emulated by qemu-user). On VNNI CPUs the option changes nothing. The cost on this project's models is
measured by `benchmarks/int8_precision.py`. 4-bit `MatMulNBits` and float graphs are not affected (4-bit
weights times 8-bit activations cannot saturate 16 bits).
"""

from __future__ import annotations

# onnxruntime's key (onnxruntime_session_options_config_keys.h): "1" = full-precision u8s8 GEMM on x64.
ACCURATE_INT8 = {"session.x64quantprecision": "1"}


def session_options(threads: int | None = None, accurate_int8: bool = True, quiet: bool = False):
    """onnxruntime.SessionOptions for a CPU session: `threads` intra-op threads (None: onnxruntime's
    default), integer matmuls in the accurate mode unless `accurate_int8` is False (for measurement only),
    warnings hidden when `quiet`."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    if quiet:
        options.log_severity_level = 3
    if accurate_int8:
        for key, value in ACCURATE_INT8.items():
            options.add_session_config_entry(key, value)
    return options
