"""Imaging adapter: boxes and masks (2D/3D) matched across readers by IoU, consensus masks, DICOM in/out.

Regions are boolean masks placed at an integer ``offset`` in a common index space (a bounding-box
crop), so comparing two nodules costs their bbox, not the whole volume. Readers' regions are matched
one-to-one by IoU (Hungarian assignment, scipy), scored with the core ``iou``/``dice``/``summarize``
and ``detection_prf``, and turned into the long frame for ``aggregate`` like text and signals.

The LIDC-IDRI reader and nodule consensus are in :mod:`clinical_nlp.consensus.adapters.lidc`.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from clinical_nlp.consensus.aggregation import detection_prf
from clinical_nlp.consensus.agreement import (
    ConsensusError,
    box_iou,
    dice,
    iou,
    summarize,
)
from clinical_nlp.errors import InputFormatError, MissingOptionalDependencyError


@dataclass(frozen=True)
class Region:
    """A boolean mask at ``offset`` (index of ``mask[0, 0(, 0)]`` in the volume)."""

    mask: np.ndarray
    offset: tuple[int, ...]
    label: str = "region"
    reader: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.mask.ndim not in (2, 3) or len(self.offset) != self.mask.ndim:
            raise ConsensusError(
                f"region mask must be 2D or 3D with a matching offset, got shape "
                f"{self.mask.shape} and offset {self.offset}"
            )

    @property
    def bbox(self) -> np.ndarray:
        """Inclusive index bounds, shape (ndim, 2)."""
        o = np.asarray(self.offset)
        return np.stack([o, o + np.asarray(self.mask.shape) - 1], axis=1)


def _common(regions: Sequence[Region]) -> tuple[np.ndarray, list[np.ndarray]]:
    lo = np.min([r.bbox[:, 0] for r in regions], axis=0)
    hi = np.max([r.bbox[:, 1] for r in regions], axis=0)
    out = []
    for r in regions:
        canvas = np.zeros(tuple(hi - lo + 1), bool)
        start = np.asarray(r.offset) - lo
        sl = tuple(slice(s, s + n) for s, n in zip(start, r.mask.shape, strict=True))
        canvas[sl] = r.mask
        out.append(canvas)
    return np.stack([lo, hi], axis=1), out


def region_iou(a: Region, b: Region) -> float:
    """IoU of two placed regions (0 when their boxes do not touch)."""
    if a.mask.ndim != b.mask.ndim:
        raise ConsensusError(f"cannot compare a {a.mask.ndim}D and a {b.mask.ndim}D region")
    if np.any(a.bbox[:, 0] > b.bbox[:, 1]) or np.any(b.bbox[:, 0] > a.bbox[:, 1]):
        return 0.0 if (a.mask.any() or b.mask.any()) else 1.0
    _, (ma, mb) = _common([a, b])
    return iou(ma, mb)


def region_dice(a: Region, b: Region) -> float:
    """Dice of two placed regions."""
    _, (ma, mb) = _common([a, b])
    return dice(ma, mb)


def consensus_region(regions: Sequence[Region], level: float = 0.5) -> Region:
    """Voxels marked by at least ``level`` of the regions (pylidc's ``clevel``) in their common bbox."""
    if not regions:
        raise ConsensusError("consensus of no regions")
    if not 0 < level <= 1:
        raise ConsensusError(f"agreement level must be in (0, 1], got {level}")
    bb, masks = _common(regions)
    return Region(np.mean(masks, axis=0) >= level, tuple(int(v) for v in bb[:, 0]), regions[0].label, "consensus")


def match_regions(
    a: Sequence[Any], b: Sequence[Any], *, min_iou: float = 0.1, boxes: bool = False
) -> list[tuple[int, int, float]]:
    """One-to-one matches ``(i, j, iou)`` maximising total IoU (scipy Hungarian), IoU >= ``min_iou``.

    ``a``/``b`` are :class:`Region` lists, or boxes ``(min.., max..)`` with ``boxes=True``.
    """
    from scipy.optimize import linear_sum_assignment

    if not a or not b:
        return []
    m = np.zeros((len(a), len(b)))
    for i, j in itertools.product(range(len(a)), range(len(b))):
        m[i, j] = box_iou(a[i], b[j]) if boxes else region_iou(a[i], b[j])
    rows, cols = linear_sum_assignment(-m)
    return [
        (int(i), int(j), float(m[i, j])) for i, j in zip(rows, cols, strict=True) if m[i, j] >= min_iou and m[i, j] > 0
    ]


def reader_agreement(
    readers: dict[str, Sequence[Region]], *, min_iou: float = 0.1, threshold: float = 0.85
) -> dict[str, Any]:
    """Pairwise detection P/R/F1 and IoU/Dice of matched regions for every reader pair."""
    pairs = []
    ious: list[float] = []
    for ra, rb in itertools.combinations(sorted(readers), 2):
        m = match_regions(readers[ra], readers[rb], min_iou=min_iou)
        prf = detection_prf(len(readers[ra]), len(readers[rb]), len(m))
        vals = [v for _, _, v in m]
        ious.extend(vals)
        pairs.append(
            {
                "a": ra,
                "b": rb,
                **prf.as_dict(),
                "dice": [region_dice(readers[ra][i], readers[rb][j]) for i, j, _ in m],
                "iou": vals,
            }
        )
    return {"pairs": pairs, "iou": summarize(ious, threshold=threshold).as_dict()}


def regions_frame(item: str, readers: dict[str, Sequence[Region]], *, min_iou: float = 0.1) -> pd.DataFrame:
    """Long frame: regions chained across readers by IoU matches become units; label = region label."""
    names = sorted(readers)
    parent: dict[tuple[str, int], tuple[str, int]] = {}

    def find(x: tuple[str, int]) -> tuple[str, int]:
        while parent.setdefault(x, x) != x:
            x = parent[x]
        return x

    for ra, rb in itertools.combinations(names, 2):
        for i, j, _ in match_regions(readers[ra], readers[rb], min_iou=min_iou):
            parent[find((rb, j))] = find((ra, i))
    groups: dict[tuple[str, int], dict[str, str]] = {}
    for r in names:
        for i, reg in enumerate(readers[r]):
            groups.setdefault(find((r, i)), {})[r] = reg.label
    rows = []
    for k, (_root, members) in enumerate(sorted(groups.items())):
        for r in names:
            rows.append({"item": item, "annotator": r, "unit": f"region{k}", "label": members.get(r, "__none__")})
    return pd.DataFrame(rows, columns=["item", "annotator", "unit", "label"])


# DICOM ---------------------------------------------------------------------------
def read_dicom_series(paths: Iterable[Path | str]) -> tuple[np.ndarray, list[Any]]:
    """Read single-frame DICOM files with pydicom, sorted by ImagePositionPatient z; returns (volume i,j,k, datasets)."""  # noqa: E501
    try:
        import pydicom
    except ImportError as exc:  # pragma: no cover
        raise MissingOptionalDependencyError("pydicom", "imaging") from exc
    dss = []
    for p in paths:
        try:
            dss.append(pydicom.dcmread(str(p)))
        except Exception as exc:
            raise InputFormatError(f"not a readable DICOM file: {exc}", source=str(p)) from None
    if not dss:
        raise InputFormatError("no DICOM files given")
    try:
        dss.sort(key=lambda d: float(d.ImagePositionPatient[2]))
        vol = np.stack([d.pixel_array for d in dss], axis=-1)
    except (AttributeError, ValueError) as exc:
        raise InputFormatError(f"DICOM series lacks geometry or pixels of equal size: {exc}") from None
    return vol, dss


def write_dicom_seg(
    mask: np.ndarray,
    source_images: Sequence[Any],
    path: Path | str,
    *,
    label: str = "Nodule",
    algorithm: str = "clinical-nlp consensus",
) -> Path:
    """Write a binary DICOM-SEG (highdicom) for ``mask`` (i, j, k over the sorted ``source_images``)."""
    try:
        import highdicom as hd
        from pydicom.sr.codedict import codes
    except ImportError as exc:  # pragma: no cover
        raise MissingOptionalDependencyError("highdicom", "imaging") from exc
    from clinical_nlp.io.jsonl import atomic_writer

    if mask.shape[-1] != len(source_images):
        raise ConsensusError(f"mask has {mask.shape[-1]} slices but {len(source_images)} source images")
    desc = hd.seg.SegmentDescription(
        segment_number=1,
        segment_label=label,
        segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
        segmented_property_type=codes.SCT.Nodule,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.SEMIAUTOMATIC,
        algorithm_identification=hd.AlgorithmIdentificationSequence(
            name=algorithm, version="1", family=codes.DCM.ArtificialIntelligence
        ),
    )
    seg = hd.seg.Segmentation(
        source_images=list(source_images),
        pixel_array=np.moveaxis(mask.astype(np.uint8), -1, 0),
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[desc],
        series_instance_uid=hd.UID(),
        series_number=100,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="clinical-nlp",
        manufacturer_model_name="consensus",
        software_versions="1",
        device_serial_number="0",
    )
    with atomic_writer(path, "wb") as fh:
        seg.save_as(fh)
    return Path(path)
