"""The entity rule lexicon (``guidelines/entity_rules.jsonl``) as medspaCy target rules."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from clinical_nlp.errors import ConfigError


def load_entity_rules(path: Path) -> list[Any]:
    """medspaCy ``TargetRule`` objects from a JSONL lexicon (``literal``, ``category``, ``id``)."""
    from medspacy.target_matcher import TargetRule

    rules = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise ConfigError(f"{path}: entity rule file not found") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            rules.append(
                TargetRule(
                    row["literal"],
                    row["category"],
                    pattern=row.get("pattern"),
                    metadata={"id": row.get("id", f"line-{number}")},
                )
            )
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{path}:{number}: invalid entity rule ({exc})") from None
    return rules
