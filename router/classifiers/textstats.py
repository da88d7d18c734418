"""Cheap, generic text statistics shared by the improved heuristic and the learned scorer.

Everything here describes *what makes a question hard* in terms that carry across tasks (length of
the problem statement, clause structure, long/rare words, numbers, operators, code, negation,
answer options that resemble each other), never which benchmark a text comes from. Pure Python:
C-level string operations only, ~10-30 µs for a typical question.
"""

from __future__ import annotations

import math
import re

_OPTION = re.compile(r"\s*\(?([A-Ha-h]|[1-8])[).:]\s+(.*)")
# Operators: each of these characters, and a spaced minus (str.count beats a regex here).
_MATH_CHARS = tuple("+*/=^%<>√∑∫≤≥×÷")


def _words(spaced: str) -> frozenset[str]:
    return frozenset(spaced.split(" "))


NEGATIONS = _words("not no never none nothing neither nor cannot without except least false incorrect unless")
REASONING = _words(
    "why how explain compare contrast analyze analyse prove derive calculate compute estimate determine "
    "evaluate justify infer implies imply therefore hence suppose assume step steps reason reasoning "
    "optimize optimise algorithm complexity"
)
SUBORDINATORS = _words("because since although though while whereas if unless until when whether so")
STOPWORDS = _words("the a an of to in and is are was were be it that this for on with as by at or from")
CODE_MARKERS = ("```", "def ", "return", "()", "[]", "{", ";", "==", "->", "lambda", "import ", "class ")

# Punctuation -> space, so str.split() tokenises at C speed (apostrophes stay inside words).
_PUNCT_CHARS = '!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\u2019\u201c\u201d'
_PUNCT = str.maketrans(dict.fromkeys(_PUNCT_CHARS, " "))
# The same for ASCII text as a bytes table: bytes.translate is a flat 256-entry lookup.
_ASCII_PUNCT = "".join(c for c in _PUNCT_CHARS if c.isascii()).encode("ascii")
_PUNCT_ASCII = bytes.maketrans(_ASCII_PUNCT, b" " * len(_ASCII_PUNCT))
_NEG_SUFFIX = "n't"
_LONG = 7  # a word longer than this is "long"
_OPTION_MARKS = frozenset(").:")

FEATURES = (
    "stem_chars",  # log length of the problem statement (options excluded)
    "stem_words",
    "sentences",
    "words_per_sentence",
    "commas_per_sentence",  # clause density
    "mean_word_len",
    "long_word_frac",  # >= 8 letters: a vocabulary-rarity proxy (rarer words are longer)
    "long_words",
    "type_token",
    "numbers",
    "math_ops",
    "options",
    "option_chars",  # short answer options are harder to tell apart ...
    "option_spread",  # ... and so are options of similar length
    "option_overlap",  # ... and options sharing words
    "negations",
    "reasoning",
    "subordinators",
    "code",
    "questions",
    "proper_nouns",  # capitalised words inside sentences: entities to keep track of
    "stopword_frac",
    "lines",
)


def split_options(text: str) -> tuple[str, list[str]]:
    """(stem, answer options): lines like ``A) ...``/``(b) ...`` are options, the rest is the stem."""
    if "\n" not in text:
        return text, []
    stem_lines: list[str] = []
    options: list[str] = []
    for line in text.split("\n"):
        # Cheap pre-check ("A)", "b.", "(C", " 1:") before the regex.
        maybe = len(line) > 2 and (line[1] in _OPTION_MARKS or line[0] in "( \t")
        m = _OPTION.match(line) if maybe else None
        if m:
            options.append(m.group(2))
        else:
            stem_lines.append(line)
    if len(options) < 2:  # one lettered line is a list item, not a multiple choice
        return text, []
    return "\n".join(stem_lines), options


def _option_stats(options: list[str]) -> tuple[float, float, float]:
    lengths = [len(o) for o in options]
    mean_len = sum(lengths) / len(lengths)
    spread = math.sqrt(sum((x - mean_len) ** 2 for x in lengths) / len(lengths)) / (mean_len or 1.0)
    sets = [set(o.lower().split()) for o in options]
    total = count = 0.0
    for i, a in enumerate(sets):
        for b in sets[i + 1 :]:
            union = len(a | b)
            total += len(a & b) / union if union else 0.0
            count += 1
    return mean_len, spread, total / count


def _sentences(stem: str) -> int:
    ends = stem.count(". ") + stem.count("? ") + stem.count("! ") + stem.count(".\n") + stem.count("?\n")
    return max(1, ends + (stem.rstrip()[-1:] in (".", "?", "!")))


def split_words(stem: str) -> tuple[list[str], list[str]]:
    """(words as written, lower-cased words), punctuation removed: ``translate(_PUNCT).split()`` of
    the text and of its ``lower()``."""
    if stem.isascii():  # most requests: one byte-table pass, and lower() commutes with it in ASCII
        spaced = stem.encode("ascii").translate(_PUNCT_ASCII).decode("ascii")
        return spaced.split(), spaced.lower().split()
    # lower() can depend on neighbours (Greek final sigma), so it goes first, as it always did.
    return stem.translate(_PUNCT).split(), stem.lower().translate(_PUNCT).split()


def features(text: str) -> list[float]:
    """The ``FEATURES`` vector of ``text`` (same order), each roughly on a 0..5 scale.

    Only C-level string operations (translate/split/count/map): the learned scorer's whole
    decision budget is 50 µs, so no per-character or per-word Python loop.
    """
    stem, options = split_options(text)
    cased, tokens = split_words(stem)
    n_tokens = len(tokens)
    n_words = n_tokens or 1
    numbers = sum(map(str.isdigit, tokens))
    n_alpha = max(1, n_tokens - numbers)
    lengths = list(map(len, tokens))
    long_words = sum(map(_LONG.__lt__, lengths))
    sentences = _sentences(stem)
    proper = max(0, sum(map(str.istitle, cased)) - sentences)  # capitalised, minus sentence starts
    mean_len, spread, overlap = _option_stats(options) if options else (0.0, 0.0, 0.0)
    log1p = math.log1p
    return [
        log1p(len(stem)),
        log1p(n_tokens),
        log1p(sentences),
        log1p(n_tokens / sentences),
        stem.count(",") / sentences,
        sum(lengths) / n_words / 2,
        long_words / n_alpha * 5,
        log1p(long_words),
        len(set(tokens)) / n_words * 2,
        log1p(numbers),
        log1p(sum(map(stem.count, _MATH_CHARS)) + stem.count(" - ")),
        log1p(len(options)),
        log1p(mean_len),
        spread,
        overlap * 2,
        log1p(sum(map(NEGATIONS.__contains__, tokens)) + stem.count(_NEG_SUFFIX)),
        log1p(sum(map(REASONING.__contains__, tokens))),
        log1p(sum(map(SUBORDINATORS.__contains__, tokens))),
        log1p(sum(1 for k in CODE_MARKERS if k in text)),
        log1p(stem.count("?")),
        log1p(proper),
        sum(map(STOPWORDS.__contains__, tokens)) / n_words * 3,
        log1p(text.count("\n") + 1),
    ]
