"""Running scorers over a data file and rendering the results as a table or JSON."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from router.classifiers import Scorer, get_scorer
from router.classifiers.learned import LearnedScorer
from router.classifiers.learned_v2 import LearnedV2Scorer
from router.evaluation import metrics as M
from router.evaluation.data import Pair, Record, pair

BUILTIN = ("seed", "improved", "learned", "learned-v2")


@dataclass(frozen=True, slots=True)
class Evaluation:
    """Everything ``router eval`` reports for one data file."""

    name: str
    field: str
    data: Pair
    target: float
    routers: list[tuple[M.Summary, M.Curve]]  # scorers first, in the order asked
    baselines: list[M.Summary]
    random_curve: M.Curve
    oracle_curve: M.Curve
    in_sample: list[str]  # scorers trained on this very file: their numbers are not held-out


def make_scorer(name: str, weights: str | None = None) -> Scorer:
    """A registry scorer; ``learned``/``learned-v2`` with ``weights`` load that file instead of the
    shipped one."""
    if weights and name in ("learned", "learned-v2") and _is_v2(weights) == (name == "learned-v2"):
        if name == "learned-v2":
            return LearnedV2Scorer(weights)
        return LearnedScorer(weights)
    return get_scorer(name)


def _is_v2(path: str) -> bool:
    """A learned-v2 data file carries a vocabulary; so ``--weights`` goes to the scorer it fits."""
    with open(path, encoding="utf-8") as fh:
        return '"vocab"' in fh.read()


def evaluate(
    records: Sequence[Record],
    classifiers: Sequence[str],
    *,
    name: str,
    strong: str,
    weak: str,
    field: str = "question",
    target: float = 0.95,
    fingerprint: str | None = None,
    weights: str | None = None,
) -> Evaluation:
    data = pair(records, strong, weak)
    routers = []
    in_sample = []
    for cname in classifiers:
        scorer = make_scorer(cname, weights)
        if fingerprint and fingerprint in getattr(scorer, "trained_on", {}).values():
            in_sample.append(cname)
        c = M.curve([scorer.score(r.text(field)) for r in records], data)
        routers.append((M.summarise(cname, c, target), c))
    return Evaluation(
        name=Path(name).name,
        field=field,
        data=data,
        target=target,
        routers=routers,
        baselines=M.baselines(data, target),
        random_curve=M.curve([0.0] * len(data), data),
        oracle_curve=M.curve(M.oracle_scores(data), data),
        in_sample=in_sample,
    )


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


def _num(v: float | None, digits: int = 3) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def summary_rows(ev: Evaluation) -> list[list[str]]:
    rows = []
    for s in [r[0] for r in ev.routers] + ev.baselines:
        at = s.at_target
        rows.append(
            [
                s.name + (" *" if s.name in ev.in_sample else ""),
                _num(s.apgr),
                _pct(s.cpt50),
                _pct(s.cpt80),
                "-" if at is None or at.threshold is None else f"{at.threshold:.4g}",
                "-" if at is None else _pct(at.strong_fraction),
                "-" if at is None else f"{at.quality:.3f}",
                _pct(s.saving) if at is not None else "misses target",
            ]
        )
    return rows


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    lines = []
    for row in [list(header), *rows]:
        cells = [
            str(c).ljust(w) if i == 0 else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def render(ev: Evaluation) -> str:
    d = ev.data
    c = ev.random_curve
    pct = f"{round(100 * ev.target)}%"
    out = [
        f"{ev.name}: {len(d)} queries, scored on the {ev.field!r} field",
        f"strong {d.strong}: quality {c.strong_quality:.3f}, cost ${c.strong_cost:.4f}",
        f"weak   {d.weak}: quality {c.weak_quality:.3f}, cost ${c.weak_cost:.4f}",
        "",
        table(
            [
                "router",
                "APGR",
                "CPT(50%)",
                "CPT(80%)",
                f"threshold@{pct}",
                "strong calls",
                "quality",
                "saving vs strong",
            ],
            summary_rows(ev),
        ),
        "",
        f"threshold@{pct}: the cheapest threshold keeping >= {pct} of strong quality (score >= threshold"
        " -> strong).",
        "random is the exact expectation of random routing; ties in score count as random order.",
        *(
            [
                f"* in-sample: {', '.join(ev.in_sample)} was trained on this file, so its row is not a"
                " held-out number (see `classifier train --held-out`)."
            ]
            if ev.in_sample
            else []
        ),
        "",
        "quality (PGR) against the fraction of calls sent to the strong model:",
    ]
    curves = [(s.name, cv) for s, cv in ev.routers] + [
        ("random", ev.random_curve),
        ("oracle", ev.oracle_curve),
    ]
    rows = []
    for x in M.CURVE_GRID:
        row = [f"{100 * x:.0f}%"]
        for _, cv in curves:
            q = cv.quality_at(x)
            g = cv.pgr(q)
            row.append(f"{q:.3f} ({_num(g, 2)})")
        rows.append(row)
    out.append(table(["strong calls", *[n for n, _ in curves]], rows))
    return "\n".join(out)


def _point(p: M.Point | None) -> dict[str, Any] | None:
    if p is None:
        return None
    return {
        "threshold": p.threshold,
        "strong_fraction": p.strong_fraction,
        "quality": p.quality,
        "cost": p.cost,
    }


def summary_json(s: M.Summary) -> dict[str, Any]:
    return {
        "name": s.name,
        "apgr": s.apgr,
        "cpt50": s.cpt50,
        "cpt80": s.cpt80,
        "at_target": _point(s.at_target),
        "saving": s.saving,
    }


def to_json(ev: Evaluation) -> dict[str, Any]:
    c = ev.random_curve
    return {
        "data": ev.name,
        "queries": len(ev.data),
        "prompt_field": ev.field,
        "target_quality": ev.target,
        "strong": {"model": ev.data.strong, "quality": c.strong_quality, "cost": c.strong_cost},
        "weak": {"model": ev.data.weak, "quality": c.weak_quality, "cost": c.weak_cost},
        "classifiers": [
            {
                **summary_json(s),
                "in_sample": s.name in ev.in_sample,
                "curve": [[x, q, g] for x, q, g in M.pgr_table(cv)],
            }
            for s, cv in ev.routers
        ],
        "baselines": [summary_json(s) for s in ev.baselines],
    }
