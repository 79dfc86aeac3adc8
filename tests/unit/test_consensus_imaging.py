"""Imaging adapter on synthetic data: region IoU matching, consensus masks, boxes, DICOM in and DICOM-SEG out."""

from __future__ import annotations

import numpy as np
import pytest

from clinical_nlp.consensus import aggregate
from clinical_nlp.consensus.adapters.imaging import (
    Region,
    consensus_region,
    match_regions,
    read_dicom_series,
    reader_agreement,
    region_iou,
    regions_frame,
    write_dicom_seg,
)
from clinical_nlp.consensus.agreement import ConsensusError


def sphere(center, r, shape=(40, 40, 20)):
    ii, jj, kk = np.indices(shape)
    return ((ii - center[0]) ** 2 + (jj - center[1]) ** 2 + ((kk - center[2]) * 2) ** 2) <= r * r


def test_region_iou_uses_offsets():
    m = np.ones((4, 4), bool)
    assert region_iou(Region(m, (0, 0)), Region(m, (0, 0))) == 1.0
    assert region_iou(Region(m, (0, 0)), Region(m, (2, 0))) == pytest.approx(8 / 24)
    assert region_iou(Region(m, (0, 0)), Region(m, (10, 10))) == 0.0
    with pytest.raises(ConsensusError):
        Region(m, (0, 0, 0))


def test_consensus_mask_levels():
    a, b, c = (Region(sphere((20, 20 + d, 10), 6), (0, 0, 0)) for d in (0, 2, 4))
    half = consensus_region([a, b, c], 0.5)
    assert (half.mask == ((a.mask.astype(int) + b.mask + c.mask) >= 2)).all()
    assert (
        consensus_region([a, b, c], 1.0).mask.sum() <= half.mask.sum() <= consensus_region([a, b, c], 1 / 3).mask.sum()
    )
    with pytest.raises(ConsensusError, match="level"):
        consensus_region([a], 0.0)


def test_match_regions_and_reader_agreement_frame():
    r1 = [Region(sphere((10, 10, 10), 4), (0, 0, 0)), Region(sphere((30, 30, 10), 4), (0, 0, 0))]
    r2 = [Region(sphere((30, 31, 10), 4), (0, 0, 0))]
    m = match_regions(r1, r2)
    assert [(i, j) for i, j, _ in m] == [(1, 0)] and m[0][2] > 0.5
    rep = reader_agreement({"a": r1, "b": r2})
    assert rep["pairs"][0]["tp"] == 1 and rep["pairs"][0]["recall"] == 0.5 and rep["pairs"][0]["precision"] == 1.0
    frame = regions_frame("scan1", {"a": r1, "b": r2})
    per_unit = frame.groupby("unit")["label"].apply(sorted).tolist()
    assert sorted(per_unit) == [["__none__", "region"], ["region", "region"]]
    agg = aggregate(frame)
    assert len(agg.result) == 2 and "region" in agg.result.tolist()


def test_box_matching():
    a = [(0, 0, 10, 10), (20, 20, 30, 30)]
    b = [(21, 21, 31, 31)]
    assert [(i, j) for i, j, _ in match_regions(a, b, boxes=True)] == [(1, 0)]


def _synthetic_series(tmp_path, n=4, size=16):
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    paths = []
    for k in range(n):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = FileDataset(str(tmp_path / f"{k}.dcm"), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.PatientID, ds.PatientName, ds.PatientBirthDate, ds.PatientSex = "P1", "Test^Phantom", "19700101", "O"
        ds.StudyDate, ds.StudyTime, ds.AccessionNumber, ds.ReferringPhysicianName = "20240101", "000000", "A1", ""
        ds.StudyID, ds.SeriesNumber, ds.InstanceNumber, ds.Modality = "1", 1, k + 1, "CT"
        ds.Manufacturer = "synthetic"
        ds.ImagePositionPatient = [0.0, 0.0, float(n - k)]  # written in reverse z order on purpose
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing, ds.SliceThickness = [0.7, 0.7], 1.0
        ds.Rows = ds.Columns = size
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.PixelData = (np.full((size, size), k, np.uint16)).tobytes()
        p = tmp_path / f"{k}.dcm"
        ds.save_as(str(p), enforce_file_format=True)
        paths.append(p)
    return paths


def test_dicom_in_and_dicom_seg_out(tmp_path):
    pytest.importorskip("highdicom")
    pydicom = pytest.importorskip("pydicom")

    vol, dss = read_dicom_series(_synthetic_series(tmp_path))
    assert vol.shape == (16, 16, 4) and list(vol[0, 0, :]) == [3, 2, 1, 0]  # sorted by z
    readers = [np.zeros(vol.shape, bool) for _ in range(3)]
    readers[0][4:10, 4:10, 1:3] = True
    readers[1][5:11, 4:10, 1:3] = True
    readers[2][4:10, 5:11, 1:4] = True
    cons = consensus_region([Region(m, (0, 0, 0)) for m in readers], 0.5)
    out = write_dicom_seg(cons.mask, dss, tmp_path / "seg.dcm")
    seg = pydicom.dcmread(str(out))
    assert seg.Modality == "SEG" and seg.SegmentSequence[0].SegmentLabel == "Nodule"
    assert int(seg.NumberOfFrames) >= 1
    with pytest.raises(ConsensusError, match="slices"):
        write_dicom_seg(cons.mask[..., :2], dss, tmp_path / "bad.dcm")
    assert not (tmp_path / "bad.dcm").exists()
