"""Print word<TAB>stem pairs from NLTK's PorterStemmer (default NLTK_EXTENSIONS mode).

The word list: every distinct normalised token of every string in locomo10.json
(questions, answers, dialogue, captions, summaries, observations, events), the same
tokens capitalised, NLTK's irregular forms, and hand-picked edge cases.

Usage: python3 scripts/reference/porter_table.py ../shared/data/locomo/locomo10.json \
           > datasets/tests/fixtures/porter_nltk.tsv
"""

import json
import sys

import nltk
from nltk.stem import PorterStemmer

from locomo_official import normalize_answer

EDGE_CASES = """
dying lying tying skies sky news innings inning outings outing cannings canning howe
atlas cosmos bias andes generously proceed exceed succeed agreed feed dies died spied
flies ties lies cries tried spy fly try enjoy enjoyment happy caresses ponies caress cats
plastered bled motoring sing conflated troubled sized hopping tanned falling hissing fizzed
failing filing relational conditional rational valenci hesitanci digitizer conformabli
radicalli differentli vileli analogousli vietnamization predication operator feudalism
decisiveness hopefulness callousness formaliti sensitiviti sensibiliti triplicate formative
formalize electriciti electrical hopeful goodness revival allowance inference airliner
gyroscopic adjustable defensible irritant replacement adjustment dependent adoption
homologou communism activate angulariti homologous effective bowdlerize probate rate cease
controll roll generalization generalizations oscillators archaeology geology theology
philology analogy biology fully beautifully hopefully carefully logically ideally
really finally usually totally naturally ally rally tally sally bully gully
ow owed owing ox axed eyed eying yelling yyyy y yy yyy yyyyyyyyyyy syzygy toy toys
boy boys joyful by bye buy buying played playing stayed says said paid
a an the and i is as us at it be do go no so to up we
ed ing eed ied ies sses ss s ling ring bring string ringing
cafe café naïve résumé über ñandú straße ÉTÉ İstanbul ΣΊΣΥΦΟΣ
2023 1st 2nd 3rd 4th 10th 1990s 80s 5k 3pm 12am
dont doesnt cant wont im ive youre theyre shes hes lets
ate bate mate state estate cremate create relate abate
meeting meetings greeting sleeping sweeping agreeing seeing fleeing freeing
hoped hoping hopped shopping shipped tapped taped taping mopping
""".split()


def strings_in(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from strings_in(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from strings_in(item)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        yield str(value)


def main():
    data = json.load(open(sys.argv[1], encoding="utf-8"))
    words = set()
    for text in strings_in(data):
        words.update(normalize_answer(text).split())
    words.update(w.capitalize() for w in list(words))
    words.update(EDGE_CASES)
    stemmer = PorterStemmer()
    sys.stdout.write(f"# NLTK {nltk.__version__} PorterStemmer(mode=NLTK_EXTENSIONS): word<TAB>stem\n")
    for word in sorted(words):
        if "\t" in word or "\n" in word or word.startswith("#"):
            continue
        sys.stdout.write(f"{word}\t{stemmer.stem(word)}\n")


if __name__ == "__main__":
    main()
