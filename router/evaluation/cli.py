"""``eval``, ``classifier train`` and ``calibrate``: the offline commands of ``python -m router``."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from router.classifiers.base import routed
from router.classifiers.learned_v2 import LearnedV2Scorer
from router.errors import DataError, SettingsError
from router.evaluation import model_matching as catalogue
from router.evaluation.calibration import Band, Plan, Tier, calibrate, judge_band_for_each, judge_scale
from router.evaluation.data import (
    DEFAULT_STRONG,
    DEFAULT_WEAK,
    PROMPT_FIELDS,
    fingerprint,
    load_jsonl,
    load_training_jsonl,
    models_in,
)
from router.evaluation.report import BUILTIN, evaluate, make_scorer, render, summary_json, table, to_json
from router.models import store as model_store
from router.models.config import ModelConfig, load_file
from router.quality import cli as quality_cli
from router.settings import Settings, load_settings

# The training modules (router.evaluation.training, .training_v2) stay imported inside run_train and
# run_train_v2: they need numpy, a dev-only dependency, and every other command must run without it.


def add_commands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``eval``, ``classifier train`` and ``calibrate`` on the ``python -m router`` parser."""
    _add_eval(subparsers)
    _add_train(subparsers)
    _add_calibrate(subparsers)


def _weights_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--weights",
        metavar="FILE.json",
        help="weights for 'learned' or 'learned-v2' (default: the shipped ones)",
    )


def _add_eval(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "eval", help="measure classifiers on a routing-data JSONL file (APGR, CPT, saving)"
    )
    p.add_argument("--data", nargs="+", required=True, metavar="FILE.jsonl")
    p.add_argument(
        "--classifier", action="append", metavar="NAME", help="repeatable; default: seed, improved, learned"
    )
    _pair_args(p)
    p.add_argument(
        "--target-quality", type=_fraction, default=0.95, help="share of strong quality to keep (0.95)"
    )
    _weights_arg(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=run_eval)


def _add_train(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    c = subparsers.add_parser("classifier", help="train the learned classifiers")
    csub = c.add_subparsers(dest="classifier_command", required=True)
    t = csub.add_parser("train", help="train a learned classifier's weights from routing-data files")
    t.add_argument("--data", nargs="+", required=True, metavar="FILE.jsonl", help="one file per task")
    t.add_argument("--out", required=True, metavar="FILE.json")
    t.add_argument(
        "--scorer",
        choices=("learned", "learned-v2"),
        default="learned",
        help="which scorer to train (learned)",
    )
    _pair_args(t)
    t.add_argument(
        "--alpha", type=float, default=30.0, help="ridge regularisation of the text statistics (30)"
    )
    t.add_argument(
        "--vectors",
        metavar="FILE.npz",
        help="learned-v2: distilled token vectors (default: the shipped ones)",
    )
    t.add_argument(
        "--dev", metavar="FILE.jsonl", help="learned-v2: report AUROC on an easy/hard labelled set"
    )
    t.add_argument("--held-out", action="store_true", help="also report leave-one-file-out metrics")
    t.add_argument("--json", action="store_true", help="print the held-out report as JSON")
    t.set_defaults(handler=run_train)


def _add_calibrate(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    k = subparsers.add_parser(
        "calibrate", help="max_complexity thresholds that hit a quality target cheapest"
    )
    k.add_argument(
        "--data",
        nargs="+",
        metavar="FILE.jsonl",
        help="one or more files with the same models (required unless --from-quality)",
    )
    k.add_argument("--target-quality", type=_fraction, default=0.95)
    k.add_argument(
        "--judge-share",
        type=_fraction,
        default=0.15,
        help="largest share of requests the suggested JUDGE_LOW..JUDGE_HIGH band may hold (0.15)",
    )
    k.add_argument(
        "--judge-data",
        nargs="+",
        default=[],
        metavar="FILE.jsonl",
        help="more requests (your traffic) the judge band must hold at most --judge-share of, each "
        "file on its own like every --data file",
    )
    k.add_argument("--classifier", metavar="NAME", help="default: the CLASSIFIER setting")
    _weights_arg(k)
    k.add_argument(
        "--models", metavar="FILE.json", help="catalogue file (models.sample.json format); default: the table"
    )
    k.add_argument(
        "--map",
        action="append",
        default=[],
        metavar="MODEL=DATA_MODEL",
        help="which data model stands for a catalogue model (repeatable)",
    )
    k.add_argument(
        "--costs",
        choices=("auto", "data", "catalogue"),
        default="auto",
        help="per-query costs from the data file or catalogue prices (auto: data when names match)",
    )
    _pair_args(k)
    k.add_argument("--apply", action="store_true", help="write the thresholds to the models table")
    k.add_argument("--json", action="store_true")
    quality_cli.add_calibrate_args(k)
    k.set_defaults(handler=quality_cli.or_from_quality(run_calibrate))


def _fraction(value: str) -> float:
    v = float(value)
    if not 0 < v <= 1:
        raise argparse.ArgumentTypeError("must be in (0, 1]")
    return v


def _pair_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--strong", default=DEFAULT_STRONG, metavar="MODEL", help=f"default {DEFAULT_STRONG}")
    p.add_argument("--weak", default=DEFAULT_WEAK, metavar="MODEL", help=f"default {DEFAULT_WEAK}")
    p.add_argument(
        "--prompt-field",
        choices=PROMPT_FIELDS,
        default="question",
        help="text the classifier sees: 'question' (what a user sends, default) or 'prompt'",
    )


def _fail(msg: str) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return 2


def _dumps(obj: Any) -> str:
    return json.dumps(obj, indent=2, allow_nan=False)


# --- eval ------------------------------------------------------------------------------------------


def run_eval(args: argparse.Namespace) -> int:
    classifiers = args.classifier or list(BUILTIN)
    results = []
    try:
        for path in args.data:
            records = load_jsonl(path)
            results.append(
                evaluate(
                    records,
                    classifiers,
                    name=path,
                    strong=args.strong,
                    weak=args.weak,
                    field=args.prompt_field,
                    target=args.target_quality,
                    fingerprint=fingerprint(path),
                    weights=args.weights,
                )
            )
    except (OSError, DataError, KeyError, ValueError) as exc:
        return _fail(str(exc))
    if args.json:
        docs = [to_json(r) for r in results]
        print(_dumps(docs[0] if len(docs) == 1 else docs))
    else:
        print("\n\n".join(render(r) for r in results))
    return 0


# --- classifier train ------------------------------------------------------------------------------


def run_train(args: argparse.Namespace) -> int:
    if args.scorer == "learned-v2":
        return run_train_v2(args)
    try:
        from router.evaluation import training
    except ImportError:  # numpy is a dev-only dependency
        return _fail("training needs numpy: pip install -r requirements-dev.txt")
    try:
        tasks = [training.Task(Path(p).stem, load_training_jsonl(p)) for p in args.data]
        if args.held_out:
            folds = training.held_out_folds(
                tasks, strong=args.strong, weak=args.weak, field=args.prompt_field, alpha=args.alpha
            )
            print(_dumps(_folds_json(folds)) if args.json else render_folds(folds))
        weights = training.train(
            tasks, strong=args.strong, weak=args.weak, field=args.prompt_field, alpha=args.alpha
        )
    except (OSError, DataError, ValueError) as exc:
        return _fail(str(exc))
    weights["trained"]["files"] = {Path(p).name: fingerprint(p) for p in args.data}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(weights, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    if not args.json:
        names = ", ".join(t.name for t in tasks)
        queries = sum(len(t.records) for t in tasks)
        print(f"wrote {out} (trained on {names}; {queries} queries; no metric is reported on them)")
    return 0


def run_train_v2(args: argparse.Namespace) -> int:
    try:
        from router.evaluation import training_v2 as tv2
    except ImportError:  # numpy is a dev-only dependency
        return _fail("training needs numpy: pip install -r requirements-dev.txt")
    try:
        vectors = tv2.load_vectors(args.vectors or tv2.VECTORS)
        tasks = [
            tv2.make_task(Path(p).stem, load_training_jsonl(p), args.strong, args.weak) for p in args.data
        ]
        if args.held_out:
            folds = tv2.held_out_folds(tasks, vectors, field_name=args.prompt_field, alpha=args.alpha)
            print(_dumps(_folds_json(folds)) if args.json else render_folds(folds))
        doc = tv2.train(tasks, vectors, field_name=args.prompt_field, alpha=args.alpha)
    except (OSError, DataError, ValueError) as exc:
        return _fail(str(exc))
    doc["trained"]["files"] = {Path(p).name: fingerprint(p) for p in args.data}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    # Compact: the vocabulary makes this the one large file; sorted keys keep it reproducible.
    out.write_text(json.dumps(doc, separators=(",", ":"), sort_keys=True) + "\n", encoding="utf-8")
    if args.dev:
        items = tv2.load_dev(args.dev)
        scorer = LearnedV2Scorer(doc)
        auc = tv2.auroc([scorer.score(i.text) for i in items], [i.hard for i in items])
        if not args.json:
            print(f"{Path(args.dev).name}: AUROC {auc:.3f} (hard above easy, {len(items)} requests)")
    if not args.json:
        names = ", ".join(t.name for t in tasks)
        queries = sum(len(t.records) for t in tasks)
        print(f"wrote {out} (trained on {names}; {queries} queries; no metric is reported on them)")
    return 0


def _folds_json(folds: Sequence[Any]) -> list[dict[str, Any]]:
    return [
        {
            "held_out": f.held_out,
            "trained_on": list(f.trained_on),
            "classifiers": [summary_json(s) for s in f.summaries.values()],
        }
        for f in folds
    ]


def render_folds(folds: Sequence[Any]) -> str:
    def pct(v: float | None) -> str:
        return "-" if v is None else f"{100 * v:.1f}%"

    rows = []
    means: dict[str, list[float]] = {}
    for f in folds:
        for name, s in f.summaries.items():
            rows.append(
                [
                    f.held_out,
                    name,
                    "-" if s.apgr is None else f"{s.apgr:.3f}",
                    pct(s.cpt50),
                    pct(s.cpt80),
                    pct(s.saving) if s.at_target is not None else "misses target",
                ]
            )
            if s.apgr is not None:
                means.setdefault(name, []).append(s.apgr)
    mean_line = ", ".join(f"{n} {sum(v) / len(v):.3f}" for n, v in means.items())
    head = "held-out evaluation: each file scored by a model trained on the other files only"
    return "\n".join(
        [
            head,
            table(["held out", "classifier", "APGR", "CPT(50%)", "CPT(80%)", "saving@95%"], rows),
            f"mean held-out APGR: {mean_line}",
            "",
        ]
    )


# --- calibrate -------------------------------------------------------------------------------------


def _configured_classifier() -> str:
    """The ``CLASSIFIER`` setting, read the way the app reads it (its default if settings are incomplete)."""
    try:
        return load_settings().CLASSIFIER
    except SettingsError:
        default = Settings.model_fields["CLASSIFIER"].default
        return str(os.environ.get("CLASSIFIER") or default)


def _catalogue(args: argparse.Namespace) -> list[ModelConfig]:
    if args.models:
        return load_file(args.models)
    models: list[ModelConfig] = asyncio.run(model_store.read_models(load_settings()))
    return models


def run_calibrate(args: argparse.Namespace) -> int:
    try:
        files = [load_training_jsonl(path) for path in args.data]
        records = [r for f in files for r in f]
        judge_files = [load_training_jsonl(path) for path in args.judge_data]
        models = _catalogue(args)
        matching = catalogue.match(
            models, models_in(records), catalogue.parse_map(args.map), args.strong, args.weak
        )
        classifier = args.classifier or _configured_classifier()
        scorer = make_scorer(classifier, args.weights)
    except (OSError, DataError, KeyError, ValueError) as exc:
        return _fail(str(exc))
    if len(matching.mapping) < 1:
        return _fail("no enabled catalogue model could be matched to the data; use --map MODEL=DATA_MODEL")
    costs = catalogue.cost_source(matching.mapping, args.costs)
    tiers = catalogue.tiers(models, matching.mapping, records, costs)
    per_file = [[routed(scorer.score(r.text(args.prompt_field))) for r in f] for f in [*files, *judge_files]]
    scores = [s for f in per_file[: len(files)] for s in f]
    plan = calibrate(scores, tiers, args.target_quality)
    # The judge band sits on the cut in front of the priciest model (or mid-scale with one tier).
    top_cut = plan.thresholds[-2] if len(plan.thresholds) > 1 and plan.met else 0.5
    band = judge_band_for_each(per_file, top_cut, args.judge_share)
    scale = judge_scale([s for f in per_file for s in f], band, top_cut)
    by_name = {m.name: m for m in models}
    updated = [
        by_name[t.name].model_copy(update={"max_complexity": round(th, 6)})
        for t, th in zip(tiers, plan.thresholds, strict=True)
    ]
    doc = _plan_doc(
        args, len(records), classifier, costs, matching, tiers, by_name, updated, plan, band, scale
    )
    print(_dumps(doc) if args.json else render_plan(doc, tiers[-1].name))
    return _apply(updated, matching.unmapped, quiet=args.json) if args.apply else 0


def _plan_doc(
    args: argparse.Namespace,
    queries: int,
    classifier: str,
    costs: str,
    matching: catalogue.Matching,
    tiers: Sequence[Tier],
    by_name: Mapping[str, ModelConfig],
    updated: Sequence[ModelConfig],
    plan: Plan,
    band: Band,
    scale: Sequence[float],
) -> dict[str, Any]:
    """What ``router calibrate`` reports (``--json``) and ``render_plan`` prints."""
    return {
        "data": ", ".join(Path(p).name for p in args.data),
        "judge_data": [Path(p).name for p in args.judge_data],
        "queries": queries,
        "classifier": classifier,
        "prompt_field": args.prompt_field,
        "target_quality": args.target_quality,
        "costs": costs,
        "met": plan.met,
        "models": [
            {
                "name": t.name,
                "data_model": matching.mapping[t.name],
                "max_complexity": {"old": by_name[t.name].max_complexity, "new": u.max_complexity},
                "traffic": f,
            }
            for t, u, f in zip(tiers, updated, plan.fractions, strict=True)
        ],
        "quality": plan.quality,
        "quality_vs_top": plan.quality / plan.top_quality if plan.top_quality else None,
        "strong_fraction": plan.strong_fraction,
        "saving": plan.saving,
        "judge": {
            "JUDGE_LOW": round(band.low, 6),
            "JUDGE_HIGH": round(band.high, 6),
            "JUDGE_SCALE": [round(v, 6) for v in scale],
            "share": band.fraction,
            "max_share": args.judge_share,
        },
        "not_calibrated": matching.unmapped,
        "notes": matching.notes,
    }


def _apply(updated: list[ModelConfig], unmapped: list[str], *, quiet: bool) -> int:
    if unmapped:
        return _fail(
            "not applied: enabled models without data would still take traffic: "
            f"{', '.join(unmapped)} (map them with --map NAME=DATA_MODEL or disable them)"
        )
    try:
        asyncio.run(model_store.upsert_models(load_settings(), updated))
    except Exception as exc:  # any storage failure is a CLI error, not a traceback
        return _fail(f"could not write the models table: {exc}")
    if not quiet:
        print(f"applied: wrote max_complexity for {', '.join(m.name for m in updated)}")
    return 0


def render_plan(doc: dict[str, Any], top: str) -> str:
    rows = [
        [
            m["name"],
            m["data_model"],
            f"{m['max_complexity']['old']:.4g} -> {m['max_complexity']['new']:.4g}",
            f"{100 * m['traffic']:.1f}%",
        ]
        for m in doc["models"]
    ]
    target = f"{100 * doc['target_quality']:.0f}%"
    lines = [
        f"{doc['data']}: {doc['queries']} queries, classifier {doc['classifier']!r} on the "
        f"{doc['prompt_field']!r} field, costs from the {doc['costs']}",
        table(["model", "data model", "max_complexity", "traffic"], rows),
    ]
    if doc["met"]:
        lines.append(
            f"expected quality {doc['quality']:.3f} ({100 * doc['quality_vs_top']:.1f}% of always {top}; "
            f"target {target}), strong-call fraction {100 * doc['strong_fraction']:.1f}%, "
            f"saving {100 * doc['saving']:.1f}% vs always {top}"
        )
    else:
        lines.append(
            f"no thresholds reach {target} of {top}'s quality on this data: send everything to {top}"
        )
    j = doc["judge"]
    lines.append(
        f"judge band: JUDGE_LOW={j['JUDGE_LOW']:.4g} JUDGE_HIGH={j['JUDGE_HIGH']:.4g} "
        f"(at most {100 * j['share']:.1f}% of the requests of any one file would ask the judge; "
        f"limit {100 * j['max_share']:.0f}%)"
    )
    lines.append(
        "judge scale (its answers 0, 0.1, ..., 1 on this scorer's scale): JUDGE_SCALE="
        + ",".join(f"{v:g}" for v in j["JUDGE_SCALE"])
    )
    lines += [f"note: {n}" for n in doc["notes"]]
    if doc["not_calibrated"]:
        lines.append(
            "not calibrated (no data for them; they still take traffic if enabled): "
            + ", ".join(doc["not_calibrated"])
        )
    return "\n".join(lines)
