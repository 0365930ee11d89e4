"""HIPAA Safe Harbor scan of de-identified instances: the table (``table``), value shapes
(``values``), dates and ages (``dates``), pixels and markers (``pixels``), and the scan itself
(``scan``)."""

from anonlib.audit.safe_harbor.dates import detect_date_mode, regulatory_status
from anonlib.audit.safe_harbor.scan import FREE_TEXT_CATEGORY, PRIVATE_CATEGORY, scan_safe_harbor

__all__ = ["scan_safe_harbor", "regulatory_status", "detect_date_mode", "PRIVATE_CATEGORY",
           "FREE_TEXT_CATEGORY"]
