"""Boxes outlined on a copy of a rendered frame (anonlib.pixels.draw)."""

from __future__ import annotations

import numpy as np
import pytest

from anonlib.pixels import TextBox
from anonlib.pixels.draw import FOUND, MASKED, draw_boxes
from anonlib.store import Region

RED, GREEN = FOUND, MASKED


def test_the_outline_is_drawn_on_a_copy_and_inside_is_untouched() -> None:
    grey = np.full((64, 64), 50, dtype=np.uint8)
    drawn = draw_boxes(grey, (64, 64), [([TextBox(0, 10, 20, 30, 12, 0.9, text="DOE")], RED)])
    assert drawn.shape == (64, 64, 3) and drawn.dtype == np.uint8
    assert (grey == 50).all()  # the input is not drawn on
    assert tuple(drawn[20, 10]) == RED and tuple(drawn[20 + 11, 10 + 29]) == RED  # corners
    assert tuple(drawn[25, 25]) == (50, 50, 50)  # inside
    assert tuple(drawn[19, 9]) == (50, 50, 50)  # outside
    assert int((drawn != 50).any(axis=2).sum()) == 2 * 30 + 2 * 10  # exactly the outline


def test_boxes_in_frame_pixels_land_on_an_upscaled_render() -> None:
    render = np.zeros((128, 256, 3), dtype=np.uint8)  # a 64 x 128 frame rendered at 2x
    drawn = draw_boxes(render, (64, 128), [([Region(0, 5, 6, 10, 4)], GREEN)])
    assert tuple(drawn[12, 10]) == GREEN and tuple(drawn[12 + 7, 10 + 19]) == GREEN
    assert tuple(drawn[11, 10]) == (0, 0, 0) and tuple(drawn[12, 30]) == (0, 0, 0)


def test_only_the_frames_boxes_and_each_layer_in_its_colour() -> None:
    image = np.zeros((40, 40), dtype=np.uint8)
    layers = [([TextBox(1, 0, 0, 10, 10, 0.5)], RED), ([Region(1, 20, 20, 10, 10), Region(0, 2, 2, 5, 5)], GREEN)]
    first = draw_boxes(image, (40, 40), layers, frame=0)
    assert tuple(first[2, 2]) == GREEN and not (first == RED).all(axis=2).any()  # frame 1's boxes left out
    second = draw_boxes(image, (40, 40), layers, frame=1)
    assert tuple(second[0, 0]) == RED and tuple(second[20, 20]) == GREEN and tuple(second[2, 2]) == (0, 0, 0)


def test_a_large_render_is_shrunk_for_display() -> None:
    drawn = draw_boxes(np.zeros((2000, 1000), dtype=np.uint8), (2000, 1000), [([Region(0, 0, 0, 1000, 2000)], RED)],
                       max_side=500)
    assert drawn.shape == (500, 250, 3) and tuple(drawn[0, 0]) == RED and tuple(drawn[499, 249]) == RED


@pytest.mark.parametrize("bad", [np.zeros((8, 8), dtype=np.uint16), np.zeros((8, 8, 4), dtype=np.uint8)])
def test_an_image_that_is_not_8_bit_grey_or_rgb_is_refused(bad: np.ndarray) -> None:
    with pytest.raises(ValueError):
        draw_boxes(bad, (8, 8), [])
