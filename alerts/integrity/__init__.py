"""Data-integrity analytics: can the officers believe a monitor's numbers?

Detectors vectorised with NumPy over a device-month of stored readings and hourly averages,
SciPy's tests where a test decides; thresholds and their rationale in
alerts/integrity/thresholds.yaml. A finding goes to officers only: it never raises an alert or
an exceedance and never changes a legal number. See README.md, "Integrity analytics".
"""

from alerts.integrity.analyse import analyse, analyse_month, integrity_report
from alerts.integrity.findings import Finding
from alerts.integrity.month import DeviceMonth
from alerts.integrity.thresholds import KINDS, Thresholds, load_thresholds

__all__ = [
    "KINDS",
    "DeviceMonth",
    "Finding",
    "Thresholds",
    "analyse",
    "analyse_month",
    "integrity_report",
    "load_thresholds",
]
