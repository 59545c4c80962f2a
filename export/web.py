"""The browser's ONNX graph: weights stored as int8 on disk, multiplied as fp32 at run time.

    fabulist export runs/X --format onnx --quant int8 --method fold    # -> onnx/model_int8_fold.onnx

onnxruntime-web's wasm kernels have a fast fp32 MatMul but no fast MatMulNBits: on fable-5m the INT4 graph
decodes ~5x slower than fp32 in the browser, while the fp32 graph is too big to ship (27.6 MB). This graph
keeps fp32's arithmetic and int8's file size. Each weight matrix W (K, N) of a MatMul is stored as int8
codes q with one fp32 scale per output column, s = max|W[:, n]| / 127, and rebuilt by Mul(Cast(q), s).
Every input of that Cast and Mul is an initializer, so onnxruntime's constant folding (graph optimization
level 1, on by default everywhere, onnxruntime-web included) computes the fp32 matrix once at session
creation and the kernels see a plain fp32 MatMul. Cast + Mul rather than DequantizeLinear: onnxruntime
does not fold DequantizeLinear unless the session sets `session.disable_quant_qdq`, and would otherwise
fuse it into the very MatMulNBits this graph avoids; Cast + Mul needs no session option at all.

The fp32 graph folded is onnxruntime-genai's builder graph where the builder takes the architecture
(export/onnx.py `_fold_source`): the same arithmetic in fused onnxruntime ops, ~20x fewer nodes than
optimum's, so the wasm backend runs far fewer kernels per token (about twice optimum's fold's decode speed
on fable-5m). transformers.js loads it like optimum's graph; where the builder refuses, optimum's is folded.

The token embedding (a Gather) stays int8 at run time: the Gather picks int8 rows, then Cast and Mul by the
gathered row scales, one row per token. When the LM head is the embedding transposed (tied weights, as
fable models are), it is rebuilt from the same int8 table, Transpose(Mul(Cast(q), s)), so the table is
stored once (the builder's graph reads a tied table through the head, Gather(Transpose(head)): that Gather
is given the table first). The numbers are those of symmetric per-channel int8 weight-only quantization;
what a phone holds after loading is the fp32 matrices (about 4 bytes per weight) plus the int8 embedding.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fabulist.export.errors import ExportError

FLOAT = 1  # onnx.TensorProto.FLOAT


def int8_columns(w: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """(codes int8, scales fp32) of a 2-D w, symmetric, one scale per index along `axis` (the max over the
    other axis, kept as size 1 so the scales broadcast): w ~= codes * scales. All-zero slices get scale 1."""
    peak = np.abs(w).max(axis=1 - axis, keepdims=True)
    scale = np.where(peak > 0, peak / 127.0, 1.0).astype(np.float32)
    codes = np.clip(np.round(w / scale), -127, 127).astype(np.int8)
    return codes, scale


def fold_int8(src: Path, dest: Path, notes: list) -> Path:
    """dest: the fp32 graph src with every MatMul weight and the token embedding stored as int8 (module
    doc); what was done is appended to notes."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(src))
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    _table_for_gather(graph, inits)
    embed_node = _embedding(graph, inits)
    embed = numpy_helper.to_array(inits[embed_node.input[0]]) if embed_node else None
    new_inits, new_nodes, stored, loaded = [], [], 0, 0
    tied_head = None  # the LM head's weight name when it is the embedding transposed
    for name in _matmul_weights(graph, inits):
        w = numpy_helper.to_array(inits[name])
        if embed is not None and w.shape == embed.T.shape and np.array_equal(w, embed.T):
            tied_head = name  # rebuilt from the embedding's table below
            continue
        codes, scale = int8_columns(w, axis=1)  # one scale per output column n
        new_inits += [
            numpy_helper.from_array(codes, f"{name}.int8"),
            numpy_helper.from_array(scale[0], f"{name}.scale"),
        ]
        new_nodes += _dequantize(helper, f"{name}.int8", f"{name}.scale", name)
        stored += codes.size
        loaded += 4 * codes.size
        graph.initializer.remove(inits[name])
    if embed_node is not None:
        table = _int8_embedding(graph, embed_node, embed, inits, tied_head, new_inits, new_nodes)
        stored += table
        loaded += table + (4 * table if tied_head else 0)  # int8 rows; the head folded to fp32
    if not stored:
        raise ExportError(f"{src} has no MatMul weight to store as int8")
    graph.initializer.extend(new_inits)
    nodes = [*new_nodes, *graph.node]  # the weight subgraphs first: the node list stays topologically sorted
    del graph.node[:]
    graph.node.extend(nodes)
    if model.ByteSize() > 2**31 - 2**20:  # protobuf's limit: this graph keeps its weights inline
        raise ExportError(f"{src}: int8 weights over 2 GB do not fit one .onnx file; use --method rtn")
    _check(model)
    onnx.save(model, str(dest))
    notes += [
        f"{stored:,} weights stored as int8 (symmetric, one fp32 scale per output channel), rebuilt as "
        "fp32 by Mul(Cast(int8), scale); onnxruntime folds those at session creation, so MatMul runs in fp32",
        "token embedding: int8 rows gathered, then scaled"
        + (" (the tied LM head shares its table)" if tied_head else ""),
        f"once loaded: {loaded / 1e6:.1f} MB of weights (fp32 matrices, int8 embedding), not the file's size",
    ]
    return dest


def _check(model) -> None:
    """onnx's checker, on graphs it can check: the builder's graph uses onnxruntime's own operators
    (SimplifiedLayerNormalization, com.microsoft ops), which onnx has no schema for; export validation
    then loads the graph in onnxruntime, which checks it."""
    import onnx

    known = {"", "ai.onnx"}
    if all(n.domain in known and onnx.defs.has(n.op_type) for n in model.graph.node):
        onnx.checker.check_model(model)


def _matmul_weights(graph, inits: dict) -> list[str]:
    """Names of the 2-D fp32 initializers that are a MatMul's right-hand side, in graph order."""
    names = []
    for node in graph.node:
        if node.op_type == "MatMul" and node.input[1] in inits and node.input[1] not in names:
            t = inits[node.input[1]]
            if len(t.dims) == 2 and t.data_type == FLOAT:
                names.append(node.input[1])
    return names


def _table_for_gather(graph, inits: dict) -> None:
    """The builder's graph reads a tied embedding through the LM head's weight: Gather(Transpose(W)). Give
    that Gather the table itself (W transposed, a new initializer) and drop the Transpose, so that the fold
    stores the table once as int8 rows and rebuilds the head from it, as it does for optimum's graph; else
    onnxruntime would fold the Transpose into a second fp32 copy of the table."""
    from onnx import numpy_helper

    producers = {out: n for n in graph.node for out in n.output}
    for node in graph.node:
        t = producers.get(node.input[0]) if node.op_type == "Gather" else None
        w = inits.get(t.input[0]) if t is not None and t.op_type == "Transpose" else None
        perm = [list(a.ints) for a in t.attribute if a.name == "perm"] if w is not None else []
        if w is None or len(w.dims) != 2 or w.data_type != FLOAT or perm not in ([], [[1, 0]]):
            continue
        table = numpy_helper.from_array(numpy_helper.to_array(w).T.copy(), f"{w.name}.table")
        graph.initializer.append(table)
        inits[table.name] = table
        node.input[0] = table.name
        if not any(t.output[0] in n.input for n in graph.node) and t.output[0] not in {
            o.name for o in graph.output
        }:
            graph.node.remove(t)
        return


def _embedding(graph, inits: dict):
    """The Gather that reads token rows from a 2-D fp32 table (optimum: model.embed_tokens.weight)."""
    for node in graph.node:
        t = inits.get(node.input[0]) if node.op_type == "Gather" else None
        if t is not None and len(t.dims) == 2 and t.data_type == FLOAT:
            return node
    return None


def _dequantize(helper, codes: str, scale: str, out: str) -> list:
    """out = Cast(codes, float) * scale: all initializers, so onnxruntime folds it into an fp32 constant."""
    return [
        helper.make_node("Cast", [codes], [f"{out}.float"], to=FLOAT, name=f"{out}/Cast"),
        helper.make_node("Mul", [f"{out}.float", scale], [out], name=f"{out}/Mul"),
    ]


def _int8_embedding(graph, node, table, inits, head, new_inits, new_nodes) -> int:
    """Rewire the embedding Gather onto int8 rows and their scales (gathered by the same ids); with a tied
    LM head (head: its weight's name), also rebuild the head's fp32 matrix from that table.
    Returns the number of int8 weights."""
    from onnx import helper, numpy_helper

    name, ids, out = node.input[0], node.input[1], node.output[0]
    codes, scale = int8_columns(table, axis=0)  # one scale per vocabulary row, shape (V, 1)
    new_inits += [
        numpy_helper.from_array(codes, f"{name}.int8"),
        numpy_helper.from_array(scale, f"{name}.scale"),
    ]
    graph.initializer.remove(inits[name])
    if any(name in n.input for n in graph.node if n is not node):
        # read elsewhere too (a tied head behind a Transpose): that reader gets the table folded to fp32
        new_nodes += _dequantize(helper, f"{name}.int8", f"{name}.scale", name)
    node.input[0] = f"{name}.int8"
    node.output[0] = f"{out}.int8"
    at = list(graph.node).index(node) + 1
    rows = [
        helper.make_node("Cast", [f"{out}.int8"], [f"{out}.float"], to=FLOAT, name=f"{node.name}/Cast"),
        helper.make_node("Gather", [f"{name}.scale", ids], [f"{out}.scale"], name=f"{node.name}/GatherScale"),
        helper.make_node("Mul", [f"{out}.float", f"{out}.scale"], [out], name=f"{node.name}/Mul"),
    ]
    for i, n in enumerate(rows):
        graph.node.insert(at + i, n)
    if head is not None:
        new_nodes += _dequantize(helper, f"{name}.int8", f"{name}.scale", f"{head}.rows")
        new_nodes.append(
            helper.make_node("Transpose", [f"{head}.rows"], [head], perm=[1, 0], name=f"{head}/T")
        )
        graph.initializer.remove(inits[head])
    return codes.size


def browser_table(result: dict) -> list[str]:
    """The markdown table of a benchmarks/web_precision.py result (the benchmark's .md and the model card,
    export/pack.py, show the same one): every ONNX precision's size, gate and decode speed in headless
    Chromium, as a ratio to INT4 measured in the same run."""
    rows = result["precisions"]
    threads = sorted(
        {k.split("_", 1)[1] for r in rows.values() for k in r if k.startswith("threads_")}, key=int
    )
    head = "| precision | file | MB | KLD / top-1 | gate | weights once loaded (MB) |"
    head += "".join(f" decode tok/s, {t} thread{'s' * (t != '1')} (x INT4) |" for t in threads)
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for precision, r in rows.items():
        v = r["validation"]
        cells = [f"**{precision}**" if precision == "int8-fold" else precision, f"`{r['file']}`",
                 f"{r['bytes'] / 1e6:.1f}", f"{v['kld']:.4f} / {v['top1']:.1%}", r["gate"],
                 f"{r['loaded_weight_bytes'] / 1e6:.1f}"]  # fmt: skip
        for t in threads:
            s = r[f"threads_{t}"]
            cells.append(f"{max(s['decode_tok_s']):.0f} ({s['vs_int4']:.2f}x)")
        lines.append("| " + " | ".join(cells) + " |")
    return lines
