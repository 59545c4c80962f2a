"""llama-cpp-python's OpenAI-compatible server (`python -m llama_cpp.server`) on 127.0.0.1, serving a tiny
GGUF that the project itself trained and exported in the test session.

A random tiny model writes garbage that never ends, so the model is first taught, in a few seconds of
full-sequence training on the exact prompts the server builds (llama-cpp-python's `llama-2` chat format,
pinned on the server's command line), to answer the judge's prompt with a grade (`GRADE`) and a teacher's
prompt with a short fable (`FABLE`) and end of text. Under the judge's JSON grammar it then writes a valid
grade (the digits and rationale may vary with the story: tests assert ranges, not values) and, as a
teacher, a fable of a few dozen tokens that stops by itself (`finish_reason=stop`).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

GRADE = {"grammar": 7, "creativity": 5, "consistency": 8, "plot": 6, "age_group": "C", "rationale": "Fine."}
FABLE = "The fox shared her berries.\n\nMoral: Sharing brings joy."
CHAT_FORMAT = "llama-2"
POST = '"POST /v1/chat/completions HTTP/1.1"'


def _chat_prompt(messages: list[dict]) -> str:
    from llama_cpp.llama_chat_format import format_llama2  # what the server does with CHAT_FORMAT

    return format_llama2(messages).prompt


def _examples(teach_prompts: int) -> list[list[tuple[str, str]]]:
    """Two batches of (server prompt, answer): judge prompts -> GRADE, teacher prompts -> FABLE."""
    from fabulist.data import prompts as pr
    from fabulist.eval import evalset
    from fabulist.eval import judge as jd

    judge = [
        (
            _chat_prompt(jd.messages(p.task, p.story("The fox ran home.\n\nMoral: Be kind."))),
            json.dumps(GRADE),
        )
        for p in evalset.load()[:2]
    ]
    system = {"role": "system", "content": pr.SYSTEM_PROMPT}
    teach = [
        (_chat_prompt([system, {"role": "user", "content": p["prompt"]}]), " " + FABLE)
        for p in pr.sample(teach_prompts, seed=3)
    ]
    return [judge, teach]


def train_answering_model(folder: Path, steps: int = 72, teach_prompts: int = 4, schedule=(0, 1, 1)) -> Path:
    """A tiny random Llama folder (tests.export.conftest) taught to answer as judge and teacher; returns
    its f16 GGUF exported by `fabulist.export.gguf`. `schedule` cycles through the batches (0: judge,
    1: teacher). With the defaults, 120 unseen teacher prompts all end by themselves (median 30 tokens,
    90th percentile 36) and 24 judge prompts all give a valid grade (measured when this was written)."""
    import torch
    from tokenizers import Tokenizer
    from transformers import LlamaForCausalLM

    from fabulist.export.gguf import export_gguf
    from tests.builders import make_model_dir

    make_model_dir(folder)
    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    config = json.loads((folder / "config.json").read_text())
    eos, pad = config["eos_token_id"], config["pad_token_id"]
    batches = []
    for pairs in _examples(teach_prompts):
        enc = [
            (tok.encode(p, add_special_tokens=False).ids, tok.encode(a, add_special_tokens=False).ids)
            for p, a in pairs
        ]
        rows = [(p, [*a, eos]) for p, a in enc]
        width = max(len(a) + len(b) for a, b in rows)
        ids = torch.full((len(rows), width), pad)
        labels = torch.full((len(rows), width), -100)  # loss on the answers only
        for i, (a, b) in enumerate(rows):
            ids[i, : len(a) + len(b)] = torch.tensor(a + b)
            labels[i, len(a) : len(a) + len(b)] = torch.tensor(b)
        batches.append((ids, labels))
    torch.manual_seed(0)
    model = LlamaForCausalLM.from_pretrained(folder)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a 64-wide model: more threads only contend (5x slower on a busy machine)
    try:
        for step in range(steps):
            ids, labels = batches[schedule[step % len(schedule)]]
            model(input_ids=ids, labels=labels).loss.backward()
            optimizer.step()
            optimizer.zero_grad()
    finally:
        torch.set_num_threads(threads)
    model.save_pretrained(folder, safe_serialization=True)
    (result,) = export_gguf(folder, ["f16"], validate=False, progress=False)
    return folder / result["path"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LlamaServer:
    """`python -m llama_cpp.server` as a subprocess; `requests()` counts chat requests in its access log."""

    def __init__(self, gguf: Path, log: Path, port: int | None = None, api_key: str | None = None):
        self.gguf, self.log, self.port, self.api_key = gguf, log, port or free_port(), api_key
        self.proc: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self, timeout: float = 90.0) -> LlamaServer:
        cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(self.gguf), "--host", "127.0.0.1",
               "--port", str(self.port), "--chat_format", CHAT_FORMAT, "--n_ctx", "2048", "--n_threads", "1",
               "--seed", "0"]  # fmt: skip
        if self.api_key:
            cmd += ["--api_key", self.api_key]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited with {self.proc.returncode}:\n{self.tail()}")
            headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
            probe = urllib.request.Request(self.base_url + "/models", headers=headers)
            try:
                with urllib.request.urlopen(probe, timeout=1):
                    return self
            except urllib.error.HTTPError:  # it answers: ready
                return self
            except OSError:
                time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"llama_cpp.server not ready after {timeout} s:\n{self.tail()}")

    def kill(self) -> None:
        """SIGKILL: the server dies mid-request, as a crashed or evicted server would."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def requests(self) -> int:
        return self.log.read_text(errors="replace").count(POST) if self.log.exists() else 0

    def tail(self, n: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:]) if self.log.exists() else ""

    def __enter__(self) -> LlamaServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


def wait_for(predicate, timeout: float = 60.0, every: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(every)
    return False


@contextlib.contextmanager
def running(cmd: list[str], env: dict):
    """A Popen (text pipes) that is killed and reaped if the test leaves it running."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)


def clean_env(**extra: str) -> dict:
    """This environment without OPENAI_* variables, plus extra."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}, **extra}


def gone_message(base_url: str, n: int) -> str:
    return (f"error: {base_url} stopped accepting connections ({n} requests in a row gave up); "
            "what was written is kept: rerun the same command to resume")  # fmt: skip
