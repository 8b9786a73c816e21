"""DICOM files built in memory for the tests (reader, exam, viewer, privacy): one
uncompressed single-frame dataset with a made-up patient, and its bytes."""

from __future__ import annotations

import io

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from core.fundus.dicom import OPHTHALMIC_8BIT

PATIENT = "Fictitious^Testpatient"  # made up; must never leave memory
PATIENT_ID = "TEST-0042"


def dataset(arr: np.ndarray, *, sop: str = OPHTHALMIC_8BIT, photometric: str | None = None, bits: int = 8,
            stored: int | None = None, modality: str = "OP") -> Dataset:
    """A single-frame DICOM dataset holding ``arr`` (HxW or HxWx3) uncompressed, planar configuration 0."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = sop, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality = modality
    ds.PatientName, ds.PatientID = PATIENT, PATIENT_ID
    ds.PatientBirthDate, ds.StudyDate = "19491231", "20240315"
    ds.ImageLaterality = "R"
    ds.Rows, ds.Columns = arr.shape[:2]
    ds.SamplesPerPixel = 3 if arr.ndim == 3 else 1
    ds.PhotometricInterpretation = photometric or ("RGB" if arr.ndim == 3 else "MONOCHROME2")
    if arr.ndim == 3:
        ds.PlanarConfiguration = 0
    ds.BitsAllocated, ds.BitsStored = bits, stored or bits
    ds.HighBit, ds.PixelRepresentation = ds.BitsStored - 1, 0
    ds.NumberOfFrames = 1
    ds.PixelData = np.ascontiguousarray(arr).tobytes()
    return ds


def save(ds: Dataset, **kw: object) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=getattr(ds, "file_meta", None) is not None, **kw)
    return buf.getvalue()
