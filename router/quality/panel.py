"""The dashboard's quality panel: win-or-tie rate per day with its 95% interval, per routed model.

Inline SVG built on the server like the rest of the dashboard (no script, nothing loaded); every name
from the data is HTML-escaped. Pure function of the samples.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from router.quality.report import build_quality_report, daily_by_model
from router.reports.period import Period

W, H = 880, 240
PAD_L, PAD_R, PAD_T, PAD_B = 48, 12, 12, 40
ALL_COLOR = "#111827"


def _y(rate: float) -> float:
    return PAD_T + (H - PAD_T - PAD_B) * (1 - rate)


def _chart(
    series: Sequence[tuple[str, Mapping[str, Any]]], names: Sequence[str], colors: Mapping[str, str]
) -> str:
    out = [f'<svg viewBox="0 0 {W} {H}" role="img" aria-label="win-or-tie rate per day">']
    for pct in (0, 25, 50, 75, 100):
        y = _y(pct / 100)
        out.append(f'<line x1="{PAD_L}" x2="{W - PAD_R}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e5e7eb"/>'
                   f'<text x="{PAD_L - 6}" y="{y + 4:.1f}" text-anchor="end">{pct}%</text>')  # fmt: skip
    slot = (W - PAD_L - PAD_R) / max(1, len(series))
    step = slot * 0.7 / max(1, len(names))
    every = max(1, -(-len(series) // 14))
    for i, (day, per) in enumerate(series):
        x0 = PAD_L + i * slot + slot * 0.15
        for j, name in enumerate(names):
            t = per.get(name)
            fig = t.figures() if t is not None else None
            if fig is None or fig["win_or_tie_rate"] is None:
                continue
            x, (lo, hi), rate = x0 + (j + 0.5) * step, fig["ci95"], fig["win_or_tie_rate"]
            tip = f"{day} {name}: {rate:.0%} [{lo:.0%}, {hi:.0%}], {fig['judged']} judged"
            out.append(f'<g><title>{escape(tip)}</title><line x1="{x:.1f}" x2="{x:.1f}" y1="{_y(hi):.1f}" '
                       f'y2="{_y(lo):.1f}" stroke="{colors[name]}" stroke-width="2"/><circle cx="{x:.1f}" '
                       f'cy="{_y(rate):.1f}" r="3.5" fill="{colors[name]}"/></g>')  # fmt: skip
        if i % every == 0:
            out.append(
                f'<text x="{x0 + slot * 0.35:.1f}" y="{H - PAD_B + 16}" text-anchor="middle">{day[5:]}</text>'
            )
    out.append("</svg>")
    return "".join(out)


def _rows(groups: Sequence[Mapping[str, Any]]) -> str:
    def rate(g: Mapping[str, Any]) -> str:
        if g["win_or_tie_rate"] is None:
            return "<td>–</td><td>–</td>"
        lo, hi = g["ci95"]
        return f"<td>{100 * g['win_or_tie_rate']:.1f}%</td><td>{100 * lo:.1f}–{100 * hi:.1f}%</td>"

    return "".join(
        f"<tr><td>{escape(str(g['model']))}</td><td>{g['samples']:,}</td><td>{g['wins']:,}</td>"
        f"<td>{g['ties']:,}</td><td>{g['losses']:,}</td><td>{g['judge_errors']:,}</td>{rate(g)}"
        f"<td>${g['overhead_usd']:.4f}</td></tr>"
        for g in groups
    )


def section(samples: Sequence[Mapping[str, Any]], period: Period, colors: Mapping[str, str]) -> str:
    """The panel's HTML (``colors``: the dashboard's model colours; unknown models get grey)."""
    report = build_quality_report(samples, period, "model")
    if not report["samples"]:
        return ("<section><h2>Quality kept</h2><p>No quality samples in this range "
                "(set <code>QUALITY_SAMPLE_RATE</code> above 0 to compare routed answers with the "
                "baseline's)."
                "</p></section>")  # fmt: skip
    models = [g["model"] for g in report["groups"]]
    palette = {"all": ALL_COLOR, **{m: colors.get(m, "#9ca3af") for m in models}}
    names = ["all", *models]
    legend = "".join(
        f'<span><span class="sw" style="background:{palette[n]}"></span>{escape(n)}</span>' for n in names
    )
    chart = _chart(daily_by_model(samples, period), names, palette)
    all_row = {"model": "all models", **{k: v for k, v in report.items() if k != "groups"}}
    return f"""<section><h2>Quality kept: routed answer at least as good as the baseline's (win or tie),
per day, with 95% interval</h2>{chart}<div class="legend">{legend}</div>
<table><thead><tr><th>routed model</th><th>samples</th><th>wins</th><th>ties</th><th>losses</th>
<th>judge errors</th><th>win or tie</th><th>95% interval</th><th>check cost</th></tr></thead>
<tbody>{_rows([all_row, *report["groups"]])}</tbody></table></section>"""
