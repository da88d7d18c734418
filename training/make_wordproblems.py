"""Write ``router/evaluation/data/wordproblems_train.jsonl``: everyday multi-step word problems.

They teach one thing only: a problem with several quantities to combine is not a trivial request,
however plain its words ("buys", "how much", "left"). They are negatives for the trivial-request gate
(``RECIPES`` gives them no weight in the difficulty heads' fits and no role in the hard-kind gate,
which they made fire erratically when they were labelled hard); like every training query they
count in the token frequencies and the feature scaling. Deterministic templates crossed with their
fillers, written for this project; none is in a development set.

    python training/make_wordproblems.py
"""

from __future__ import annotations

import json
from pathlib import Path

from make_synthetic import COST, PREMIUM, expand

OUT = Path(__file__).resolve().parents[1] / "router" / "evaluation" / "data" / "wordproblems_train.jsonl"

TEMPLATES: list[tuple[str, dict[str, list[str]]]] = [
    (
        "{n} buys {a} {x} for ${p} each and {b} {y} for ${q} each. {tail}",
        {
            "n": ["Priya"],
            "a": ["3"],
            "x": ["folders"],
            "p": ["2.40", "6"],
            "b": ["4", "9"],
            "y": ["markers"],
            "q": ["1.15", "2.75"],
            "tail": ["How much change is there from $60?", "If tax is 8%, what is the total?"],
        },
    ),
    (
        "A {v} travels {d1} km at {s1} km/h and then {d2} km at {s2} km/h. {tail}",
        {
            "v": ["bus"],
            "d1": ["120"],
            "s1": ["60", "30"],
            "d2": ["80", "150"],
            "s2": ["40", "75"],
            "tail": ["What is its average speed for the whole trip?", "How long does the whole trip take?"],
        },
    ),
    (
        "A recipe for {k} people uses {g} g of {i} and {e} eggs. {tail}",
        {
            "k": ["4"],
            "g": ["250", "360"],
            "i": ["rice", "flour"],
            "e": ["3", "2"],
            "tail": [
                "How much of each is needed for 15 people, and how many full egg cartons of 6 is that?",
                "A cook has 1 kg and 10 eggs. For how many people can she cook at most?",
            ],
        },
    ),
    (
        "{n} earns ${w} an hour and works {h} hours a week. {tail}",
        {
            "n": ["Omar", "Lena"],
            "w": ["14.50", "22"],
            "h": ["32", "18"],
            "tail": [
                "After paying 15% tax and $120 a week in rent, how much does he save in 6 weeks?",
                "She wants a $900 laptop and already has $150. How many weeks must she work?",
            ],
        },
    ),
    (
        "A {c} had {s} {u} on Monday. It sold {f} of them on Tuesday and received {r} more on Wednesday. "
        "{tail}",
        {
            "c": ["bookshop", "bakery"],
            "s": ["340"],
            "u": ["items", "loaves"],
            "f": ["a quarter", "40%"],
            "r": ["75", "30"],
            "tail": [
                "How many does it have now?",
                "If it sells half of what it has on Thursday, how many are left?",
            ],
        },
    ),
    (
        "{n} is {k} times as old as her {r}. In {y} years she will be twice as old as the {r}. {tail}",
        {
            "n": ["Mia", "Grandma Rose"],
            "k": ["3", "4"],
            "r": ["son", "nephew"],
            "y": ["10", "12"],
            "tail": ["How old are they now?", "How old will the younger one be then?"],
        },
    ),
    (
        "A {t} holds {c} litres. Pipe A fills it in {a} hours and pipe B in {b} hours. {tail}",
        {
            "t": ["pool", "tank"],
            "c": ["600"],
            "a": ["3", "5"],
            "b": ["6", "10"],
            "tail": [
                "How long do both pipes take together?",
                "After both run for an hour, how many litres are missing?",
            ],
        },
    ),
    (
        "A jacket costs ${p}. The shop {d1} and then {d2}. {tail}",
        {
            "p": ["80", "125"],
            "d1": ["raises the price by 10%", "takes 25% off"],
            "d2": ["takes 20% off the new price", "adds a $5 wrapping fee"],
            "tail": ["What is the final price?", "By what percentage did the price change overall?"],
        },
    ),
    (
        "{n} runs {a} km on weekdays and {b} km on Saturdays and rests on Sundays. {tail}",
        {
            "n": ["Jo", "Kwame"],
            "a": ["4", "6.5"],
            "b": ["10", "15"],
            "tail": [
                "How many km does he run in 3 weeks?",
                "How many weeks until he has run a 500 km total?",
            ],
        },
    ),
    (
        "A class of {k} students shares {m} {x}. {tail}",
        {
            "k": ["24", "30"],
            "m": ["150", "200"],
            "x": ["stickers", "pencils"],
            "tail": [
                "Each gets the same whole number and the teacher keeps the rest. How many does she keep?",
                "If 6 students are absent and the rest share them equally, how many more does each get?",
            ],
        },
    ),
]


def main() -> int:
    rows = [
        {
            "id": f"wordproblem.{i}",
            "source": "wordproblems",
            "question": text,
            # Labels are not used (no weight in the heads); as in synthetic_train, premium models answer.
            "scores": {m: 1.0 if m in PREMIUM else 0.0 for m in COST},
            "cost": COST,
        }
        for i, text in enumerate(expand(TEMPLATES))
    ]
    OUT.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    print(f"wrote {OUT}: {len(rows)} word problems")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
