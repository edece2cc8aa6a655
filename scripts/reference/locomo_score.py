"""Expected LoCoMo scores for the Rust scorer's tests, computed with the Python
re-implementation in locomo_official.py (real NLTK PorterStemmer, `regex`, numpy).

Writes three fixtures into datasets/tests/fixtures/:

- locomo_scores_synthetic.jsonl: made-up gold/prediction pairs (no benchmark text) covering
  every category, empty predictions, integer-like answers, lists, punctuation, curly quotes
  and non-ASCII; each row has the raw score, the stored (rounded) score and BLEU-1.
- locomo_scores_real.jsonl: for every question of locomo10.json, the raw and stored score of
  predictions built by fixed "recipes" from the item (see RECIPES); only ids and numbers are
  stored, no benchmark text. The first line holds the official aggregates per recipe.
- numpy_means.json: numpy.mean of arrays of various lengths (summation-order check).

Usage: python3 scripts/reference/locomo_score.py ../shared/data/locomo/locomo10.json datasets/tests/fixtures
"""

import json
import math
import os
import random
import sys

import numpy as np
import regex
from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

import locomo_official as official

NOT_MENTIONED = "Not mentioned in the conversation"


def ascii_upper(text):
    return "".join(c.upper() if c.isascii() else c for c in text)


def source_text(qa):
    """The item's answer as text (integers as decimal), else its adversarial answer, else ''."""
    if "answer" in qa:
        return str(qa["answer"])
    return qa.get("adversarial_answer", "")


def first_half(text):
    words = text.split()
    return " ".join(words[: (len(words) + 1) // 2])


# Recipe name -> prediction built from the QA item. Mirrored in the Rust tests.
RECIPES = {
    "gold": lambda qa: source_text(qa),
    "gold_upper_period": lambda qa: ascii_upper(source_text(qa)) + ".",
    "first_half": lambda qa: first_half(source_text(qa)),
    "reversed_parts": lambda qa: ", ".join(reversed(source_text(qa).split(","))),
    "question": lambda qa: qa["question"],
    "not_mentioned": lambda qa: NOT_MENTIONED,
    "gold_plus_noise": lambda qa: source_text(qa) + " and maybe the other one, too",
    "empty": lambda qa: "",
}

_BLEU_TOKEN = regex.compile(r"\w+|[^\w\s]")


def bleu_tokens(text):
    return _BLEU_TOKEN.findall(text.lower())


def bleu1(prediction, reference):
    """Mem0's BLEU-1 (sentence_bleu, weights (1,0,0,0), method1) on our documented tokens."""
    if not prediction or not reference:
        return 0.0
    hyp = bleu_tokens(prediction.strip())
    ref = bleu_tokens(reference.strip())
    try:
        return float(sentence_bleu([ref], hyp, weights=(1, 0, 0, 0),
                                   smoothing_function=SmoothingFunction().method1))
    except ZeroDivisionError:
        return 0.0


PIECES = [
    "the", "a", "an", "and", "The", "AND", "Paris", "paris,", "running", "runs", "ran",
    "adoption agencies", "Adoption", "7 May 2023", "May", "2022", "1,000", "3", "42", "3.5",
    "pottery", "painting", "paintings", "sky", "skies", "dying", "news", "it's", "don't",
    "“quoted”", "‘single’", "—", "–", "café", "naïve", "Straße", "İstanbul", "ÉTÉ", "über",
    "hiking;", "camping; because", "(a)", "[b]", "{c}", "x-ray", "e-mail", "U.S.", "Mr.",
    "no information available", "Not mentioned", "not", "mentioned", "self-care", "mother's",
    "kids'", "!!!", "?", "#1", "$5", "50%", "a.m.", "the\tend", "new\nline", "zero\u200bwidth",
    "generously", "agreed", "feed", "succeed", "happily", "theatre", "another", "bandana",
    "Mel and Caroline", "Lisbon, Porto, Faro", "beach, mountains, forest", "Yes", "No",
]


def random_phrase(rng, max_pieces=6):
    return " ".join(rng.choice(PIECES) for _ in range(rng.randint(1, max_pieces)))


def synthetic_rows(seed=20240611, count=600):
    rng = random.Random(seed)
    rows = []
    for index in range(count):
        category = rng.choice([1, 2, 3, 4, 5])
        gold = random_phrase(rng)
        if category == 1 and rng.random() < 0.7:
            gold = ", ".join(random_phrase(rng, 3) for _ in range(rng.randint(2, 9)))
        if category == 3 and rng.random() < 0.5:
            gold = random_phrase(rng, 3) + "; " + random_phrase(rng, 4)
        kind = rng.random()
        if kind < 0.1:
            prediction = ""
        elif kind < 0.35:
            prediction = gold
        elif kind < 0.6:
            words = gold.split()
            rng.shuffle(words)
            prediction = " ".join(words[: rng.randint(0, len(words))]) + rng.choice(["", ".", "!", " and more"])
        elif kind < 0.75 and category == 1:
            parts = gold.split(",")
            rng.shuffle(parts)
            prediction = ",".join(parts[: rng.randint(1, len(parts))])
        else:
            prediction = random_phrase(rng)
        raw = official.score(category, prediction, gold)
        rows.append({
            "id": index,
            "category": category,
            "gold": gold,
            "prediction": prediction,
            "raw": float(raw),
            "stored": float(round(raw, 3)),
            "bleu1": bleu1(prediction, gold),
        })
    # Hand-picked cases on top of the random ones.
    hand = [
        (4, "", ""), (4, "2", "2"), (2, "2022", "In 2022."), (1, "Lisbon, Porto, Faro", "Porto, Lisbon"),
        (1, "a, b, c", ""), (3, "Likely yes; she loves it", "likely yes"), (3, "; only reason", "only reason"),
        (5, "", "Not mentioned in the conversation"), (5, "", "NO INFORMATION AVAILABLE"), (5, "", "(a)"),
        (4, "“Becoming Nicole”", "\"Becoming Nicole\""), (4, "café", "cafe"), (4, "the and a an", "the"),
    ]
    for category, gold, prediction in hand:
        raw = official.score(category, prediction, gold)
        rows.append({"id": len(rows), "category": category, "gold": gold, "prediction": prediction,
                     "raw": float(raw), "stored": float(round(raw, 3)), "bleu1": bleu1(prediction, gold)})
    return rows


def real_rows(data):
    header = {"recipes": list(RECIPES), "aggregates": {}}
    lines = []
    stored_by_recipe = {name: [] for name in RECIPES}
    for sample in data:
        for index, qa in enumerate(sample["qa"]):
            gold = qa.get("answer")
            # raw: unrounded scores per recipe (in header order); milli: stored scores x 1000.
            row = {"sample_id": sample["sample_id"], "qa_index": index, "category": qa["category"],
                   "raw": [], "milli": []}
            for name, recipe in RECIPES.items():
                raw = official.score(qa["category"], recipe(qa), gold)
                stored = round(raw, 3)
                row["raw"].append(float(raw))
                row["milli"].append(int(round(float(stored) * 1000)))
                stored_by_recipe[name].append((qa["category"], stored))
            lines.append(row)
    for name, items in stored_by_recipe.items():
        per_category, overall, total = official.aggregate(items)
        header["aggregates"][name] = {
            "by_category": {str(c): v for c, v in per_category.items()},
            "overall": overall,
            "count": total,
        }
    return header, lines


def numpy_means(seed=7):
    rng = random.Random(seed)
    cases = []
    for n in list(range(1, 20)) + [31, 64, 127, 128, 129, 200, 257, 1000]:
        values = [rng.choice([0.0, 1.0, rng.random(), 2 / 3, 0.4, 0.5714285714285714]) for _ in range(n)]
        cases.append({"values": values, "mean": float(np.mean(values))})
    return cases


def main():
    data = json.load(open(sys.argv[1], encoding="utf-8"))
    out = sys.argv[2]
    with open(os.path.join(out, "locomo_scores_synthetic.jsonl"), "w", encoding="utf-8") as f:
        for row in synthetic_rows():
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    header, lines = real_rows(data)
    with open(os.path.join(out, "locomo_scores_real.jsonl"), "w", encoding="utf-8") as f:
        f.write(json.dumps(header) + "\n")
        for row in lines:
            f.write(json.dumps(row, separators=(",", ":")) + "\n")
    with open(os.path.join(out, "numpy_means.json"), "w", encoding="utf-8") as f:
        json.dump(numpy_means(), f)
    for name, agg in header["aggregates"].items():
        means = " ".join(
            f"{c}:{'-' if v['mean'] is None else round(v['mean'], 3)}" for c, v in agg["by_category"].items())
        print(f"{name:18s} overall {round(agg['overall'], 3)}  {means}")
    # How far our BLEU tokens are from NLTK's word tokenizer (no Punkt data offline, so
    # preserve_line=True), over gold answers and questions.
    from nltk.tokenize import NLTKWordTokenizer
    tokenizer = NLTKWordTokenizer()
    texts = [source_text(qa) for s in data for qa in s["qa"]] + [qa["question"] for s in data for qa in s["qa"]]
    same = sum(1 for t in texts if tokenizer.tokenize(t.lower()) == bleu_tokens(t))
    print(f"BLEU tokens equal to NLTK word tokens on {same}/{len(texts)} LoCoMo answers+questions")


if __name__ == "__main__":
    main()
