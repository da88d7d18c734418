"""What the simulator answers when a request offers tools or asks for JSON, as Azure OpenAI shapes it. Pure.

- **Tools**: with ``tools`` offered, the answer is a ``tool_calls`` message (``finish_reason:
  "tool_calls"``) when ``tool_choice`` names a function or is ``"required"``, or when the latest user
  turn names a tool (``get_weather``, or ``get weather``) or asks for one ("call", "use the tool");
  ``tool_choice: "none"`` and a conversation whose last message is a tool result get text, so a client's
  tool loop ends. The arguments are a JSON object built from the tool's ``parameters`` schema.
- **JSON**: ``response_format`` ``json_object`` gives a JSON object; ``json_schema`` gives an object with
  every property of the schema (its required ones included) of the right JSON type, enums and constants
  honoured, local ``$ref`` followed.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

_ASKS_FOR_A_TOOL = re.compile(r"\b(call|invoke|use (the|a|your) tools?)\b", re.I)
_MAX_DEPTH = 8
_FORMATS = {
    "date": "2026-01-01",
    "date-time": "2026-01-01T12:00:00Z",
    "time": "12:00:00",
    "email": "user@example.com",
    "uri": "https://example.com",
    "uuid": "00000000-0000-4000-8000-000000000000",
}


def message_text(message: Mapping[str, Any]) -> str:
    """A message's text: its string content, or its text parts joined (the simulator's token count)."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, Mapping))
    return ""


def _functions(body: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    tools = body.get("tools")
    if not isinstance(tools, list):
        return []
    out = []
    for tool in tools:
        fn = tool.get("function") if isinstance(tool, Mapping) else None
        if isinstance(fn, Mapping) and isinstance(fn.get("name"), str):
            out.append(fn)
    return out


def tools_to_call(body: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The function definitions the answer calls (empty: answer in text)."""
    functions = _functions(body)
    messages = body.get("messages") or []
    choice = body.get("tool_choice")
    if not functions or choice == "none" or (messages and messages[-1].get("role") == "tool"):
        return []
    if isinstance(choice, Mapping):
        wanted = (choice.get("function") or {}).get("name")
        return [f for f in functions if f["name"] == wanted][:1]
    last = next((message_text(m) for m in reversed(messages) if m.get("role") == "user"), "").lower()
    named = [f for f in functions if f["name"].lower() in last or f["name"].lower().replace("_", " ") in last]
    if not named and (choice == "required" or _ASKS_FOR_A_TOOL.search(last)):
        named = functions[:1]
    return named if body.get("parallel_tool_calls", True) is not False else named[:1]


def tool_calls(functions: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Chat Completions ``tool_calls`` for ``functions``, arguments as a JSON string."""
    calls = []
    for fn in functions:
        params = fn.get("parameters")
        args = example(params, params) if isinstance(params, Mapping) else {}
        arguments = json.dumps(args if isinstance(args, dict) else {}, separators=(",", ":"))
        calls.append({"id": f"call_{uuid.uuid4().hex[:24]}", "type": "function",
                      "function": {"name": fn["name"], "arguments": arguments}})  # fmt: skip
    return calls


def json_answer(response_format: Any, reply: str) -> str | None:
    """The JSON text ``response_format`` asks for, or None when it asks for none (text)."""
    if not isinstance(response_format, Mapping):
        return None
    kind = response_format.get("type")
    if kind == "json_object":
        return json.dumps({"answer": reply})
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, Mapping) else None
        value = example(schema, schema) if isinstance(schema, Mapping) else {}
        return json.dumps(value)
    return None


def example(schema: Any, root: Any, key: str = "value", depth: int = 0) -> Any:
    """A value valid for a simple JSON schema: the first of ``const``/``enum``/``default``, else one of
    the declared type (objects with every property, arrays with one item)."""
    if not isinstance(schema, Mapping) or depth > _MAX_DEPTH:
        return None
    ref = schema.get("$ref")
    if isinstance(ref, str):
        return example(_resolve(ref, root), root, key, depth + 1)
    for name in ("const", "enum", "default"):
        if name in schema:
            value = schema[name]
            if name != "enum":
                return value
            if isinstance(value, list) and value:
                return value[0]
    for name in ("anyOf", "oneOf", "allOf"):
        options = schema.get(name)
        if isinstance(options, list) and options:
            typed = [o for o in options if not (isinstance(o, Mapping) and o.get("type") == "null")]
            return example((typed or options)[0], root, key, depth + 1)
    return _typed(schema, root, key, depth)


def _typed(schema: Mapping[str, Any], root: Any, key: str, depth: int) -> Any:
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None:
        kind = "object" if "properties" in schema else "array" if "items" in schema else "string"
    if kind == "object":
        props = schema.get("properties")
        props = props if isinstance(props, Mapping) else {}
        return {k: example(v, root, k, depth + 1) for k, v in props.items()}
    if kind == "array":
        count = max(1, int(schema.get("minItems", 1) or 1))
        return [example(schema.get("items"), root, key, depth + 1) for _ in range(min(count, 3))]
    if kind in ("integer", "number"):
        low = schema.get("minimum", schema.get("exclusiveMinimum", 1))
        value = low + 1 if "exclusiveMinimum" in schema and "minimum" not in schema else low
        value = min(value, schema.get("maximum", value))
        return int(value) if kind == "integer" else float(value)
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    text = _FORMATS.get(str(schema.get("format")), f"simulated {key}")
    return text.ljust(int(schema.get("minLength", 0) or 0), "x")


def _resolve(ref: str, root: Any) -> Any:
    """A local ``#/…`` reference into ``root`` (None for anything else)."""
    if not ref.startswith("#"):
        return None
    node = root
    for part in ref.lstrip("#").strip("/").split("/"):
        if not part:
            continue
        node = node.get(part.replace("~1", "/").replace("~0", "~")) if isinstance(node, Mapping) else None
    return node
