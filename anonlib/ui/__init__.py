"""ipywidgets components for the notebooks, one module per panel: they build parameters and call
:mod:`anonlib.workflows`; headless runs call the same functions without widgets."""

from anonlib.ui.anonymize_panel import AnonymizePanel, show_held
from anonlib.ui.audit_panel import AuditPanel, show_audit, show_findings
from anonlib.ui.browse import BrowsePanel
from anonlib.ui.preview_panel import PreviewPanel, show_preview
from anonlib.ui.reidentify_panel import ReidentifyPanel, show_access_log, show_lookup
from anonlib.ui.render import diff_html, table_html
from anonlib.ui.review import ReviewPanel, show_review

__all__ = ["AnonymizePanel", "AuditPanel", "BrowsePanel", "PreviewPanel", "ReidentifyPanel", "ReviewPanel", "diff_html",
           "show_access_log", "show_audit", "show_findings", "show_held", "show_lookup", "show_preview", "show_review",
           "table_html"]
