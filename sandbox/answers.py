"""JSON answers whose numbers carry every digit Procore keeps.

Procore's amounts are decimals, and its JSON numbers write them whole. The stdlib encoder
behind starlette's ``JSONResponse`` knows only floats, which keep about 16 digits
(99999999999999.99 would be answered as ...98). So a view shows a stored amount as a
``JsonNumber`` (a float that keeps the text it came from: every route reading it as a number
still can), and this response writes that text; everything else as starlette would.
"""

from __future__ import annotations

import json
from typing import Any

from starlette import responses

from sandbox.fields import JsonNumber

_ENCODE = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode


class JSONResponse(responses.JSONResponse):
    def render(self, content: Any) -> bytes:
        return json_text(content).encode("utf-8")


def json_text(value: Any) -> str:
    if isinstance(value, JsonNumber):
        return value.text
    if isinstance(value, str):
        return _ENCODE(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{_ENCODE(str(k))}:{json_text(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(json_text(item) for item in value) + "]"
    return _ENCODE(value)
