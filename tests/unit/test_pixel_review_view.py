"""The review view's functions (anonlib.pixel_review) and its panel without a kernel: findings
joined with the files and decisions, decisions recorded in a real SQLite lookup store, the
table PHI-free, the boxes drawn on the instance's frames."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from pydicom.data import get_testdata_file

from anonlib import pixel_review as pr
from anonlib.errors import ConfigError
from anonlib.store import InstanceRecord, PixelBox, PixelFindings, Region, SqlStore
from anonlib.ui import review as review_ui

ORIGINAL_MASKED, ORIGINAL_HELD = "1.2.826.0.1.3680043.2.1125.777.1", "1.2.826.0.1.3680043.2.1125.777.2"
MASKED_FILE = "ANON1/20200101_2.25.9/1_CT/2.25.11.dcm"
HELD_FILE = "ANON1/20200101_2.25.9/2_OT/2.25.12.dcm"
BOXES = (PixelBox(0, 4, 6, 40, 10, 0.91),)


@pytest.fixture
def reviewed(tmp_path: Path) -> tuple[str, Path]:
    """A lookup store with a masked (released) and a quarantined instance, and their files."""
    url = f"sqlite:///{tmp_path / 'lookup.sqlite3'}"
    output = tmp_path / "out"
    ct = Path(get_testdata_file("CT_small.dcm"))  # 128 x 128, 16 bit
    for folder, relative in ((output, MASKED_FILE), (pr.quarantine_folder(output), HELD_FILE)):
        (folder / relative).parent.mkdir(parents=True)
        shutil.copy(ct, folder / relative)
    with SqlStore(url) as store:
        store.record_instances([
            InstanceRecord(ORIGINAL_MASKED, "2.25.11", "1.2.3", "written", MASKED_FILE),
            InstanceRecord(ORIGINAL_HELD, "2.25.12", "1.2.3", "quarantined", HELD_FILE, "pixels: OCR failed (x)")])
        store.record_pixel_findings(PixelFindings(ORIGINAL_MASKED, "2.25.11", "masked", boxes=BOXES))
        store.record_pixel_findings(PixelFindings(ORIGINAL_HELD, "2.25.12", "quarantined", "pixels: OCR failed (x)"))
    return url, output


def test_items_join_findings_files_and_decisions(reviewed: tuple[str, Path]) -> None:
    url, output = reviewed
    items = pr.review_items(url, output)
    assert [(i.key, i.status, i.relative, i.decision) for i in items] == [
        ("2.25.11", "written", MASKED_FILE, None), ("2.25.12", "quarantined", HELD_FILE, None)]
    assert items[0].path == output / MASKED_FILE
    assert items[1].path == output.with_name("out-quarantine") / HELD_FILE
    assert [i.key for i in pr.review_items(url, output, outcome="quarantined")] == ["2.25.12"]
    (output / MASKED_FILE).unlink()
    assert pr.review_items(url, output)[0].path is None  # shown as "file not found", never guessed


def test_the_table_names_no_original_uid(reviewed: tuple[str, Path]) -> None:
    url, output = reviewed
    table = pr.review_table(pr.review_items(url, output))
    assert list(table.columns) == pr.REVIEW_COLUMNS
    assert list(table["decision"]) == ["pending", "pending"]
    assert list(table["now"]) == ["released", "quarantined"] and list(table["boxes"]) == [1, 0]
    text = table.to_csv()
    assert ORIGINAL_MASKED not in text and ORIGINAL_HELD not in text


def test_decisions_are_recorded_and_shown(reviewed: tuple[str, Path]) -> None:
    url, output = reviewed
    masked, held = pr.review_items(url, output)
    recorded = pr.record_decision(url, masked, "mask", regions="10,20,30,8; 0:0,0,5,5", reviewer=" dr. A ")
    assert recorded.original_sop_uid == ORIGINAL_MASKED and recorded.reviewer == "dr. A"
    assert recorded.regions == (Region(0, 10, 20, 30, 8), Region(0, 0, 0, 5, 5)) and recorded.decided_at
    pr.record_decision(url, held, "release")
    with SqlStore(url) as store:
        assert store.review(ORIGINAL_HELD) is not None and store.review(ORIGINAL_HELD).decision == "release"  # type: ignore[union-attr]
    table = pr.review_table(pr.review_items(url, output))
    assert list(table["decision"]) == ["mask", "release"]
    assert table["regions"][0] == "0:10,20,30,8; 0:0,0,5,5" and table["reviewer"][0] == "dr. A"
    pr.record_decision(url, held, "reject")  # the latest decision wins
    assert pr.review_items(url, output)[1].decision.decision == "reject"  # type: ignore[union-attr]


@pytest.mark.parametrize(("decision", "regions", "message"), [
    ("approve", "", "must be one of release, mask, reject"),
    ("mask", "", "needs at least one region"),
    ("reject", "1,2,3,4", "takes no regions"),
    ("mask", "1,2,3", "write x,y,w,h or frame:x,y,w,h"),
    ("mask", "1,2,0,4", "at least 1 pixel"),
    ("mask", "-1,2,3,4", "write x,y,w,h"),
    ("mask", "100,100,29,28", "not inside the image .1 frame.s. of 128 x 128 pixels"),
    ("mask", "1:0,0,5,5", "not inside the image"),
])
def test_a_bad_decision_is_refused_and_nothing_recorded(reviewed: tuple[str, Path], decision: str, regions: str,
                                                       message: str) -> None:
    url, output = reviewed
    with pytest.raises(ConfigError, match=message):
        pr.record_decision(url, pr.review_items(url, output)[0], decision, regions=regions)
    with SqlStore(url) as store:
        assert store.reviews() == []


def test_items_are_found_by_new_uid_or_file(reviewed: tuple[str, Path]) -> None:
    url, output = reviewed
    items = pr.review_items(url, output)
    assert pr.find_item(items, "2.25.12") is items[1] and pr.find_item(items, MASKED_FILE) is items[0]
    with pytest.raises(ConfigError, match="no instance to review"):
        pr.find_item(items, ORIGINAL_MASKED)  # the original UID is not how the view names instances


def test_the_figure_draws_the_boxes_on_the_frame(reviewed: tuple[str, Path]) -> None:
    url, output = reviewed
    item = pr.review_items(url, output)[0]
    figure = pr.item_figure(item)
    [axes] = [a for a in figure.axes if a.images]
    image = np.asarray(axes.images[0].get_array())
    assert image.ndim == 3 and image.shape[2] == 3
    scale = image.shape[1] / 128
    top, left = round(6 * scale), round(4 * scale)
    assert tuple(image[top, left + 10]) == (230, 40, 40)  # the top edge of the found box, red
    assert axes.get_title() == "frame 0"


def test_a_missing_file_is_a_placeholder_with_its_reason(reviewed: tuple[str, Path]) -> None:
    url, output = reviewed
    (output / MASKED_FILE).unlink()
    figure = pr.item_figure(pr.review_items(url, output)[0])
    assert "file not found" in figure.axes[0].get_title()


@pytest.fixture
def shown(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    html: list[str] = []
    monkeypatch.setattr(review_ui, "show_html", html.append)
    monkeypatch.setattr(review_ui, "show", lambda obj: html.append(f"<figure {type(obj).__name__}>"))
    return html


def test_the_panel_records_each_decision(reviewed: tuple[str, Path], shown: list[str]) -> None:
    url, output = reviewed
    panel = review_ui.ReviewPanel(db_url=url, output=str(output), reviewer="dr. B")
    assert [key for _label, key in panel.picker.options] == ["2.25.11", "2.25.12"]
    assert any("anonlib-review-table" in h for h in shown) and any("<figure Figure>" in h for h in shown)
    panel.picker.value = "2.25.12"
    panel.decide("mask")  # no region added: refused, shown, nothing recorded
    assert "needs at least one region" in "".join(shown)
    for x in (3, 50):
        panel.frame.value, panel.x.value, panel.y.value, panel.width.value, panel.height.value = 0, x, 7, 20, 9
        panel.add_region()
    assert "x 50 y 7 w 20 h 9" in panel.pending.value
    panel.decide("mask")
    with SqlStore(url) as store:
        decision = store.review(ORIGINAL_HELD)
    assert decision is not None and decision.decision == "mask" and decision.reviewer == "dr. B"
    assert decision.regions == (Region(0, 3, 7, 20, 9), Region(0, 50, 7, 20, 9))
    assert panel.picker.value == "2.25.12" and panel.regions == [] and "Recorded: mask" in "".join(shown)
    panel.picker.value = "2.25.11"
    panel.decide("reject")
    with SqlStore(url) as store:
        assert [(d.original_sop_uid, d.decision) for d in store.reviews()] == [
            (ORIGINAL_MASKED, "reject"), (ORIGINAL_HELD, "mask")]


def test_headless_review_lists_and_draws(reviewed: tuple[str, Path], shown: list[str]) -> None:
    url, output = reviewed
    review_ui.show_review(pr.review_items(url, output))
    text = "".join(shown)
    assert "2 instance(s) to review" in text and text.count("<figure Figure>") == 2
    shown.clear()
    review_ui.show_review([])
    assert "Nothing to review" in "".join(shown)
