"""Start-up cost (issue 12): what a de-identification run imports, and the helpers that keep it small."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import yaml

from anonlib.data import PARSED_TABLES, load_yaml, parse_yaml, parsed_tables_text

DATA = Path(__file__).resolve().parents[2] / "anonlib" / "data"


def test_libyaml_reads_every_bundled_table_as_the_python_loader_does() -> None:
    for path in sorted(DATA.glob("*.yaml")):
        text = path.read_text(encoding="utf-8")
        assert parse_yaml(text) == yaml.safe_load(text), path.name


def test_the_parsed_tables_are_current_and_the_same_data_as_the_yaml() -> None:
    assert (DATA / PARSED_TABLES).read_text(encoding="utf-8") == parsed_tables_text(), (
        'rebuild: python -c "from anonlib.data import write_parsed_tables; write_parsed_tables()"')
    for path in sorted(DATA.glob("*.yaml")):
        text = path.read_text(encoding="utf-8")
        first = load_yaml(text)
        assert first == yaml.safe_load(text), path.name  # JSON keeps every type these tables use
        assert first is not load_yaml(text)  # a fresh copy each time: callers may not share it
    edited = (DATA / "identifiers.yaml").read_text(encoding="utf-8") + "\nextra_key: 1\n"
    assert load_yaml(edited)["extra_key"] == 1  # not listed: parsed


def _modules_after(code: str) -> set[str]:
    script = textwrap.dedent(code) + "\nimport sys\nprint('\\n'.join(sorted(sys.modules)))\n"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                          cwd=Path(__file__).resolve().parents[2])
    return set(done.stdout.split())


def test_deferred_modules_exist_but_are_not_run_until_used() -> None:
    script = """
        import sys
        from anonlib.lazy_imports import deferred, is_deferred
        with deferred():
            import pydicom
        import numpy  # a second import statement does not run it (LazyLoader's did)
        import numpy as np
        assert is_deferred("numpy") and is_deferred("requests"), sys.modules["numpy"]
        assert "numpy._core" not in sys.modules
        assert isinstance(np.zeros(2), np.ndarray)  # first use runs it
        assert not is_deferred("numpy") and "numpy._core" in sys.modules
        import pylibjpeg.utils  # a submodule: its package runs first
        assert not is_deferred("pylibjpeg") and pylibjpeg.utils.Decoder is not None
    """
    _modules_after(script)


def test_pydicoms_pixel_plugins_are_the_same_when_registered_on_first_use() -> None:
    query = """
        import pydicom.uid as u
        from pydicom.pixels.decoders.base import get_decoder
        from pydicom.pixels.encoders.base import get_encoder
        for uid in (u.JPEG2000Lossless, u.JPEGBaseline8Bit, u.RLELossless, u.JPEGLSLossless, u.HTJ2K):
            print(uid, get_decoder(uid).available_plugins, get_decoder(uid).missing_dependencies)
            print(get_decoder(uid).__doc__)
        print(get_encoder(u.RLELossless).available_plugins, get_encoder(u.JPEG2000Lossless).__doc__)
        import pydicom
        from pydicom.data import get_testdata_file
        print(pydicom.dcmread(get_testdata_file("JPEG2000.dcm")).pixel_array.sum())
    """
    plain = subprocess.run([sys.executable, "-c", "import pydicom\n" + textwrap.dedent(query)],
                           capture_output=True, text=True, check=True).stdout
    lazy = subprocess.run([sys.executable, "-c", textwrap.dedent("""
        from anonlib.lazy_imports import deferred, is_deferred
        with deferred():
            import pydicom
        assert is_deferred("pydicom.pixel_data_handlers.pylibjpeg_handler")
    """) + textwrap.dedent(query)], capture_output=True, text=True, check=True,
        cwd=Path(__file__).resolve().parents[2]).stdout
    assert "pylibjpeg" in plain and lazy == plain


def test_pydicoms_version_is_read_without_importlib_metadata() -> None:
    script = """
        import sys
        from anonlib.lazy_imports import deferred
        with deferred():
            import pydicom
        assert "importlib.metadata" not in sys.modules
        from importlib.metadata import version
        assert pydicom.__version__ == version("pydicom"), pydicom.__version__
        assert pydicom._version.__version_info__ == tuple(version("pydicom").split(".")[:3])
        assert version("numpy")  # the real module, not the stand-in
    """
    _modules_after(script)


def test_settle_loads_what_is_still_deferred() -> None:
    script = """
        import sys
        from anonlib.lazy_imports import deferred, is_deferred, settle
        with deferred():
            import pydicom
        settle()
        lazy = [name for name in list(sys.modules) if is_deferred(name)]
        assert not lazy, lazy
        from pydicom.pixels.decoders.base import get_decoder
        assert "_later" not in vars(get_decoder(pydicom.uid.JPEG2000Lossless))
    """
    _modules_after(script)


def test_deidentifying_a_file_runs_no_pixel_library(tmp_path: Path) -> None:
    """``anonlib deidentify`` of one CT file (no pixel decoded) in a fresh interpreter: numpy,
    Pillow's image module, the pixel codecs, pandas, highdicom and SQLAlchemy never run."""
    from pydicom.data import get_testdata_file

    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "ct.dcm").write_bytes(Path(str(get_testdata_file("CT_small.dcm"))).read_bytes())
    ran = _modules_after(f"""
        import sys
        from anonlib import cli
        from anonlib.lazy_imports import is_deferred
        sys.argv = ["anonlib", "deidentify", {str(tmp_path / "in")!r}, {str(tmp_path / "out")!r}, "--burned-in",
                    "allow", "--db", "sqlite:///{tmp_path / "store.sqlite3"}", "--no-progress"]
        assert cli.main() == 0  # the process's own command line, as the console script runs it
        for name in [name for name in sys.modules if is_deferred(name)]:
            del sys.modules[name]
    """)
    assert (tmp_path / "out" / "manifest.csv").exists()
    for library in ("numpy", "PIL.Image", "pylibjpeg", "openjpeg", "jpeg_ls", "pandas", "highdicom", "sqlalchemy",
                    "requests", "importlib.metadata", "yaml"):
        assert library not in ran, library


def test_a_caller_passing_argv_gets_pydicom_as_it_is(tmp_path: Path) -> None:
    """Only the process's own command line defers pydicom's pixel stack: a caller in a
    longer-lived process (a test, a notebook calling ``main``) is left no import hook."""
    (tmp_path / "in").mkdir()
    script = f"""
        import sys
        from anonlib import cli
        from anonlib.lazy_imports import is_deferred
        cli.main(["deidentify", {str(tmp_path / "in")!r}, {str(tmp_path / "out")!r}, "--burned-in", "allow",
                  "--db", "sqlite:///{tmp_path / "store.sqlite3"}", "--no-progress"])
        assert not [name for name in sys.modules if is_deferred(name)]
    """
    assert "numpy" in _modules_after(script)


def test_a_failed_flush_of_the_summary_is_not_exit_status_0(tmp_path: Path) -> None:
    """When the summary cannot be written (stdout on a full disk), the fast exit reports it by
    its status (120, as Python's own exit does), not 0."""
    (tmp_path / "in").mkdir()
    script = textwrap.dedent(f"""
        import sys
        sys.argv = ["anonlib", "deidentify", {str(tmp_path / "in")!r}, {str(tmp_path / "out")!r},
                    "--burned-in", "allow", "--db", "sqlite:///{tmp_path / "store.sqlite3"}", "--no-progress"]
        from anonlib.cli import main
        sys.exit(main())
    """)
    env = {k: v for k, v in os.environ.items() if not k.startswith("COV") and k != "PYTHONUNBUFFERED"}
    with open("/dev/full", "w") as full:
        done = subprocess.run([sys.executable, "-c", script], stdout=full, stderr=subprocess.PIPE, text=True,
                              env=env, cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 120, done.stderr


def test_the_command_line_exits_at_once_with_its_status_and_its_output(tmp_path: Path) -> None:
    """The console script's deidentify skips the interpreter's teardown: the status, the printed
    summary, the manifest and the caller's own ``finally`` (the bench's profile dump) stay."""
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "not-dicom.dcm").write_bytes(b"not a DICOM file" * 20)
    script = textwrap.dedent(f"""
        import atexit, sys
        atexit.register(lambda: open({str(tmp_path / "atexit")!r}, "w").close())  # skipped
        sys.argv = ["anonlib", "deidentify", {str(tmp_path / "in")!r}, {str(tmp_path / "out")!r}, "--strict",
                    "--burned-in", "allow", "--db", "sqlite:///{tmp_path / "store.sqlite3"}", "--no-progress"]
        from anonlib.cli import main
        try:
            status = main()
        finally:
            open({str(tmp_path / "finally")!r}, "w").close()
        sys.exit(status)
    """)
    env = {k: v for k, v in os.environ.items() if not k.startswith("COV")}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 1, done.stderr  # --strict with a rejected file
    assert "1 rejected" in done.stdout and "rejected:" in done.stderr
    assert (tmp_path / "finally").exists() and (tmp_path / "out" / "manifest.csv").exists()
    assert not (tmp_path / "atexit").exists()


def test_the_deidentification_path_imports_no_ocr_table_or_report_library() -> None:
    loaded = _modules_after("""
        import anonlib.folder_run, anonlib.pipeline, anonlib.engine, anonlib.cli
    """)
    for heavy in ("highdicom", "pandas", "rapidocr_onnxruntime", "onnxruntime", "shapely",
                  "anonlib.pixels.decode", "anonlib.pixels.detect", "anonlib.audit",
                  "sqlalchemy", "concurrent.futures.process"):
        assert heavy not in loaded, heavy


def test_pixel_steps_load_on_first_use() -> None:
    script = """
        import sys
        import anonlib.pixels as pixels
        assert "anonlib.pixels.detect" not in sys.modules
        assert pixels.find_text.__module__ == "anonlib.pixels.detect"
        from anonlib.pixels import mask_text, decode_frames, render_views, merge_boxes, detector
        assert "anonlib.pixels.mask" in sys.modules
        try:
            pixels.no_such_step
        except AttributeError:
            pass
        else:
            raise AssertionError("unknown names must raise AttributeError")
    """
    _modules_after(script)


def test_iod_types_parse_only_the_modules_of_the_iods_met() -> None:
    from anonlib.profile import iod

    iod._module.cache_clear()
    iod.iod_types.cache_clear()
    types = iod.iod_types("1.2.840.10008.5.1.4.1.1.2")  # CT Image Storage
    parsed = iod._module.cache_info().currsize
    assert types.iod == "ct-image" and len(types) > 1000
    assert parsed == len(iod._index()["iod_modules"]["ct-image"]) < len(iod._index()["module_lines"]) // 10
    assert types.type_of((0x00100010,)) == "2"  # PatientName, Patient module
    assert types.type_of((0x00100010,)) == "2"  # asked again: from the memo


def test_main_pass_tasks_shrink_so_workers_finish_together_with_few_commits() -> None:
    from anonlib.folder_run import task_sizes

    assert task_sizes(300, 2)[:3] == [64, 59, 44]  # each task ends with a store commit: few, large first
    assert len(task_sizes(300, 2)) == 15
    assert task_sizes(0, 2) == [] and task_sizes(3, 2) == [3] and task_sizes(10, 2) == [4, 4, 2]
    for files in (1, 50, 300, 1000, 5000):
        for workers in (2, 4):
            sizes = task_sizes(files, workers)
            assert sum(sizes) == files and max(sizes) <= 64, (files, workers)
            assert sizes == sorted(sizes, reverse=True)
            assert all(size <= 4 for size in sizes[-workers:]), (files, workers)  # the last ones: a few files


def test_a_run_starts_no_more_workers_than_its_files_need() -> None:
    from anonlib.folder_run import MIN_FILES_PER_WORKER, worker_count

    assert worker_count(2, 1) == 1  # one file: no pool to start
    assert worker_count(2, 2 * MIN_FILES_PER_WORKER - 1) == 1
    assert worker_count(2, 2 * MIN_FILES_PER_WORKER) == 2
    assert worker_count(4, 300) == 4 and worker_count(1, 300) == 1 and worker_count(3, 0) == 1


def test_the_manifest_is_written_as_csv_dictwriter_writes_it(tmp_path: Path) -> None:
    import csv
    import io
    from dataclasses import asdict, fields

    from anonlib.sinks.folder import ManifestRow, read_manifest, write_manifest

    rows = {f"p/{n}.dcm": ManifestRow(f"p/{n}.dcm", "ANON1", "2.25.1", "2.25.2", f"2.25.3.{n}", "1.2.840.1", "CT",
                                      "20200101", str(n), "ab" * 32, "quarantined" if n % 2 else "written",
                                      'a "quoted", two-line\nreason' if n == 3 else "")
            for n in (5, 3, 10)}
    expected = io.StringIO()
    writer = csv.DictWriter(expected, fieldnames=[f.name for f in fields(ManifestRow)], lineterminator="\n")
    writer.writeheader()
    for key in sorted(rows):
        writer.writerow(asdict(rows[key]))
    write_manifest(tmp_path / "manifest.csv", rows)
    assert (tmp_path / "manifest.csv").read_bytes() == expected.getvalue().encode("utf-8")
    assert read_manifest(tmp_path / "manifest.csv") == rows


def test_the_cli_runs_numpy_with_one_blas_thread_unless_told_otherwise(tmp_path: Path) -> None:
    script = textwrap.dedent(f"""
        import os, sys
        from anonlib import cli
        cli.main(["deidentify", "--burned-in", "allow", {str(tmp_path / "missing")!r}, {str(tmp_path / "out")!r}])
        print(os.environ.get("OPENBLAS_NUM_THREADS"))
    """)
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    default = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    assert default.stdout.strip().splitlines()[-1] == "1"
    chosen = subprocess.run([sys.executable, "-c", script], env={**env, "OPENBLAS_NUM_THREADS": "2"},
                            capture_output=True, text=True, check=True)
    assert chosen.stdout.strip().splitlines()[-1] == "2"


def test_a_broken_deferred_module_raises_its_import_error_every_time(tmp_path: Path) -> None:
    """A deferred optional package whose import fails raises its ImportError at first use and
    again at the next import — no half-run module is left behind to fail with AttributeError."""
    (tmp_path / "brokenpkg.py").write_text("VALUE = 1\nraise ImportError('brokenpkg needs a library')\n")
    script = f"""
        import sys
        sys.path.insert(0, {str(tmp_path)!r})
        from anonlib.lazy_imports import deferred
        with deferred(("brokenpkg",)):
            import brokenpkg
        for attempt in range(2):
            try:
                brokenpkg.VALUE if attempt == 0 else __import__("brokenpkg").VALUE
            except ImportError as exc:
                assert "needs a library" in str(exc), exc
            else:
                raise AssertionError("no ImportError")
        assert "brokenpkg" not in sys.modules
    """
    _modules_after(script)
