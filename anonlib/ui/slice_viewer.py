"""The slice viewer: a series' slices in anatomical order, a slider, CT window presets.

The ordering, windowing and PNG encoding are the pure functions of
:mod:`anonlib.sources.slices`; this widget only reads instances from the source, keeps the
current instance's decoded frames, and shows one slice at a time.
"""

from __future__ import annotations

import io
import warnings
from html import escape
from typing import TYPE_CHECKING

import ipywidgets as w

from anonlib.sources.slices import WINDOW_PRESETS, Slice, png, slice_order, window_frame

if TYPE_CHECKING:
    import numpy as np
    from pydicom.dataset import Dataset

    from anonlib.sources.base import Source

__all__ = ["SliceViewer", "MAX_HEADERS"]

#: Up to this many instances, every header is read to order the slices by position and expand
#: multi-frame instances; a longer series is paged in the source's order (InstanceNumber).
MAX_HEADERS = 400


def _read(data: bytes, *, pixels: bool) -> Dataset:
    import pydicom

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(io.BytesIO(data), force=True, stop_before_pixels=not pixels)


class SliceViewer(w.VBox):  # type: ignore[misc]
    """One series at a time: a slider over its slices, a window preset, the slice as an image."""

    def __init__(self, src: Source) -> None:
        self.src = src
        self.slices: list[Slice] = []
        self._current: tuple[str, Dataset, np.ndarray] | None = None
        self.slider = w.IntSlider(description="Slice", min=1, max=1, value=1, continuous_update=False,
                                  layout=w.Layout(width="420px"))
        self.preset = w.Dropdown(description="Window", options=list(WINDOW_PRESETS), value="default")
        self.label = w.HTML()
        self.image = w.Image(format="png", layout=w.Layout(max_width="512px"))
        self.slider.observe(lambda _c: self.draw(), "value")
        self.preset.observe(lambda _c: self.draw(), "value")
        super().__init__([w.HBox([self.slider, self.preset]), self.label, self.image])
        self.add_class("anonlib-slice-viewer")
        self.slider.add_class("anonlib-slice-slider")
        self.preset.add_class("anonlib-window-preset")
        self.label.add_class("anonlib-slice-label")
        self.image.add_class("anonlib-slice-image")

    def load(self, study: str, series: str) -> None:
        """Show the first slice of ``series`` of ``study``."""
        keys = self.src.instances(study, series)
        self.label.value = f"<i>reading the series ({len(keys)} instances)…</i>"
        if len(keys) <= MAX_HEADERS:
            self.slices = slice_order([(key, _read(self.src.read(key), pixels=False)) for key in keys])
        else:
            self.slices = [Slice(key) for key in keys]
        self._current = None
        with self.hold_trait_notifications():
            self.slider.max = max(1, len(self.slices))
            self.slider.value = 1
        self.slider.disabled = len(self.slices) <= 1
        self.draw()

    def draw(self) -> None:
        """Render the slice under the slider with the chosen window."""
        from anonlib.pixels import decode_frames

        if not self.slices:
            self.label.value, self.image.value = "<i>no instances in this series</i>", b""
            return
        index = min(self.slider.value, len(self.slices)) - 1
        chosen = self.slices[index]
        where = f"slice {index + 1} / {len(self.slices)}"
        try:
            if self._current is None or self._current[0] != chosen.instance:
                ds = _read(self.src.read(chosen.instance), pixels=True)
                self._current = (chosen.instance, ds, decode_frames(ds))
            _key, ds, frames = self._current
            frame = min(chosen.frame, len(frames) - 1)
            image = window_frame(frames[frame], ds, str(self.preset.value))
        except Exception as exc:  # noqa: BLE001 - an image that cannot be shown says why, in one line
            from anonlib.ui.common import one_line

            self.image.value = b""
            self.label.value = f"<span class='anonlib-error'>{where}: cannot show ({escape(one_line(exc))})</span>"
            return
        number = ds.get("InstanceNumber", "")
        frames_note = f" · frame {frame + 1} / {len(frames)}" if len(frames) > 1 else ""
        preset = str(self.preset.value)
        window = WINDOW_PRESETS.get(preset)
        shown = "colour" if image.ndim == 3 else f"window {preset}" + (f" {window[0]:g}/{window[1]:g}" if window else "")
        self.label.value = escape(f"{where} · instance {number}{frames_note} · {shown}")
        self.image.value = png(image)
