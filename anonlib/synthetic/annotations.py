"""Annotations burned into a canvas: where a block of lines goes, which ink stands out, and the
truth box of every line drawn.

Blocks of one to three lines (one font, size and colour) go to a corner, an edge or over the
anatomy without overlapping each other. The colour is one a modality or viewer would use
(white, grey, the maximum stored value, yellow or green on colour images, black on light
anatomy, or black letters on a light plate); a colour that would not stand out of the
background by 30 % of the display range, in the viewer's window or in full range, is replaced
by one that does, so every line is readable by a person.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from anonlib.synthetic import canvases, lettering

__all__ = ["TruthBox", "Painter"]

_SIZES = (8, 9, 10, 11, 12, 13, 14, 16, 18, 20, 22, 24, 28, 32, 36, 40)
_MIN_CONTRAST = 0.3


@dataclass(frozen=True)
class TruthBox:
    """One piece of burned-in text: the tight box of the pixels it changed in one frame."""

    frame: int
    x: int
    y: int
    width: int
    height: int
    kind: str
    text: str
    font: str
    size: int
    antialias: bool
    colour: str
    position: str



def _display(canvas: canvases.Canvas, values: np.ndarray) -> np.ndarray:
    """Values as a viewer shows them, 0 (black) … 1 (white), in the canvas's window."""
    if canvas.palette is not None:
        values = canvas.palette[values.astype(np.intp)]
    if canvas.colour or canvas.palette is not None:
        luminance: np.ndarray = np.asarray(values, dtype=np.float64) @ np.array([0.299, 0.587, 0.114])
        return luminance / 255.0
    lo, hi = canvas.window
    shown = np.clip((values.astype(np.float64) - lo) / (hi - lo), 0.0, 1.0)
    return 1.0 - shown if canvas.monochrome1 else shown


def _stored(canvas: canvases.Canvas, shown: float) -> int:
    """The stored value a viewer shows at ``shown`` (0 black … 1 white)."""
    lo, hi = canvas.window
    value = lo + ((1.0 - shown) if canvas.monochrome1 else shown) * (hi - lo)
    low, high = canvas.stored_range
    return int(np.clip(round(value), low, high))


_RGB = {"white": (255, 255, 255), "grey": (165, 165, 165), "yellow": (255, 255, 0), "green": (0, 255, 0),
        "black": (0, 0, 0), "plate": (235, 235, 235)}


def _ink(canvas: canvases.Canvas, colour: str) -> int | tuple[int, ...]:
    """The value drawn for ``colour`` (white, grey, yellow, green, max, black, plate)."""
    if canvas.palette is not None:
        wanted = np.array(_RGB.get(colour, _RGB["white"]), dtype=np.float64)
        return int(np.argmin(((canvas.palette.astype(np.float64) - wanted) ** 2).sum(axis=1)))
    if canvas.colour:
        return _RGB.get(colour, _RGB["white"])
    if colour == "max":
        return canvas.stored_range[1]
    shown = {"white": 1.0, "grey": 0.65, "yellow": 1.0, "green": 0.8, "black": 0.0, "plate": 0.92}[colour]
    return _stored(canvas, shown)


def _contrast(canvas: canvases.Canvas, ink: int | tuple[int, ...], region: np.ndarray,
              frame: np.ndarray) -> float:
    """How far the ink stands out of ``region`` in the viewer's window or in the full range of
    the ``frame`` it is drawn in (min-max, the ink included)."""
    ink_values = np.asarray(ink)[None]
    windowed = abs(float(_display(canvas, ink_values)[0]) - float(np.median(_display(canvas, region))))
    if canvas.colour or canvas.palette is not None:
        return windowed
    lo, hi = float(min(frame.min(), ink_values.min())), float(max(frame.max(), ink_values.max()))
    full = abs(float(ink_values[0]) - float(np.median(region))) / max(hi - lo, 1.0)
    return max(windowed, full)


@dataclass
class Painter:
    """Places blocks of lines in an image without overlap and draws them in every chosen frame."""

    canvas: canvases.Canvas
    pixels: np.ndarray
    rng: random.Random
    fonts: list[Path]
    taken: list[tuple[int, int, int, int]] = field(default_factory=list)
    boxes: list[TruthBox] = field(default_factory=list)

    def _fits(self, x: int, y: int, w: int, h: int) -> bool:
        rows, cols = self.pixels.shape[1:3]
        if x < 0 or y < 0 or x + w > cols or y + h > rows:
            return False
        return all(x + w + 6 <= tx or tx + tw + 6 <= x or y + h + 6 <= ty or ty + th + 6 <= y
                   for tx, ty, tw, th in self.taken)

    def _where(self, position: str, w: int, h: int) -> tuple[int, int]:
        rows, cols = self.pixels.shape[1:3]
        rng, margin = self.rng, self.rng.randint(1, 4 if rows < 200 else 12)
        if position == "corner":
            return (rng.choice((margin, cols - w - margin)), rng.choice((margin, rows - h - margin)))
        if position == "edge":
            if rng.random() < 0.5:
                return ((cols - w) // 2 + rng.randint(-cols // 8, cols // 8), rng.choice((margin, rows - h - margin)))
            return (rng.choice((margin, cols - w - margin)), (rows - h) // 2 + rng.randint(-rows // 8, rows // 8))
        return (rng.randint(cols // 5, max(cols // 5, cols * 4 // 5 - w)),
                rng.randint(rows // 4, max(rows // 4, rows * 3 // 4 - h)))

    def block(self, lines: Sequence[tuple[str, str]]) -> None:
        """Draw ``lines`` ((kind, text) pairs) as one block, or nothing when it finds no room."""
        rows, cols = self.pixels.shape[1:3]
        rng = self.rng
        size = min(rng.choice(_SIZES), max(8, rows // 5))
        font = lettering.Font(rng.choice(self.fonts), size, antialias=rng.random() < 0.75)
        masks = [lettering.render(text, font) for _, text in lines]
        while size > 8 and max(m.shape[1] for m in masks) > cols - 8:
            size = max(8, size * 3 // 4)
            font = lettering.Font(font.path, size, font.antialias)
            masks = [lettering.render(text, font) for _, text in lines]
        plate = 2 if rng.random() < 0.2 else 0
        gap = max(2, size // 4) + 2 * plate
        w = max(m.shape[1] for m in masks) + 2 * plate
        h = sum(m.shape[0] for m in masks) + gap * (len(masks) - 1) + 2 * plate
        position = rng.choice(("corner", "corner", "edge", "anatomy"))
        for _ in range(25):
            x, y = self._where(position, w, h)
            if self._fits(x, y, w, h):
                break
        else:
            return
        frames = range(len(self.pixels))
        if len(self.pixels) > 1 and rng.random() < 0.3:
            frames = range(frame := rng.randrange(len(self.pixels)), frame + 1)
        region = self.pixels[frames[0], y:y + h, x:x + w]
        colours = ["plate"] if plate else [self._colour()]
        colours += ["white", "black", "max"] if not plate else []
        ink_name = next((c for c in colours if c == "plate"
                         or _contrast(self.canvas, _ink(self.canvas, c), region, self.pixels[frames[0]]) >= _MIN_CONTRAST), "")
        if not ink_name:
            return
        self.taken.append((x, y, w, h))
        for frame in frames:
            self._draw(frame, x, y, plate, gap, masks, lines, font, ink_name, position)

    def _colour(self) -> str:
        if self.canvas.colour or self.canvas.palette is not None:
            return self.rng.choice(("white", "white", "yellow", "green", "grey", "black"))
        return self.rng.choice(("white", "white", "grey", "max", "max", "black"))

    def _draw(self, frame: int, x: int, y: int, plate: int, gap: int, masks: list[np.ndarray],
              lines: Sequence[tuple[str, str]], font: lettering.Font, ink_name: str, position: str) -> None:
        image = self.pixels[frame]
        blend = self.canvas.palette is None
        ink = _ink(self.canvas, "black" if plate else ink_name)
        top = y + plate
        for mask, (kind, text) in zip(masks, lines):
            if plate:
                w_line, h_line = mask.shape[1] + 2 * plate, mask.shape[0] + 2 * plate
                image[top - plate:top - plate + h_line, x:x + w_line] = _ink(self.canvas, "plate")
                lettering.composite(image, mask, x + plate, top, ink, blend=blend)
                box: tuple[int, int, int, int] | None = (x, top - plate, w_line, h_line)
            else:
                box = lettering.composite(image, mask, x, top, ink, blend=blend)
            if box is not None:
                self.boxes.append(TruthBox(frame, *box, kind=kind, text=text, font=font.name,
                                           size=font.size, antialias=font.antialias,
                                           colour=ink_name, position=position))
            top += mask.shape[0] + gap
