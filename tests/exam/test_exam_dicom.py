"""A DICOM photograph in an exam: its laterality, patient and study date come from the
header, the patient's name reaches the PDF but not the printed summary, and
``--dicom-out`` writes its Parametric Map (and says why the JPEG gets none)."""

from __future__ import annotations

import subprocess

import numpy as np
from PIL import Image

from tests.conftest import RETINA
from tests.dicom_files import dataset, save
from tests.exam.conftest import need_tool


def dicom_file(path, arr: np.ndarray, laterality: str) -> None:
    ds = dataset(arr)
    ds.PatientName, ds.PatientID, ds.ImageLaterality = "Roe^Jane", "DCM-0042", laterality
    path.write_bytes(save(ds))


def test_a_dicom_photograph_brings_its_eye_patient_and_date(cli, exam_files, tmp_path):
    dcm = tmp_path / "IMG0001.dcm"  # a name that says nothing of the eye
    dicom_file(dcm, np.asarray(Image.open(RETINA).convert("RGB")), "L")
    pdf, maps = tmp_path / "r.pdf", tmp_path / "maps"
    maps.mkdir()
    status, out, err = cli(dcm, exam_files["jane_R.jpg"], "--pdf", pdf, "--dicom-out", maps)
    assert status == 0, err
    import pydicom

    source = pydicom.dcmread(dcm, stop_before_pixels=True)
    written = pydicom.dcmread(maps / "IMG0001.parametric-map.dcm")
    assert written.SOPClassUID == "1.2.840.10008.5.1.4.1.1.30"  # Parametric Map Storage
    assert written.StudyInstanceUID == source.StudyInstanceUID and (written.Rows, written.Columns) == (source.Rows, source.Columns)
    assert written.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
    assert [p.name for p in maps.iterdir()] == ["IMG0001.parametric-map.dcm"]
    assert "jane_R.jpg: not a DICOM file, so no Parametric Map" in "".join(err)
    assert "left eye: grade" in out and "[IMG0001.dcm grade" in out
    assert "Roe" not in out + "".join(err) and "DCM-0042" not in out
    text = subprocess.run([need_tool("pdftotext"), str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    flat = " ".join(text.split())
    assert "Roe, Jane" in flat and "DCM-0042" in flat and "1949-12-31" in flat and "2024-03-15" in flat
    assert "(eye from DICOM header)" in flat
