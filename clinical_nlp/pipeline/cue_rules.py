"""ConText cue rules compiled to regular expressions (``guidelines/context_rules.json``; no spaCy).

Each medspaCy-style rule (a literal or a token pattern with ``LOWER``/``TEXT``, ``IN`` and
``OP``) becomes one regular expression anchored at word boundaries, plus the lower-case strings one
of which must occur in a text for the rule to match there (a cheap prefilter).

Example:
    >>> rules, digest = load_cue_rules()
    >>> any(r.regex.search("patient denies fever") for r in rules if r.category == "NEGATED_EXISTENCE")
    True
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from clinical_nlp.config import default_guidelines_dir
from clinical_nlp.errors import ConfigError


@dataclass(frozen=True, slots=True)
class CueRule:
    id: str
    category: str
    direction: str
    regex: re.Pattern[str]
    #: lower-case strings one of which must occur for the rule to match (a cheap prefilter)
    first: tuple[str, ...] = ()


def _token_regex(tok: Mapping[str, Any]) -> str | None:
    value = tok.get("LOWER", tok.get("TEXT"))
    if value is None:
        return None
    if isinstance(value, Mapping):
        options = value.get("IN")
        if not options:
            return None
        body = "(?:" + "|".join(re.escape(str(o).lower()) for o in sorted(options, key=len, reverse=True)) + ")"
    else:
        body = re.escape(str(value).lower())
    return body


def _rule_regex(rule: Mapping[str, Any]) -> str:
    pattern = rule.get("pattern")
    if isinstance(pattern, list) and pattern:
        parts: list[str] = []
        ok = True
        for tok in pattern:
            body = _token_regex(tok)
            if body is None:
                ok = False
                break
            op = tok.get("OP")
            piece = r"\s*" + body if parts else body
            if op == "?":
                piece = "(?:" + piece + ")?"
            elif op in ("*", "+"):
                piece = "(?:" + piece + ")" + op
            parts.append(piece)
        if ok:
            return "".join(parts)
    literal = str(rule["literal"]).lower()
    return r"\s+".join(re.escape(w) for w in literal.split())


def _first_words(rule: Mapping[str, Any]) -> tuple[str, ...]:
    pattern = rule.get("pattern")
    if isinstance(pattern, list) and pattern:
        tok = pattern[0]
        if tok.get("OP") in ("?", "*"):
            return ()
        value = tok.get("LOWER", tok.get("TEXT"))
        if isinstance(value, str):
            return (value.lower(),)
        if isinstance(value, Mapping) and value.get("IN"):
            return tuple(str(v).lower() for v in value["IN"])
        return ()
    words = str(rule.get("literal", "")).lower().split()
    return (words[0],) if words else ()


@lru_cache(maxsize=8)
def load_cue_rules(path: str | None = None) -> tuple[tuple[CueRule, ...], str]:
    """Compile the ConText rule file; returns ``(rules, sha256-prefix)``."""
    file = Path(path) if path else default_guidelines_dir() / "context_rules.json"
    try:
        raw = file.read_bytes()
        data = json.loads(raw)
    except FileNotFoundError:
        raise ConfigError(f"{file}: ConText rule file not found") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{file}: invalid JSON ({exc.msg}, line {exc.lineno})") from None
    rules = []
    for k, r in enumerate(data.get("context_rules", [])):
        try:
            rid = (r.get("metadata") or {}).get("id", f"rule-{k}")
            rx = re.compile(r"(?<![a-z0-9])" + _rule_regex(r) + r"(?![a-z0-9])")
            rules.append(CueRule(rid, str(r["category"]).upper(), str(r["direction"]).upper(), rx, _first_words(r)))
        except (KeyError, re.error) as exc:
            raise ConfigError(f"{file}: rule #{k} is invalid ({exc})") from None
    return tuple(rules), hashlib.sha256(raw).hexdigest()[:12]
