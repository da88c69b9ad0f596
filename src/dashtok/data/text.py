"""Sentences per language from Debian's word lists (wamerican, wngerman, wfrench, ...).

Random word sequences are not grammatical, but their words, spelling and so pronunciation are the language's own:
what a language-ID probe and a speech decoder need. Sentence pools of different splits come from different seeds and
are checked disjoint.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import cache
from pathlib import Path

DICT_DIR = Path("/usr/share/dict")


@dataclass(frozen=True)
class Language:
    code: str  # espeak-ng voice name
    name: str
    wordlist: str  # file in /usr/share/dict
    package: str  # Debian package that ships it


LANGUAGES = (
    Language("en-us", "English", "american-english", "wamerican"),
    Language("de", "German", "ngerman", "wngerman"),
    Language("fr", "French", "french", "wfrench"),
    Language("es", "Spanish", "spanish", "wspanish"),
    Language("it", "Italian", "italian", "witalian"),
    Language("pt", "Portuguese", "portuguese", "wportuguese"),
    Language("nl", "Dutch", "dutch", "wdutch"),
    Language("sv", "Swedish", "swedish", "wswedish"),
    Language("pl", "Polish", "polish", "wpolish"),
    Language("nb", "Norwegian", "bokmaal", "wnorwegian"),
    Language("da", "Danish", "danish", "wdanish"),
    Language("uk", "Ukrainian", "ukrainian", "wukrainian"),
    Language("bg", "Bulgarian", "bulgarian", "wbulgarian"),
    Language("ca", "Catalan", "catalan", "wcatalan"),
)


@cache
def words(language: Language) -> tuple[str, ...]:
    path = DICT_DIR / language.wordlist
    if not path.is_file():
        raise FileNotFoundError(f"{path}: word list missing (install the Debian package {language.package})")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:  # some Debian word lists are ISO-8859-1
        text = raw.decode("latin-1")
    out = []
    for line in text.splitlines():
        w = line.strip()
        if 3 <= len(w) <= 12 and w.isalpha() and not w.isupper():
            out.append(w.lower())
    return tuple(sorted(set(out)))


def sentences(language: Language, n: int, seed: int, min_words: int = 5, max_words: int = 11) -> list[str]:
    rng = random.Random(f"{seed}/{language.code}")
    vocab = words(language)
    return [" ".join(rng.choice(vocab) for _ in range(rng.randint(min_words, max_words))) for _ in range(n)]
