"""Mixed 4/8-bit ONNX chosen against a quality target: onnx/model_auto.onnx, quant "auto" in the manifest.

    fabulist export runs/X --format onnx --quant auto --max-kld 0.005   # the smallest file with KLD <= 0.005
    fabulist export runs/X --format onnx --quant auto --max-size 9MB    # the lowest KLD within 9 MB

MatMulNBits takes bits=4 or bits=8 per node, so one graph can hold both. The plan:
1. every weighted MatMul (the LM head included) is solved once by GPTQ at 4 bits (gptq.py);
2. sensitivity: each matrix alone at its GPTQ 4-bit weights in the fp32 graph, and the KLD that costs the
   whole model's logits against fp32 on the calibration fables (calib.py; never the validation probes);
3. order: matrices by sensitivity per byte that 8 bits add (K x N / 2: the codes double, the scales stay);
4. walk: from all-4-bit GPTQ, promote one matrix at a time in that order to 8 bits (RTN, block 32,
   accuracy level 4: the int8 artifact's settings), assembling the real graph after each promotion and
   measuring it on export validation's held-out positions (validate.py), the numbers the manifest shows.
   With --max-kld the walk stops at the first graph that meets it; with --max-size a promotion that would
   not fit is skipped and the lowest-KLD graph within the size is kept; with both, the first graph that
   meets the KLD within the size, or a one-line error.
Single-matrix sensitivities only order the walk (errors of several 4-bit matrices do not add exactly);
every stopping decision is taken on a measured, assembled graph. The walk's order does not depend on the
KLD target, so a tighter --max-kld never gives a smaller file. The plan (the matrices at 8 bits and every
step's measured bytes, KLD and top-1) goes into the artifact's manifest entry, and the size-vs-KLD curve
into onnx/model_auto.png beside it.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from fabulist.export import gptq
from fabulist.export import validate as va
from fabulist.export.errors import ExportError
from fabulist.records import write_atomic

GATE_CLASS = "int4"  # the validation gate a mixed graph is held to: that of its weakest matrices
# Calibration fables the sensitivity pass runs on (~2k positions): it only orders the walk. On fable-5m
# v2.2 the 8-fable order matches the 32-fable one (Spearman rho 0.985, 9 of the top 10, the same first
# five matrices: the same plans down to KLD 0.002) in a quarter of the time
# (benchmarks/mixed_precision.py --proxy-check compares it with all 64 fables).
SENSITIVITY_TEXTS = 8


@dataclass
class Plan:
    """A walk's outcome: steps[i] is the graph with the first i promotions (steps[0]: all 4-bit);
    `chosen` indexes the step written as the artifact."""

    target: dict
    steps: list[dict] = field(default_factory=list)
    chosen: int = 0
    all_8bit: dict | None = None
    sensitivity: list[dict] = field(default_factory=list)

    @property
    def eight_bit(self) -> list[str]:
        return [s["promoted"] for s in self.steps[1 : self.chosen + 1] if s["promoted"]]

    def manifest(self) -> dict:
        return {**asdict(self), "eight_bit": self.eight_bit}


def parse_target(max_kld: float | None, max_size: str | int | None) -> tuple[float | None, int | None]:
    """(max KLD, max bytes) of a --quant auto request, or an ExportError saying what is wrong."""
    from fabulist.export import plan as pl

    if max_kld is None and max_size is None:
        raise ExportError("--quant auto needs a target: --max-kld (e.g. 0.005) and/or --max-size (e.g. 9MB)")
    if max_kld is not None and not 0 < max_kld < 10:
        raise ExportError(f"--max-kld {max_kld} must be a KL divergence above 0 (e.g. 0.005)")
    if max_size is None or isinstance(max_size, int):
        return max_kld, max_size
    try:
        return max_kld, pl.parse_bytes(max_size)
    except pl.PlanError:
        raise ExportError(f"bad --max-size {max_size!r}: expected a file size, e.g. 9MB, 8.5MiB") from None


def check_request(pairs: list[tuple[str, str]], max_kld: float | None, max_size: str | None) -> None:
    """Refuse, before anything is built, a target without --quant auto, and --quant auto without one."""
    if ("onnx", "auto") in pairs:
        parse_target(max_kld, max_size)
    elif max_kld is not None or max_size is not None:
        flag = "--max-kld" if max_kld is not None else "--max-size"
        raise ExportError(f"{flag} is the target of --quant auto (mixed 4/8-bit ONNX); add --quant auto")


def build(
    fp32: Path, dest: Path, ref: va.Reference, notes: list, *, max_kld: float | None = None,
    max_size: str | int | None = None, calib=None, model_dir: Path, accuracy_level: int | None = None,
    progress: bool = True,
) -> Plan:  # fmt: skip
    """dest: fp32's weighted MatMuls at 4 or 8 bits, the plan chosen for the target (module doc)."""
    from fabulist.export import onnx as ox

    max_kld, max_bytes = parse_target(max_kld, max_size)
    if ox._big(fp32):
        raise ExportError("--quant auto needs an fp32 graph under 2 GB (gptq does): use --quant int4")
    model = ox.load_proto(fp32)
    feeds, calib_note = ox._calibration(model_dir, calib, fp32)
    _log(progress, f"solving GPTQ 4-bit codes on {len(feeds)} calibration fables")
    solved = solve_all(model, feeds, fp32.parent)
    plan = Plan({"max_kld": max_kld, "max_bytes": max_bytes})
    with tempfile.TemporaryDirectory(prefix=".tmp-mixed-", dir=dest.parent) as tmp:
        graph = Graph(model, solved, Path(tmp), ref, accuracy_level)
        plan.steps.append(graph.measure(set(), None))
        check_smallest(plan)  # before the sensitivity pass, the slow part
        _log(progress, f"measuring the sensitivity of {len(solved)} matrices")
        plan.sensitivity = sensitivities(model, feeds[:SENSITIVITY_TEXTS], solved, fp32.parent)
        walk(plan, graph, progress)
        plan.all_8bit = graph.measure(set(solved), None)
        graph.write(set(plan.eight_bit), dest)
    notes += [calib_note, f"mixed precision (mixed.py): {len(plan.eight_bit)} of {len(solved)} matrices at 8 "
              f"bits (RTN, block 32, accuracy_level {ox.INT8_ACCURACY_LEVEL}), the rest GPTQ 4-bit (block "
              f"{gptq.BLOCK}, symmetric, accuracy_level {accuracy_level})", "embeddings (Gather) stay fp32",
              f"target: {_target_text(plan.target)}; chosen step {plan.chosen}: KLD "
              f"{plan.steps[plan.chosen]['kld']:.5f} on the validation positions"]  # fmt: skip
    return plan


def walk(plan: Plan, graph: Graph, progress: bool = False) -> Plan:
    """Promote matrices in order of sensitivity per added byte, measuring each assembled graph, until the
    target is met (max_kld) or nothing more fits (max_bytes); sets plan.chosen, or raises ExportError."""
    max_kld, max_bytes = plan.target["max_kld"], plan.target["max_bytes"]
    check_smallest(plan)
    eight: set[str] = set()
    for row in plan.sensitivity:
        if max_kld is not None and plan.steps[-1]["kld"] <= max_kld:
            break
        if max_bytes is not None and plan.steps[-1]["bytes"] + row["added_bytes"] > max_bytes:
            continue  # would not fit: a cheaper matrix further down may
        step = graph.measure(eight | {row["matmul"]}, row["matmul"])
        if max_bytes is not None and step["bytes"] > max_bytes:
            continue
        eight.add(row["matmul"])
        plan.steps.append(step)
        _log(progress, f"8-bit {row['matmul']}: {step['bytes'] / 1e6:.2f} MB, KLD {step['kld']:.5f}")
    meets = [i for i, s in enumerate(plan.steps) if max_kld is None or s["kld"] <= max_kld]
    if not meets:
        best = min(plan.steps, key=lambda s: s["kld"])
        within = "" if max_bytes is None else f" within {max_bytes / 1e6:.2f} MB"
        raise ExportError(
            f"no mix of 4- and 8-bit matrices{within} reaches KLD {max_kld} (best: {best['kld']:.5f} at "
            f"{best['bytes'] / 1e6:.2f} MB); raise --max-kld{' or --max-size' if within else ''}"
        )
    plan.chosen = meets[0] if max_kld is not None else min(meets, key=lambda i: plan.steps[i]["kld"])
    return plan


def check_smallest(plan: Plan) -> None:
    """Refuse a --max-size below the all-4-bit graph (plan.steps[0]), the smallest any plan can be."""
    max_bytes, smallest = plan.target["max_bytes"], plan.steps[0]["bytes"]
    if max_bytes is not None and smallest > max_bytes:
        raise ExportError(
            f"--max-size {max_bytes / 1e6:.2f} MB is below the smallest plan (every matrix at 4 bits, "
            f"{smallest / 1e6:.2f} MB): allow at least that"
        )


def solve_all(model, feeds: list[dict], base: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{MatMul node: GPTQ (codes, scales)} of every weighted MatMul, against its input's Hessian."""
    targets = gptq.weighted_matmuls(model)
    bad = [name for name, (_, w) in targets.items() if _weight(model, w, base).shape[0] % gptq.BLOCK]
    if bad:
        raise ExportError(f"--quant auto needs input widths divisible by {gptq.BLOCK}; {bad[0]} has not")
    hs = gptq.hessians(model, feeds)
    return {name: gptq.solve(_weight(model, w, base), hs[a]) for name, (a, w) in targets.items()}


def sensitivities(model, feeds: list[dict], solved: dict, base: Path) -> list[dict]:
    """For each matrix alone at its 4-bit weights (the rest fp32): the KLD of the logits against the fp32
    graph's on feeds, and the bytes 8 bits would add; ordered by KLD per added byte, largest first."""
    import onnxruntime as ort
    from onnx import numpy_helper

    inits = {i.name: i for i in model.graph.initializer}

    def logits() -> np.ndarray:
        session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        return np.concatenate([session.run(["logits"], f)[0][0][:-1] for f in feeds])

    ref, rows = logits(), []
    for node, (_, name) in gptq.weighted_matmuls(model).items():
        original = _weight(model, name, base)
        codes, scales = solved[node]
        fake = (codes.astype(np.float64) - 8) * np.repeat(scales, gptq.BLOCK, axis=0)  # MatMulNBits' grid
        inits[name].CopyFrom(numpy_helper.from_array(fake.astype(original.dtype), name))
        kld = va.compare_logits(ref, logits())["kld"]
        inits[name].CopyFrom(numpy_helper.from_array(original, name))
        rows.append({"matmul": node, "shape": list(original.shape), "kld": kld,
                     "added_bytes": original.size // 2})  # fmt: skip
    return sorted(rows, key=lambda r: -r["kld"] / r["added_bytes"])


class Graph:
    """Assembles and measures graphs of one fp32 model with a given set of matrices at 8 bits."""

    def __init__(self, model, solved: dict, tmp: Path, ref: va.Reference, accuracy_level: int | None):
        self.model, self.solved, self.tmp, self.ref = model, solved, tmp, ref
        self.accuracy_level = accuracy_level

    def write(self, eight: set[str], dest: Path) -> Path:
        """dest: the matrices in eight as 8-bit RTN MatMulNBits, every other one as its GPTQ 4-bit codes."""
        import onnx
        from onnxruntime.quantization import matmul_nbits_quantizer as mnq

        from fabulist.export.onnx import INT8_ACCURACY_LEVEL

        model = onnx.ModelProto()
        model.CopyFrom(self.model)  # the quantizers rewrite the graph they are given
        four = mnq.DefaultWeightOnlyQuantConfig(
            block_size=gptq.BLOCK, is_symmetric=True, accuracy_level=self.accuracy_level
        )
        quant = mnq.MatMulNBitsQuantizer(model, bits=4, block_size=gptq.BLOCK, is_symmetric=True,
                                         algo_config=four, nodes_to_exclude=sorted(eight))  # fmt: skip
        quant.node_quantizer = gptq.writer(four, self.solved)
        with _quiet_quantizer():
            quant.process()
            if eight:
                config = mnq.DefaultWeightOnlyQuantConfig(
                    block_size=32, is_symmetric=True, bits=8, accuracy_level=INT8_ACCURACY_LEVEL
                )
                quant = mnq.MatMulNBitsQuantizer(
                    quant.model.model, algo_config=config, nodes_to_include=sorted(eight)
                )
                quant.process()
        quant.model.save_model_to_file(str(dest))
        return dest

    def measure(self, eight: set[str], promoted: str | None) -> dict:
        """Bytes, KLD and top-1 (on export validation's positions) of the graph with eight at 8 bits."""
        from fabulist.export.onnx import OnnxLM

        path = self.write(eight, self.tmp / "step.onnx")
        metrics, _ = va.validate(OnnxLM(path), GATE_CLASS, self.ref)
        return {"promoted": promoted, "bytes": path.stat().st_size, "kld": metrics["kld"],
                "top1": metrics["top1"]}  # fmt: skip


def record(plan: Plan, model_dir: Path, artifact: Path) -> dict:
    """The manifest entry's additions for a mixed artifact: its plan, and the curve drawn beside it."""
    png = artifact.with_suffix(".png")
    draw(plan, png, f"{model_dir.name}: mixed 4/8-bit ONNX, size against KLD")
    return {"plan": plan.manifest(), "plot": png.relative_to(model_dir).as_posix()}


def draw(plan: Plan, png: Path, title: str) -> None:
    """The walk's measured steps (size vs KLD, log scale), the all-8-bit graph, the target and the choice,
    in the trainer's plot style (fabulist/train/folder.py)."""
    try:
        import matplotlib
    except ImportError:
        raise ExportError(
            "drawing the size-vs-KLD curve needs matplotlib: pip install 'fabulist[export]'"
        ) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mb = [s["bytes"] / 1e6 for s in plan.steps]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    ax.plot(mb, [s["kld"] for s in plan.steps], "o-", ms=3, lw=1, label="promotions to 8 bits, in order")
    ax.plot(mb[:1], [plan.steps[0]["kld"]], "s", label="all 4-bit (GPTQ)")
    if plan.all_8bit:
        ax.plot([plan.all_8bit["bytes"] / 1e6], [plan.all_8bit["kld"]], "^", label="all 8-bit (RTN)")
    chosen, label = plan.steps[plan.chosen], f"chosen ({len(plan.eight_bit)} at 8 bits)"
    ax.plot([chosen["bytes"] / 1e6], [chosen["kld"]], "*", ms=12, label=label)
    if plan.target["max_kld"] is not None:
        ax.axhline(plan.target["max_kld"], ls="--", lw=1, color="gray", label="--max-kld")
    if plan.target["max_bytes"] is not None:
        ax.axvline(plan.target["max_bytes"] / 1e6, ls=":", lw=1, color="gray", label="--max-size")
    ax.set(xlabel="file size (MB)", ylabel="KLD vs fp32 (validation positions)", yscale="log", title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    write_atomic(png, buf.getvalue())


@contextlib.contextmanager
def _quiet_quantizer():
    """onnxruntime's quantizer logs a line per node at INFO; a walk assembles dozens of graphs."""
    logger = logging.getLogger("onnxruntime.quantization")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def _weight(model, name: str, base: Path) -> np.ndarray:
    from onnx import numpy_helper

    init = next(i for i in model.graph.initializer if i.name == name)
    return numpy_helper.to_array(init, str(base))


def _target_text(target: dict) -> str:
    kld, size = target["max_kld"], target["max_bytes"]
    parts = [f"KLD <= {kld}" if kld is not None else "", f"size <= {size / 1e6:.2f} MB" if size else ""]
    return " and ".join(p for p in parts if p)


def _log(progress: bool, msg: str) -> None:
    if progress:
        print(f"[mixed] {msg}", flush=True)
