"""What every panel shares: the study dropdown's labels and a one-line error."""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING

import ipywidgets as w

from anonlib.ui.render import show_html

if TYPE_CHECKING:

    from anonlib.sources.base import Source

__all__ = ["study_options", "show_error"]


def study_options(src: Source) -> list[tuple[str, str]]:
    """(label, study key) for a dropdown: date, modalities, description and patient."""
    studies = src.studies()
    return [(f"{r['study_date'] or 'no date'} · {r['modalities']} · {r['description'] or '-'} · {r['patient_name']}",
             str(r["study"])) for r in studies.to_dict("records")]


def show_error(out: w.Output, exc: Exception) -> None:
    with out:
        show_html(f"<p style='color:#b91c1c' class='anonlib-error'>{escape(type(exc).__name__)}: {escape(str(exc))}</p>")
