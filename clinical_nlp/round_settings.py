"""How an active-learning round selects, assigns and retrains, checked when it is made."""

from __future__ import annotations

from dataclasses import dataclass, field

from clinical_nlp.config import load_label_schema
from clinical_nlp.errors import ClinicalNLPError


class RoundError(ClinicalNLPError):
    """A round cannot proceed (wrong state, annotations missing …)."""


@dataclass(frozen=True)
class RoundSettings:
    """How rounds select, assign and retrain (stored with each round)."""

    strategy: str = "entropy"
    batch: int = 10
    annotators: tuple[str, ...] = ("annotator1", "annotator2")
    overlap: int = 2
    expert: str = "expert"
    doccano_project: str = "clinical-nlp"
    seed: int = 0
    epochs: int = 8
    labels: tuple[str, ...] = field(default_factory=lambda: load_label_schema().model_labels)
    dev_path: str | None = None
    #: a retrained model replaces the current one only if its dev strict F1 is at most this much lower
    promotion_tolerance: float = 0.02
    #: link the suggestions with the shipped relation model (``make model``)
    relations: bool = False

    def __post_init__(self) -> None:
        if not self.annotators:
            raise RoundError("a round needs annotators (--annotators alice,bob)")
        if self.batch < 1:
            raise RoundError(f"--batch must be at least 1 note, not {self.batch}")
        if not 1 <= self.overlap <= len(self.annotators):
            raise RoundError(
                f"--overlap {self.overlap}: each note goes to 1 to {len(self.annotators)} of the "
                f"{len(self.annotators)} annotator(s) named"
            )
        if self.epochs < 1 or self.promotion_tolerance < 0:
            raise RoundError(
                f"epochs must be ≥ 1 and promotion tolerance ≥ 0, not {self.epochs}, {self.promotion_tolerance}"
            )
