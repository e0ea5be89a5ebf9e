"""Write phantom cases in real formats: DICOM US multi-frame (echo) and the ACDC layout (cine)."""

from app.data.writers.acdc import write_acdc_patient
from app.data.writers.dicom_us import write_echo_dicom

__all__ = ["write_acdc_patient", "write_echo_dicom"]
