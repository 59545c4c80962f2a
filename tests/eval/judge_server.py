"""The data stage's fault-injecting server (`tests.data.fault_server`) speaking as a judge.

Every reply that would have been a fable is a grade instead. Fault tags ("[[fault:429x2]]" ...) work as
there; judge tags in the story choose the reply: "[[judge:garbage]]" prose with no JSON, "[[judge:fenced]]"
a grade in a ```json fence with prose around it, "[[judge:echo]]" prose quoting the story's text and
then a grade (two candidate objects when the story holds one), "[[judge:echokey]]" a grade whose
rationale quotes the Authorization header, "[[judge:nan]]" / "[[judge:infinity]]" a grade whose plot score
is NaN / Infinity (JSON to Python, no score), "[[judge:deep]]" 5,000 nested arrays then a grade. `refuse`
lists response_format types the server answers with HTTP 400 (as a server without structured output
would), or with `refuse_status` and llama-cpp-python's own message (its server reports a request
validation error as HTTP 500). `bodies` keeps every request.
"""

from __future__ import annotations

import io
import json
import re

from tests.data.fault_server import FABLE, FaultServer, _Handler

GRADE = {"grammar": 7, "creativity": 5, "consistency": 8, "plot": 6, "age_group": "C", "rationale": "Fine."}


def story_of(user: str) -> str:
    return re.search(r"<<<STORY>>>\n(.*)\n<<<END STORY>>>", user, re.S).group(1)


def answer(body: dict, auth: str = "") -> str:
    user = body["messages"][-1]["content"]
    grade = json.dumps(GRADE)
    if "[[judge:echokey]]" in user:  # a grade whose rationale quotes the Authorization header
        return json.dumps({**GRADE, "rationale": f"Fine. Sent with {auth}."})
    if "[[judge:nan]]" in user or "[[judge:infinity]]" in user:
        return grade.replace('"plot": 6', '"plot": NaN' if "[[judge:nan]]" in user else '"plot": Infinity')
    if "[[judge:deep]]" in user:
        return "[" * 5000 + "]" * 5000 + f"\n{grade}"
    if "[[judge:garbage]]" in user:
        return "What a lovely story! I would give it a good score."
    if "[[judge:fenced]]" in user:
        return f"Here is my grade:\n```json\n{grade}\n```\nThank you."
    if "[[judge:echo]]" in user:
        return f"The story says: {story_of(user)}\nMy grade: {grade}"
    return grade


class _JudgeHandler(_Handler):
    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers["Content-Length"]))
        self._body = json.loads(raw)
        with self.server.lock:
            self.server.bodies.append(self._body)
        kind = (self._body.get("response_format") or {}).get("type")
        if kind in self.server.refuse:
            if self.server.refuse_status == 400:
                return self._send(400, b'{"error": {"message": "response_format is not supported"}}')
            message = (
                "1 validation error:\n  {'type': 'literal_error', "
                "'loc': ('body', 'response_format', 'type'), "
                f"'msg': \"Input should be 'text' or 'json_object'\", 'input': '{kind}'}}"
            )
            body = json.dumps({"error": {"message": message, "type": "internal_server_error"}})
            return self._send(self.server.refuse_status, body.encode())
        self.rfile = io.BytesIO(raw)
        return super().do_POST()

    def _reply(self, model: str, content: str, finish: str = "stop", usage=None) -> bytes:
        if content == FABLE:
            content = answer(self._body, self.headers.get("Authorization", ""))
        return super()._reply(model, content, finish, usage)


class JudgeServer(FaultServer):
    def __init__(self, refuse=(), refuse_status: int = 400, **kwargs):
        super().__init__(**kwargs)
        self.RequestHandlerClass = _JudgeHandler
        self.refuse, self.refuse_status = set(refuse), refuse_status
        self.bodies: list[dict] = []
