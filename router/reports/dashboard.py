"""The savings dashboard: one self-contained HTML page, charts as inline SVG built here on the server.

No script, no font, no image, no stylesheet from anywhere: many deployments block a browser's outbound
requests, and a page without JavaScript renders the same with it on or off. Every piece of text that comes
from data (model names) is HTML-escaped. Pure function of the report data; no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape
from typing import Any

from router.quality import panel as quality_panel
from router.quality.report import Samples, build_quality_report, charge_report, overhead, overhead_by_day
from router.reports.aggregate import (
    Cube,
    Summary,
    build_report,
    daily_by_model,
    percentile,
    rollup,
    usd,
)
from router.reports.period import Period

PALETTE = ("#2563eb", "#16a34a", "#f59e0b", "#9333ea", "#0891b2", "#e11d48", "#65a30d", "#c2410c")
OVERHEAD_COLOR = "#6b7280"
QUALITY_COLOR = "#d1d5db"
W, H = 880, 260  # chart viewBox
PAD_L, PAD_R, PAD_T, PAD_B = 64, 12, 12, 40

CSS = """
*{box-sizing:border-box}body{margin:0;font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
color:#111827;background:#f3f4f6}header{background:#111827;color:#f9fafb;padding:16px 24px;display:flex;
flex-wrap:wrap;gap:12px;align-items:center;justify-content:space-between}h1{font-size:20px;margin:0}
header form{display:flex;gap:8px;align-items:center}header input,header button{font:inherit;padding:4px 8px;
border-radius:4px;border:1px solid #4b5563}header button{background:#2563eb;color:#fff;border-color:#2563eb}
main{max-width:960px;margin:0 auto;padding:16px 24px 32px}.cards{display:grid;gap:12px;
grid-template-columns:repeat(auto-fit,minmax(140px,1fr))}.card{background:#fff;border-radius:8px;
padding:12px 14px;box-shadow:0 1px 2px rgba(0,0,0,.08)}.card .label{color:#6b7280;font-size:12px;
text-transform:uppercase;letter-spacing:.04em}.card .value{font-size:22px;font-weight:650;margin:2px 0}
.card .sub{color:#4b5563;font-size:12px}.good{color:#15803d}.bad{color:#b91c1c}section{background:#fff;
border-radius:8px;padding:12px 16px;margin-top:16px;box-shadow:0 1px 2px rgba(0,0,0,.08)}h2{font-size:15px;
margin:0 0 8px}svg{width:100%;height:auto;display:block}svg text{font:11px system-ui,sans-serif;fill:#374151}
.legend{display:flex;flex-wrap:wrap;gap:12px;font-size:12px;margin-top:4px}.sw{display:inline-block;width:10px;
height:10px;border-radius:2px;margin-right:4px;vertical-align:-1px}table{border-collapse:collapse;width:100%;
font-size:12px}th,td{padding:4px 6px;text-align:right;border-bottom:1px solid #e5e7eb}th:first-child,
td:first-child{text-align:left}footer{color:#6b7280;font-size:12px;margin-top:16px}
"""


def money(value: float) -> str:
    """Dollars to the cent from $1 up, four decimals below (small test traffic still reads)."""
    sign = "-" if value < 0 else ""
    value = abs(value)
    return f"{sign}${value:,.2f}" if value >= 1 else f"{sign}${value:.4f}"


def pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}%"


def ms(value: float | None) -> str:
    return "–" if value is None else f"{value:,.0f} ms"


def nice_max(value: float) -> float:
    """The smallest "round" number (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8 × 10^k) at or above ``value``."""
    if value <= 0:
        return 1.0
    exp = math.floor(math.log10(value))
    for m in (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10):
        top = m * 10**exp
        if top >= value * (1 - 1e-12):
            return float(top)
    return float(10 ** (exp + 1))


def _axis_money(v: float) -> str:
    if v == 0:
        return "$0"
    return f"${v:,.0f}" if abs(v) >= 100 else f"${v:,.2f}" if abs(v) >= 0.1 else f"${v:.4f}"


def _legend(items: Sequence[tuple[str, str]]) -> str:
    spans = "".join(
        f'<span><span class="sw" style="background:{color}"></span>{escape(name)}</span>'
        for name, color in items
    )
    return f'<div class="legend">{spans}</div>'


def _day_chart(
    labels: Sequence[str],
    stacks: Sequence[Sequence[tuple[float, str, str]]],
    title: str,
    signed: bool = False,
) -> str:
    """Bars per day; each bar is a stack of (value, color, tooltip). ``signed`` allows negative bars."""
    lo = min([0.0, *(sum(v for v, _, _ in s) for s in stacks)]) if signed else 0.0
    hi = max([0.0, *(sum(v for v, _, _ in s if v > 0) for s in stacks)])
    top = nice_max(hi) if hi > 0 else (0.0 if lo < 0 else 1.0)
    bottom = -nice_max(-lo) if lo < 0 else 0.0
    plot_w, plot_h = W - PAD_L - PAD_R, H - PAD_T - PAD_B

    def y(v: float) -> float:
        return PAD_T + plot_h * (top - v) / (top - bottom)

    out = [f'<svg viewBox="0 0 {W} {H}" role="img" aria-label="{escape(title)}">']
    for i in range(5):
        v = bottom + (top - bottom) * i / 4
        out.append(
            f'<line x1="{PAD_L}" x2="{W - PAD_R}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#e5e7eb"/>'
            f'<text x="{PAD_L - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{_axis_money(v)}</text>'
        )
    n = max(1, len(labels))
    slot = plot_w / n
    bar = max(1.0, slot * 0.7)
    every = max(1, math.ceil(n / 14))
    for i, (label, stack) in enumerate(zip(labels, stacks, strict=True)):
        x = PAD_L + i * slot + (slot - bar) / 2
        pos = neg = 0.0
        for value, color, tip in stack:
            if value >= 0:
                y0, y1 = y(pos + value), y(pos)
                pos += value
            else:
                y0, y1 = y(neg), y(neg + value)
                neg += value
            if y1 - y0 > 0.05:
                out.append(
                    f'<rect x="{x:.1f}" y="{y0:.1f}" width="{bar:.1f}" height="{y1 - y0:.1f}" '
                    f'fill="{color}"><title>{escape(label)} {escape(tip)}</title></rect>'
                )
        if i % every == 0:
            out.append(
                f'<text x="{x + bar / 2:.1f}" y="{H - PAD_B + 16}" text-anchor="middle">{label[5:]}</text>'
            )
    out.append(f'<line x1="{PAD_L}" x2="{W - PAD_R}" y1="{y(0):.1f}" y2="{y(0):.1f}" stroke="#9ca3af"/>')
    out.append("</svg>")
    return "".join(out)


def _hbars(rows: Sequence[tuple[str, Sequence[tuple[float, str, str]]]], fmt: Any) -> str:
    """Horizontal bars: one row per name, one or more bars (value, color, text) per row."""
    per_row = max([1, *(len(bars) for _, bars in rows)])
    bar_h, gap = 16, 10
    row_h = per_row * bar_h + gap
    height = max(row_h * len(rows) + 8, 40)
    label_w, text_w = 150, 120
    plot_w = W - label_w - text_w
    top = nice_max(max([0.0, *(v for _, bars in rows for v, _, _ in bars)]))
    out = [f'<svg viewBox="0 0 {W} {height}" role="img">']
    for r, (name, bars) in enumerate(rows):
        y0 = 4 + r * row_h
        out.append(
            f'<text x="{label_w - 8}" y="{y0 + per_row * bar_h / 2 + 4:.1f}" text-anchor="end">'
            f"{escape(name)}</text>"
        )
        for b, (value, color, text) in enumerate(bars):
            yb = y0 + b * bar_h
            width = plot_w * value / top if top else 0
            out.append(
                f'<rect x="{label_w}" y="{yb}" width="{width:.1f}" height="{bar_h - 3}" '
                f'fill="{color}" rx="2">'
                f"<title>{escape(name)} {escape(text)}</title></rect>"
                f'<text x="{label_w + width + 6:.1f}" y="{yb + bar_h - 5}">{escape(fmt(value, text))}</text>'
            )
    out.append("</svg>")
    return "".join(out)


def _card(label: str, value: str, sub: str, cls: str = "") -> str:
    return (
        f'<div class="card"><div class="label">{escape(label)}</div>'
        f'<div class="value {cls}" data-k="{escape(label)}">{escape(value)}</div>'
        f'<div class="sub">{escape(sub)}</div></div>'
    )


def _day_stacks(
    series: Sequence[tuple[Any, dict[str, Summary]]],
    models: Sequence[str],
    colors: dict[str, str],
    checks: dict[str, int] | None = None,
) -> tuple[list[Any], list[Any]]:
    """Per day: the spend stack (each model, the judge overhead, the quality checks) and the savings bar."""
    spend_stacks = []
    savings_stacks = []
    checks = checks or {}
    for day, per_model in series:
        stack = [
            (usd(per_model[m].spend), colors[m], f"{m}: {money(usd(per_model[m].spend))}")
            for m in models
            if m in per_model
        ]
        day_total = Summary()
        for s in per_model.values():
            day_total.merge(s)
        stack.append(
            (usd(day_total.overhead), OVERHEAD_COLOR, f"judge overhead: {money(usd(day_total.overhead))}")
        )
        checked = checks.get(day, 0)
        if checked:
            stack.append((usd(checked), QUALITY_COLOR, f"quality checks: {money(usd(checked))}"))
        spend_stacks.append(stack)
        saved = usd(day_total.baseline - day_total.spend - day_total.overhead - checked)
        savings_stacks.append([(saved, "#16a34a" if saved >= 0 else "#dc2626", f"saved {money(saved)}")])
    return spend_stacks, savings_stacks


def _latency_rows(cube: Cube) -> list[Any]:
    by_model = rollup(cube, lambda k: k.model)
    all_lat = Summary()
    for s in by_model.values():
        all_lat.merge(s)
    rows = []
    for name, s in [("all models", all_lat), *sorted(by_model.items())]:
        p50, p95 = percentile(s.latency, 0.5), percentile(s.latency, 0.95)
        if p50 is not None and p95 is not None:
            rows.append((name, [(p50, "#60a5fa", "p50"), (p95, "#1d4ed8", "p95")]))
    return rows


def _cards(t: dict[str, Any]) -> str:
    savings_cls = "good" if t["savings_usd"] >= 0 else "bad"
    overhead_share = t["overhead_usd"] / t["total_spend_usd"] * 100 if t["total_spend_usd"] else None
    return "".join(
        [
            _card(
                "Total spend",
                money(t["total_spend_usd"]),
                f"answering {money(t['spend_usd'])} + judge {money(t['overhead_usd'])}"
                + (
                    f" + quality checks {money(t['quality_check_usd'])}" if t.get("quality_check_usd") else ""
                ),
            ),
            _card("Baseline", money(t["baseline_usd"]), "same tokens on the most capable model"),
            _card("Savings", pct(t["savings_pct"]), f"{money(t['savings_usd'])} vs baseline", savings_cls),
            _card("Calls", f"{t['calls']:,}", f"{t['errors']:,} errors · {t['fallbacks']:,} fallbacks"),
            _card(
                "Prompt cache saved",
                money(t["cache_savings_usd"]),
                f"{t['cached_tokens']:,} of {t['prompt_tokens']:,} prompt tokens cached",
            ),
            _card(
                "Router overhead",
                money(t["overhead_usd"]),
                f"{t['judge_calls']:,} judge calls · {pct(overhead_share)} of spend",
            ),
            _card(
                "Latency p50 / p95", f"{ms(t['latency_p50_ms'])}", f"p95 {ms(t['latency_p95_ms'])} (ok calls)"
            ),
        ]
    )


def _quality_card(q: dict[str, Any], t: dict[str, Any]) -> str:
    checks = f"checks {money(t['quality_check_usd'])}"
    if q["win_or_tie_rate"] is None:
        return _card("Quality kept", "–", f"{q['samples']:,} samples · {checks}")
    lo, hi = q["ci95"]
    sub = f"95% CI {100 * lo:.1f}–{100 * hi:.1f}% · {q['judged']:,} judged · {checks}"
    return _card("Quality kept", f"{100 * q['win_or_tie_rate']:.1f}%", sub)


def _table_rows(groups: Sequence[dict[str, Any]]) -> str:
    return "".join(
        f"<tr><td>{escape(g['model'])}</td><td>{g['calls']:,}</td><td>{g['share_of_calls'] * 100:.1f}%</td>"
        f"<td>{g['errors']:,}</td><td>{g['fallbacks']:,}</td><td>{g['cached_tokens']:,}</td>"
        f"<td>{money(g['spend_usd'])}</td>"
        f"<td>{money(g['overhead_usd'])}</td><td>{money(g['baseline_usd'])}</td>"
        f"<td>{money(g['savings_usd'])}</td><td>{pct(g['savings_pct'])}</td>"
        f"<td>{ms(g['latency_p50_ms'])}</td><td>{ms(g['latency_p95_ms'])}</td></tr>"
        for g in groups
    )


def _spend_table(title: str, by: str, groups: Sequence[dict[str, Any]]) -> str:
    """Spend and savings per caller or per team (``group_by`` caller / team groups), biggest spend first."""
    ordered = sorted(groups, key=lambda g: (-g["total_spend_usd"], g[by]))
    rows = "".join(
        f"<tr><td>{escape(g[by])}</td><td>{g['calls']:,}</td><td>{g['errors']:,}</td>"
        f"<td>{money(g['spend_usd'])}</td><td>{money(g['overhead_usd'])}</td>"
        f"<td>{money(g['total_spend_usd'])}</td><td>{money(g['baseline_usd'])}</td>"
        f"<td>{money(g['savings_usd'])}</td><td>{pct(g['savings_pct'])}</td></tr>"
        for g in ordered
    )
    return (
        f'<section id="by-{by}"><h2>{escape(title)}</h2><table><thead><tr><th>{by}</th><th>calls</th>'
        "<th>errors</th><th>spend</th><th>judge</th><th>total spend</th><th>baseline</th><th>savings</th>"
        f"<th>savings %</th></tr></thead><tbody>{rows}</tbody></table></section>"
    )


def _attribution(cube: Cube, period: Period) -> str:
    """The per-caller and per-team tables (quality checks are the router's own calls: in no caller's row)."""
    by_caller = build_report(cube, period.start, period.end, "caller")["groups"]
    by_team = build_report(cube, period.start, period.end, "team")["groups"]
    return _spend_table("Spend and savings by caller", "caller", by_caller) + _spend_table(
        "Spend and savings by team", "team", by_team
    )


def render(
    cube: Cube, period: Period, sources: dict[str, int], code: str | None = None, quality: Samples = ()
) -> str:
    """The whole page for ``period``. ``code`` (the caller's function key, if it came in the query) is kept
    in the date form so changing the range works behind Functions auth. ``quality``: the quality samples
    in the range (their spend is charged to the figures; their verdicts fill the quality panel)."""
    report = charge_report(build_report(cube, period.start, period.end, "model"), overhead(quality))
    t = report["totals"]
    models = [g["model"] for g in sorted(report["groups"], key=lambda g: (-g["total_spend_usd"], g["model"]))]
    colors = {m: PALETTE[i % len(PALETTE)] for i, m in enumerate(models)}
    series = daily_by_model(cube, period.start, period.end)
    labels = [day for day, _ in series]
    spend_stacks, savings_stacks = _day_stacks(series, models, colors, overhead_by_day(quality))
    calls_rows = [
        (g["model"], [(float(g["calls"]), colors[g["model"]], f"{g['share_of_calls'] * 100:.1f}%")])
        for g in sorted(report["groups"], key=lambda g: (-g["calls"], g["model"]))
    ]
    cards = _cards(t) + _quality_card(build_quality_report(quality, period, None), t)
    table_rows = _table_rows(report["groups"])
    hidden = f'<input type="hidden" name="code" value="{escape(code)}">' if code else ""
    legend = _legend([*((m, colors[m]) for m in models), ("judge overhead", OVERHEAD_COLOR),
                      ("quality checks", QUALITY_COLOR)])  # fmt: skip
    empty = "" if t["calls"] else "<section><h2>No calls recorded in this range.</h2></section>"
    source = (
        f"{sources.get('rollup_days', 0)} day(s) from daily roll-ups, "
        f"{sources.get('scanned_days', 0)} scanned live ({sources.get('rows_scanned', 0):,} records)"
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>LLM router savings {period.start} to {period.end}</title>
<style>{CSS}</style></head>
<body><header><h1>LLM router savings · {period.start} → {period.end} ({period.days} days, UTC)</h1>
<form method="get" action="/api/dashboard">{hidden}
<label>from <input type="date" name="from" value="{period.start}"></label>
<label>to <input type="date" name="to" value="{period.end}"></label><button type="submit">Show</button></form>
</header><main>
<div class="cards">{cards}</div>{empty}
<section><h2>Spend per day, by model (answering) and judge overhead</h2>
{_day_chart(labels, spend_stacks, "spend per day")}{legend}</section>
<section><h2>Savings per day (baseline minus total spend)</h2>
{_day_chart(labels, savings_stacks, "savings per day", signed=True)}</section>
{quality_panel.section(quality, period, colors)}
<section><h2>Calls per model</h2>
{_hbars(calls_rows, lambda v, text: f"{v:,.0f} calls ({text})")}</section>
<section><h2>Latency percentiles (ok calls)</h2>
{_hbars(_latency_rows(cube), lambda v, text: f"{text} {v:,.0f} ms")}
{_legend([("p50", "#60a5fa"), ("p95", "#1d4ed8")])}</section>
<section><h2>By model</h2><table><thead><tr><th>model</th><th>calls</th><th>share</th><th>errors</th>
<th>fallbacks</th><th>cached tokens</th><th>spend</th><th>judge</th><th>baseline</th><th>savings</th>
<th>savings %</th><th>p50</th><th>p95</th></tr></thead><tbody>{table_rows}</tbody></table></section>
{_attribution(cube, period)}
<footer>Baseline: the same tokens (cached, uncached and completion alike) priced on the most capable enabled
model at the time of each call. Prompt cache saved: cached prompt tokens at the input minus the cached input
price. Total
spend includes the router's own judge calls; failed calls count with their judge cost. Latency: nearest-rank
over ok calls, within 1%. Source: {escape(source)}.</footer>
</main></body></html>
"""
