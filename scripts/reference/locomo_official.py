"""The official LoCoMo QA scorer, re-implemented in Python from the description in
shared/data/README.md section 1.5 (our own code, not copied from upstream).

It is the ground truth the Rust port in datasets/src/scoring/locomo is checked against:
it uses the real NLTK PorterStemmer, the `regex` module for the `\\b` article rule and
numpy for the category-1 mean, as the official pipeline does.
"""

import string
from collections import Counter

import numpy as np
import regex
from nltk.stem import PorterStemmer

_STEMMER = PorterStemmer()
_PUNCT = set(string.punctuation)


def normalize_answer(text):
    """Comma removal, lowercase, ASCII punctuation removal, a/an/the/and removal, whitespace collapse."""
    text = text.replace(",", "")
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCT)
    text = regex.sub(r"\b(a|an|the|and)\b", " ", text)
    return " ".join(text.split())


def tokens(text):
    """Normalised whitespace tokens, each stemmed by NLTK's PorterStemmer (NLTK_EXTENSIONS)."""
    return [_STEMMER.stem(w) for w in normalize_answer(text).split()]


def f1_score(prediction, gold):
    """Token F1 over the multiset intersection; 0 (an int, as upstream) when nothing is shared."""
    pred_tokens = tokens(prediction)
    gold_tokens = tokens(gold)
    common = Counter(pred_tokens) & Counter(gold_tokens)
    same = sum(common.values())
    if same == 0:
        return 0
    precision = 1.0 * same / len(pred_tokens)
    recall = 1.0 * same / len(gold_tokens)
    return (2 * precision * recall) / (precision + recall)


def multi_answer_f1(prediction, gold):
    """Category 1: split both on ',', mean over gold parts of the best prediction part (numpy mean)."""
    predictions = [p.strip() for p in prediction.split(",")]
    golds = [g.strip() for g in gold.split(",")]
    return np.mean([max([f1_score(p, g) for p in predictions]) for g in golds])


def score(category, prediction, gold):
    """Unrounded official score of one question (types as upstream: int, float or numpy.float64)."""
    gold = "" if gold is None else str(gold)
    if category == 3:
        gold = gold.split(";")[0].strip()
    if category in (2, 3, 4):
        return f1_score(prediction, gold)
    if category == 1:
        return multi_answer_f1(prediction, gold)
    if category == 5:
        lowered = prediction.lower()
        return 1 if ("no information available" in lowered or "not mentioned" in lowered) else 0
    raise ValueError(category)


def stored_score(category, prediction, gold):
    """The per-question value the official pipeline stores: round(score, 3).

    Python's round() on a numpy.float64 (category 1) rounds like numpy (x*1000, rint, /1000);
    on a Python float it is correctly rounded. Both are reproduced by calling round() here.
    """
    return round(score(category, prediction, gold), 3)


def aggregate(items):
    """items: (category, stored score) in data order -> per-category (count, sum, mean) and overall."""
    counts = {c: 0 for c in (1, 2, 3, 4, 5)}
    sums = {c: 0 for c in (1, 2, 3, 4, 5)}
    for category, value in items:
        counts[category] += 1
        sums[category] += value
    per_category = {}
    total_sum = 0
    total_count = 0
    for category in (4, 1, 2, 3, 5):
        n = counts[category]
        per_category[category] = {
            "count": n,
            "sum": float(sums[category]),
            "mean": (float(sums[category]) / n) if n else None,
        }
        total_sum += sums[category]
        total_count += n
    overall = float(total_sum) / total_count if total_count else None
    return per_category, overall, total_count
