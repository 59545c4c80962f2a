"""GPTQ for the ONNX export's 4-bit graph: `fabulist export --quant int4 --method gptq`.

onnxruntime 1.32 ships a GPTQ (its Intel Neural Compressor port) that changes nothing on this project's
graphs: it takes the upper Cholesky factor of H^-1 and then reads its columns below the diagonal (zeros)
to spread each row's rounding error, so it writes round-to-nearest's codes (measured: the same codes and
zero points as asymmetric RTN on fable-5m). This is GPTQ (Frantar et al. 2022) as written there, on the
grid onnxruntime's symmetric 4-bit MatMulNBits dequantizes with: per block of 32 inputs and per output
column, scale = (the block's value of largest magnitude) / -8 and w = (code - 8) * scale, the block's
scale taken from the weights as updated when the block starts. The codes and scales go straight into
MatMulNBits, so nothing is rounded twice.

H = 2/n X^T X of each MatMul's input over the calibration tokens (calib.py), from one onnxruntime session
on the fp32 graph with those inputs added as outputs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fabulist.export.errors import ExportError

BLOCK = 32
DAMP = 0.01  # of the mean Hessian diagonal, added to it (GPTQ's percdamp)


def weighted_matmuls(model) -> dict[str, tuple[str, str]]:
    """{node name: (input activation, weight initializer)} of the MatMuls with a 2-D constant weight."""
    inits = {i.name: i for i in model.graph.initializer}
    return {
        n.name: (n.input[0], n.input[1])
        for n in model.graph.node
        if n.op_type == "MatMul" and n.input[1] in inits and len(inits[n.input[1]].dims) == 2
    }


def hessians(model, feeds: list[dict]) -> dict[str, np.ndarray]:
    """2/n X^T X (float64) of each weighted MatMul's input activation, keyed by activation name."""
    import onnx
    import onnxruntime as ort

    names = sorted({a for a, _ in weighted_matmuls(model).values()})
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    probe.graph.output.extend(onnx.helper.make_empty_tensor_value_info(n) for n in names)
    session = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    sums, tokens = dict.fromkeys(names, 0.0), 0
    for feed in feeds:
        for name, x in zip(names, session.run(names, feed), strict=True):
            x = x.reshape(-1, x.shape[-1]).astype(np.float64)  # (tokens, K)
            sums[name] = sums[name] + x.T @ x
        tokens += x.shape[0]
    return {n: 2.0 * h / tokens for n, h in sums.items()}


def solve(weight: np.ndarray, hessian: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """GPTQ of one weight (K, N): (codes (K, N) uint8 in 0..15, scales (K / BLOCK, N))."""
    w = weight.astype(np.float64).copy()
    k, n = w.shape
    h = hessian.copy()
    dead = np.diag(h) == 0
    h[dead, dead] = 1.0
    w[dead] = 0.0
    h[np.diag_indices(k)] += DAMP * np.mean(np.diag(h))
    u = np.linalg.cholesky(np.linalg.inv(h)).T  # upper: row i holds how row i's error spreads to i+1..
    codes = np.zeros((k, n), dtype=np.uint8)
    scales = np.zeros((k // BLOCK, n))
    for i in range(k):
        if i % BLOCK == 0:
            block = w[i : i + BLOCK]
            peak = block[np.abs(block).argmax(axis=0), np.arange(n)]
            scales[i // BLOCK] = np.where(peak == 0, 1.0, peak / -8.0)
        s = scales[i // BLOCK]
        code = np.clip(np.round(w[i] / s) + 8, 0, 15)
        codes[i] = code
        err = (w[i] - (code - 8) * s) / u[i, i]
        w[i + 1 :] -= np.outer(u[i, i + 1 :], err)
    return codes, scales


def pack(codes: np.ndarray, scales: np.ndarray, dtype) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MatMulNBits' layout: (N, K/32, 16) bytes, two codes each (low nibble first); scales (N, K/32)."""
    n = codes.shape[1]
    blocks = codes.T.reshape(n, -1, BLOCK)
    packed = (blocks[..., 0::2] | (blocks[..., 1::2] << 4)).astype(np.uint8)
    zero_points = np.full((n, (blocks.shape[1] + 1) // 2), 0x88, dtype=np.uint8)  # unused: symmetric
    return packed, scales.T.astype(dtype), zero_points


def quantize(src: Path, dest: Path, feeds: list[dict], accuracy_level: int | None, big: bool,
             exclude: tuple[str, ...] = ()) -> None:  # fmt: skip
    """dest: src's weighted MatMuls (but the nodes in exclude, left as they are) as symmetric 4-bit
    MatMulNBits (block 32) solved by GPTQ on feeds."""
    from onnxruntime.quantization import matmul_nbits_quantizer as mnq

    from fabulist.export.onnx import load_proto

    model = load_proto(src)
    targets = {k: v for k, v in weighted_matmuls(model).items() if k not in exclude}
    bad = [name for name, (_, w) in targets.items() if _dims(model, w)[0] % BLOCK]
    if bad:
        raise ExportError(f"gptq needs input widths divisible by {BLOCK}; {bad[0]} has not: use --method rtn")
    hs = hessians(model, feeds)
    inits = {i.name: i for i in model.graph.initializer}
    solved = {
        name: solve(_array(inits[w], src.parent), hs[a]) for name, (a, w) in targets.items()
    }  # fmt: skip
    config = mnq.DefaultWeightOnlyQuantConfig(
        block_size=BLOCK, is_symmetric=True, accuracy_level=accuracy_level
    )
    quant = mnq.MatMulNBitsQuantizer(
        model, bits=4, block_size=BLOCK, is_symmetric=True, algo_config=config, nodes_to_exclude=list(exclude)
    )
    quant.node_quantizer = writer(config, solved)
    quant.process()
    quant.model.save_model_to_file(str(dest), use_external_data_format=big)


def _dims(model, name: str) -> list[int]:
    return next(list(i.dims) for i in model.graph.initializer if i.name == name)


def _array(init, base: Path) -> np.ndarray:
    from onnx import numpy_helper

    return numpy_helper.to_array(init, str(base))


def writer(config, solved: dict):
    """onnxruntime's default MatMulNBits writer, handed GPTQ's codes instead of rounding the weight."""
    from onnxruntime.quantization import matmul_nbits_quantizer as mnq

    class Writer(mnq.DefaultWeightOnlyQuantizer):
        def quantize_matmul(self, node, graph_stack):
            self.current = node.name
            return super().quantize_matmul(node, graph_stack)

        def qbits_block_quant(self, fp32weight):
            codes, scales = solved[self.current]
            return pack(codes, scales, fp32weight.dtype)

    return Writer(config)
