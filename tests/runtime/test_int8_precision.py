"""Dynamic INT8 (u8 activations x s8 weights) runs in onnxruntime's accurate mode everywhere Fabulist opens a
session (fabulist/ort_session.py): on AVX2 CPUs without VNNI the default mode saturates 16-bit sums and
moves logits far from fp32; the accurate mode must never be further from fp32 than the default one."""

import platform

import numpy as np
import onnxruntime as ort
import pytest

from fabulist.export.onnx import FILES, OnnxLM, export_onnx
from fabulist.export.validate import heldout_texts
from fabulist.ort_session import ACCURATE_INT8, session_options
from tests.builders import make_model_dir

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def int8_model(tmp_path_factory):
    folder = make_model_dir(tmp_path_factory.mktemp("int8-model"))
    export_onnx(folder, ["fp32", "int8"], validate=False, progress=False, fast=False, method="dynamic")
    return folder


def test_every_session_option_carries_the_accurate_mode():
    options = session_options(2)
    assert options.intra_op_num_threads == 2
    for key, value in ACCURATE_INT8.items():
        assert options.get_session_config_entry(key) == value
    plain = session_options(accurate_int8=False)
    with pytest.raises(RuntimeError):  # not set at all: onnxruntime's default arithmetic
        plain.get_session_config_entry("session.x64quantprecision")


def test_runtime_and_validation_sessions_run_accurate(int8_model):
    from fabulist.runtime.backends import OnnxBackend, read_config

    backend = OnnxBackend(int8_model / "onnx" / FILES["int8"], read_config(int8_model))
    lm = OnnxLM(int8_model / "onnx" / FILES["int8"])
    for session in (backend.session, lm.session):
        assert isinstance(session, ort.InferenceSession)
        assert session.get_session_options().get_session_config_entry("session.x64quantprecision") == "1"


def test_accurate_int8_is_at_least_as_close_to_fp32(int8_model):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(int8_model / "tokenizer.json"))
    fp32 = OnnxLM(int8_model / "onnx" / FILES["fp32"])
    accurate = OnnxLM(int8_model / "onnx" / FILES["int8"])
    default = OnnxLM(int8_model / "onnx" / FILES["int8"], accurate_int8=False)
    worst = {"accurate": 0.0, "default": 0.0}
    agree = {"accurate": 0, "default": 0}
    positions = 0
    for text in heldout_texts(4, seed=3):
        ids = tok.encode(text, add_special_tokens=False).ids[:96]
        ref = fp32.logits(ids)
        positions += len(ids)
        for name, lm in (("accurate", accurate), ("default", default)):
            got = lm.logits(ids)
            worst[name] = max(worst[name], float(np.abs(got - ref).max()))
            agree[name] += int((got.argmax(-1) == ref.argmax(-1)).sum())
    # the accurate mode is no further from fp32 than the default one (equal on VNNI CPUs, closer on AVX2)
    assert worst["accurate"] <= worst["default"] + 1e-6, worst
    assert agree["accurate"] >= agree["default"], agree
    # and it is close: dynamic INT8 of this random model moves no logit by more than 0.5
    assert worst["accurate"] < 0.5 and agree["accurate"] >= 0.9 * positions, (worst, agree, positions)


# Run on an emulated AVX2 CPU without VNNI (qemu-user's EPYC-Rome model): the logits of the INT8 graph in
# both modes, as JSON, for the held-out texts the test gives.
_EMULATED = """
import json, sys
import numpy as np
from fabulist.export.onnx import FILES, OnnxLM
model, seqs = sys.argv[1], json.loads(sys.argv[2])
out = {}
for mode, accurate in (("accurate", True), ("default", False)):
    lm = OnnxLM(__import__("pathlib").Path(model) / "onnx" / FILES["int8"], accurate_int8=accurate)
    out[mode] = [lm.logits(ids).tolist() for ids in seqs]
print(json.dumps(out))
"""
AVX2_CPU = "EPYC-Rome-v2"  # AMD Zen 2: AVX2, no AVX-512, no VNNI


@pytest.mark.skipif(platform.machine() != "x86_64", reason="x86 kernels only: other CPUs have no such mode")
def test_int8_on_an_avx2_cpu_without_vnni_matches_vnni(int8_model):
    """On an AVX2-only CPU (emulated by qemu-user, which ./quickstart.sh test installs) the default mode is
    far from fp32 and the accurate mode is not: it gives the same logits as this machine's own kernels."""
    import json
    import shutil
    import subprocess
    import sys

    from tokenizers import Tokenizer

    if not shutil.which("qemu-x86_64"):
        pytest.fail("qemu-x86_64 is not installed: run ./quickstart.sh test (apt-get install qemu-user)")
    tok = Tokenizer.from_file(str(int8_model / "tokenizer.json"))
    seqs = [tok.encode(t, add_special_tokens=False).ids[:48] for t in heldout_texts(2, seed=3)]
    proc = subprocess.run(["qemu-x86_64", "-cpu", AVX2_CPU, sys.executable, "-c", _EMULATED, str(int8_model),
                           json.dumps(seqs)], capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    emulated = json.loads(proc.stdout.strip().splitlines()[-1])
    fp32 = OnnxLM(int8_model / "onnx" / FILES["fp32"])
    native = OnnxLM(int8_model / "onnx" / FILES["int8"])
    worst = {"accurate": 0.0, "default": 0.0}
    for i, ids in enumerate(seqs):
        ref = fp32.logits(ids)
        here = native.logits(ids)
        for mode in worst:
            got = np.asarray(emulated[mode][i], dtype=np.float32)
            worst[mode] = max(worst[mode], float(np.abs(got - ref).max()))
        # the accurate mode's arithmetic does not depend on the CPU
        assert np.abs(np.asarray(emulated["accurate"][i], dtype=np.float32) - here).max() < 1e-4
    assert worst["accurate"] < 0.5 and worst["accurate"] <= worst["default"], worst
