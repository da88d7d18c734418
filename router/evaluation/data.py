"""Loading the routing-data JSONL format: per-query quality ``scores`` and ``cost`` for each model.

The format is RouterBench's, as prepared in ``shared/routing-data``; teams can log their own traffic
in it (``prompt`` or ``question``, plus per-model ``scores`` and ``cost``) and evaluate on that.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from router.errors import DataError

DEFAULT_STRONG = "gpt-4-1106-preview"
DEFAULT_WEAK = "mistralai/mixtral-8x7b-chat"
PROMPT_FIELDS = ("question", "prompt")


@dataclass(frozen=True, slots=True)
class Record:
    """One query with every model's measured quality and cost on it."""

    id: str
    source: str
    prompt: str
    question: str
    scores: Mapping[str, float]
    cost: Mapping[str, float]

    def text(self, field: str) -> str:
        return self.question if field == "question" else self.prompt


@dataclass(frozen=True, slots=True)
class Pair:
    """The strong/weak columns of a data set, aligned by query, ready for the metrics."""

    strong: str
    weak: str
    strong_quality: tuple[float, ...]
    weak_quality: tuple[float, ...]
    strong_cost: tuple[float, ...]
    weak_cost: tuple[float, ...]

    def __len__(self) -> int:
        return len(self.strong_quality)


def _number_map(value: Any, what: str, where: str) -> dict[str, float]:
    if not isinstance(value, dict) or not value:
        raise DataError(f"{where}: {what!r} must be a non-empty object of model -> number")
    out: dict[str, float] = {}
    for model, v in value.items():
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise DataError(f"{where}: {what}[{model!r}] is not a number")
        out[str(model)] = float(v)
    return out


def parse_record(obj: Any, where: str) -> Record:
    if not isinstance(obj, dict):
        raise DataError(f"{where}: expected a JSON object")
    prompt = obj.get("prompt")
    question = obj.get("question")
    if not isinstance(prompt, str) and not isinstance(question, str):
        raise DataError(f"{where}: needs a 'prompt' or 'question' string")
    # A file that logs only one of the two fields is usable with either --prompt-field.
    prompt_s = prompt if isinstance(prompt, str) else str(question)
    question_s = question if isinstance(question, str) else prompt_s
    return Record(
        id=str(obj.get("id", where)),
        source=str(obj.get("source", "")),
        prompt=prompt_s,
        question=question_s,
        scores=_number_map(obj.get("scores"), "scores", where),
        cost=_number_map(obj.get("cost"), "cost", where),
    )


def read_lines(lines: Iterable[str], name: str = "<data>") -> list[Record]:
    records = []
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{name}:{lineno}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{where}: invalid JSON ({exc.msg})") from None
        records.append(parse_record(obj, where))
    if not records:
        raise DataError(f"{name}: no records")
    return records


def load_jsonl(path: str | Path) -> list[Record]:
    """Every record of a routing-data JSONL file (blank lines skipped)."""
    p = Path(path)
    with p.open(encoding="utf-8") as fh:
        return read_lines(fh, str(p))


# The public sets the default scorer is judged on: never trained or tuned on, from any source. A file
# that carries a few of their rows (RouterArena has two MMLU ones) keeps them for `router eval` only.
HELD_OUT_SETS = frozenset({"mmlu", "gsm8k", "mtbench"})


def is_held_out(record: Record) -> bool:
    """Is the record from one of ``HELD_OUT_SETS``, by the last part of its ``source``
    (``routerarena/MMLU``; ``MMLUPro`` and ``ArcMMLU`` are other data sets)?"""
    name = record.source.rsplit("/", 1)[-1].lower()
    return "".join(c for c in name if c.isalnum()) in HELD_OUT_SETS


def load_training_jsonl(path: str | Path) -> list[Record]:
    """``load_jsonl`` less the held-out sets' rows: what training and calibration read."""
    kept = [r for r in load_jsonl(path) if not is_held_out(r)]
    if not kept:
        raise DataError(f"{path}: every record is from a held-out set ({', '.join(sorted(HELD_OUT_SETS))})")
    return kept


def models_in(records: Sequence[Record]) -> list[str]:
    """Models with a score and a cost on every record (the ones a router can be evaluated with)."""
    common = set(records[0].scores) & set(records[0].cost)
    for r in records[1:]:
        common &= set(r.scores) & set(r.cost)
    return sorted(common)


def resolve_model(name: str, available: Sequence[str]) -> str:
    """Exact name, else the unique model whose name ends with ``/name`` (``mixtral-8x7b-chat``)."""
    if name in available:
        return name
    matches = [m for m in available if m.split("/")[-1] == name]
    if len(matches) == 1:
        return matches[0]
    raise DataError(f"model {name!r} not in the data; available: {', '.join(available)}")


def pair(records: Sequence[Record], strong: str, weak: str) -> Pair:
    available = models_in(records)
    s, w = resolve_model(strong, available), resolve_model(weak, available)
    return Pair(
        strong=s,
        weak=w,
        strong_quality=tuple(r.scores[s] for r in records),
        weak_quality=tuple(r.scores[w] for r in records),
        strong_cost=tuple(r.cost[s] for r in records),
        weak_cost=tuple(r.cost[w] for r in records),
    )


def fingerprint(path: str | Path) -> str:
    """Short content hash: lets an evaluation tell that a weights file was trained on this data."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
