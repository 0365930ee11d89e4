"""bench/speed_profile.py: the phases a sampled folder run is grouped into, the imports by
package, the gap lines; bench/speed_sampler.py's frame labels and a real sampled process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest

from bench import speed_profile
from bench.speed_corpora import Corpus
from bench.speed_measure import Run
from bench.speed_profile import (
    DUMP,
    EXIT,
    OTHER,
    WORKERS_EXIT,
    Profile,
    first_file_cpu,
    gap_lines,
    import_groups,
    phase_of,
)
from bench.speed_profile import phases as phases_of
from bench.speed_report import Row
from bench.speed_sampler import label

REPO = Path(__file__).resolve().parents[2]
TOP = ["<module>", "bench.speed_sampler:main", "anonlib.cli:main", "anonlib.cli:_deidentify"]
RUN = [*TOP, "anonlib.folder_run:run_folder"]
MAIN = [*RUN, "anonlib.folder_run:_run", "anonlib.folder_run:_results", "anonlib.pipeline:InstanceProcessor.process"]
PARSED = [*MAIN, "anonlib.pipeline:InstanceProcessor.deidentify_file", "anonlib.pipeline:InstanceProcessor._deidentify_read",
          "anonlib.pipeline:InstanceProcessor.deidentify_parsed"]
IMPORT = ["importlib._bootstrap:_find_and_load", "importlib._bootstrap:_find_and_load_unlocked",
          "importlib._bootstrap:_load_unlocked", "importlib._bootstrap_external:_LoaderBasics.exec_module"]

# Stacks recorded by bench/speed_sampler.py in a one-worker run on the 300-file CT corpus
# (trimmed to their anonlib frames and the innermost ones), each with the phase it belongs to.
RECORDED = [
    ([*TOP, *IMPORT, "anonlib.folder_run:<module>", *IMPORT, "anonlib.engine:<module>", "dataclasses:_process_class"],
     "imports"),
    ([*PARSED, "anonlib.engine:deidentify", *IMPORT, "pydicom.pixels:<module>"], "imports"),  # a late import
    ([*RUN, "anonlib.profile.plan:build_plan", "anonlib.profile.plan:_table_code", "enum:Enum.name"], "plan"),
    ([*RUN, "anonlib.inputs:index_inputs", "anonlib.inputs:read_headers", "anonlib.inputs:read_header",
      "anonlib.folder_run:_collect_known", "anonlib.engine.identifiers:collect_identifiers",
      "pydicom.filereader:read_dataset"], "pre-pass"),
    ([*MAIN, "anonlib.pipeline:InstanceProcessor.deidentify_file", "anonlib.pipeline:InstanceProcessor._deidentify_read",
      "anonlib.pipeline:InstanceProcessor.deidentify_file.<locals>.<lambda>", "anonlib.dicomio.files:read_instance",
      "anonlib.dicomio.header:read_fast", "anonlib.dicomio.header:_walk"], "main pass: read"),
    ([*PARSED, "anonlib.engine:deidentify", "anonlib.engine.walk:Walker._apply", "pydicom.tag:BaseTag.__eq__"],
     "main pass: engine"),
    ([*PARSED, "anonlib.engine:deidentify", "anonlib.profile.iod:iod_types", "anonlib.profile.iod:_index",
      "anonlib.profile.iod:_lines", "gzip:decompress"], "main pass: IOD tables, loaded once"),
    ([*PARSED, "anonlib.dicomio.files:encode_instance", "anonlib.dicomio.files:_write_body"], "main pass: encode"),
    ([*MAIN, "anonlib.pipeline:InstanceProcessor.deliver", "anonlib.pipeline:InstanceProcessor.place"],
     "main pass: write (+ sha256 of the output)"),
    ([*MAIN, "anonlib.pipeline:InstanceProcessor.deliver", "anonlib.sinks.folder:FolderSink.write",
      "tempfile:mkstemp"], "main pass: write (+ sha256 of the output)"),
    ([*MAIN, "anonlib.pipeline:InstanceProcessor.deliver", "anonlib.pipeline:InstanceProcessor.record_placed",
      "anonlib.pipeline:InstanceProcessor._record"], "store"),
    ([*RUN, "anonlib.folder_run:_run", "anonlib.folder_run:_results", "anonlib.pipeline:InstanceProcessor.flush",
      "anonlib.store.lite:SqliteStore.record_instances"], "store"),
    ([*PARSED, "anonlib.pipeline:InstanceProcessor.identity", "anonlib.store.lite:SqliteStore.patient"], "store"),
    ([*RUN, "anonlib.folder_run:_run", "anonlib.sinks.folder:update_manifest", "csv:writer.writerow"], "manifest"),
    ([*RUN, "anonlib.folder_run:_run", "anonlib.folder_run:_results", "pathlib:Path.__new__"], "main pass: other"),
    ([*RUN, "anonlib.folder_run:_run", "anonlib.folder_run:_run.<locals>.take"], OTHER),
    ([*TOP[:3], "anonlib.cli:build_parser", "argparse:ArgumentParser.__init__"], OTHER),
    ([], OTHER),  # the sampler's tail sample
]


@pytest.mark.parametrize(("stack", "phase"), RECORDED, ids=[f"{n}-{p}" for n, (_, p) in enumerate(RECORDED)])
def test_each_recorded_stack_falls_in_its_phase(stack: list[str], phase: str) -> None:
    assert phase_of(stack) == phase


def test_a_pattern_matches_a_module_or_a_function_not_a_name_that_only_starts_alike() -> None:
    assert phase_of([*RUN, "anonlib.storeroom:x"]) == OTHER  # not anonlib.store
    assert phase_of([*RUN, "anonlib.profile.plan:build_plans"]) == OTHER  # not build_plan
    assert phase_of([*RUN, "anonlib.profile.plan:build_plan.<locals>.f"]) == "plan"


def _profile(weights: list[tuple[int, int]], cpu: float) -> Profile:
    stacks = [stack for stack, _ in RECORDED]
    return Profile(0.030, stacks, weights, cpu)


def test_phases_sum_the_samples_add_the_interpreter_and_what_was_not_sampled() -> None:
    plan, read, write, manifest = 2, 4, 8, 13
    profile = _profile([(0, 100_000), (plan, 10_000), (read, 5_000), (write, 3_000), (read, 5_000), (manifest, 1_000)],
                       cpu=0.200)
    table = phases_of(profile)
    assert table.seconds == pytest.approx({"interpreter": 0.030, "imports": 0.100, "plan": 0.010,
                                           "main pass: read": 0.010, "main pass: write (+ sha256 of the output)": 0.003,
                                           "manifest": 0.001, EXIT: 0.046})
    assert list(table.seconds) == [p for p in speed_profile.ORDER if p in table.seconds]
    assert table.total == pytest.approx(0.200)
    assert table.describe(2) == "imports 100 ms (50 %), exit (not sampled) 46 ms (23 %)"
    # the profile's own dump (labelling the frames) apart: not in the total, the shares, the exit
    dumped = phases_of(Profile(0.030, profile.stacks, profile.samples, 0.200, dump_cpu=0.040, other_threads_cpu=0.005))
    assert dumped.seconds[EXIT] == pytest.approx(0.001) and dumped.seconds[DUMP] == pytest.approx(0.040)
    assert dumped.seconds[speed_profile.THREADS] == pytest.approx(0.005)
    assert dumped.total == pytest.approx(0.160) and DUMP not in dumped.describe(10)
    # the first file: everything up to the end of the first run of write samples
    assert first_file_cpu(profile) == pytest.approx(0.030 + 0.100 + 0.010 + 0.005 + 0.003)
    # no write sample (one small file): the end of the last main-pass sample
    engine = 5
    assert first_file_cpu(_profile([(0, 1000), (read, 1000), (engine, 1000), (manifest, 1000)], cpu=0.0)) \
        == pytest.approx(0.033)
    assert first_file_cpu(_profile([(0, 1000), (plan, 1000)], cpu=0.0)) is None


IMPORTTIME = """\
import time: self [us] | cumulative | imported package
import time:       300 |        300 |   _io
import time:      2000 |       2000 |       numpy._core._multiarray_umath
import time:     40000 |      42000 |     numpy
import time:      5000 |       5000 |       pydicom.pixels.decoders.base
import time:      1000 |       1000 |         pylibjpeg
import time:     30000 |      36000 |     pydicom.pixels
import time:     60000 |     140000 |   pydicom
import time:     10000 |     150000 | anonlib.cli
some other line the command printed
"""


def test_imports_are_grouped_by_top_level_package_with_the_pixel_plugins_apart() -> None:
    groups, total = import_groups(IMPORTTIME)
    assert dict(groups) == pytest.approx({"pydicom": 0.060, "numpy": 0.042,
                                          "pydicom's pixel plugins (pydicom.pixels, pylibjpeg, …)": 0.036,
                                          "anonlib": 0.010, "_io": 0.0003})
    assert groups[0][0] == "pydicom"
    assert total == pytest.approx(0.150)  # the outermost imports' cumulative times (_io is nested)


TARGETS = """\
| target | measured | verdict |
|---|---|---|
| CT: anonlib w1 time ≤ 1.0× dcmanon's | 2.91× (CPU 2.60×) | **not met** |
| start-up: `anonlib deidentify` of one file ≤ 0.25 s | 0.74 s (CPU 0.44 s) | **not met** |
| CT: 2 workers ≥ 1.8× one worker | 1.40× (CPU w2/w1 1.10×: the pool's extra work) | **not met** |
| audit without dciodvfy ≥ 100 instances/s (CT) | 80.0/s | **not met** |
| peak RSS < 300 MB, flat from 500 to 5,000 instances | 82 MB | met |
| audit linear (time per instance, large / small study ≤ 1.2) | — | not measured |
"""


def test_every_target_not_met_gets_a_gap_line_with_where_its_time_goes() -> None:
    plan, read, write = 2, 4, 8
    ct = _profile([(0, 300_000), (plan, 10_000), (read, 600_000), (write, 400_000)], cpu=1.5)
    one = _profile([(0, 300_000), (plan, 10_000), (read, 2_000), (write, 3_000)], cpu=0.4)
    report = speed_profile.ProfileReport(ct=ct, ct_files=300, one=one, imports=import_groups(IMPORTTIME)[0])
    lines = gap_lines(TARGETS, report).splitlines()
    assert len(lines) == 4 and all(line.startswith("- gap: ") for line in lines)
    dcmanon, start, workers, audit = lines
    assert "2.91×" in dcmanon and "main pass: read 600 ms (40 %)" in dcmanon
    assert "imports 300 ms" in start and "pydicom 60 ms" in start
    # serial: interpreter 30 + imports 300 + plan 10 + exit 160 of 1500 -> 1500 / (500 + 1000 / 2)
    assert "500 ms of 1500 ms" in workers and "1.50×" in workers
    assert "not profiled" in audit
    assert gap_lines(TARGETS, speed_profile.ProfileReport()).count("not profiled") == 4
    ct_corpus = Corpus("ct", "ct", Path("ct"), 300, 150.0)
    timed = [Row(ct_corpus, "anonlib w1", [Run("ct", "anonlib w1", 0, 2.0, 80, 0, False, 300, "", 1.4)])]
    markdown = speed_profile.markdown(report, timed)
    assert "| main pass: read | 600 | 40 |" in markdown and "(timed runs' median 1.40 s)" in markdown
    assert "| pydicom | 60 |" in markdown


def test_the_audit_is_grouped_by_its_innermost_anonlib_module() -> None:
    audit = [*TOP[:3], "anonlib.cli:_audit", "anonlib.audit.run:run_audit"]
    assert speed_profile.module_of([*audit, "anonlib.audit.leaks:scan", "re:Pattern.finditer"]) == "anonlib.audit.leaks"
    assert speed_profile.module_of([*audit, *IMPORT, "numpy:<module>"]) == "imports"
    assert speed_profile.module_of([*TOP[:3], "argparse:ArgumentParser.parse_args"]) == OTHER
    profile = Profile(0.02, [[*audit, "anonlib.audit.leaks:scan"], [*audit, "anonlib.audit.elements:walk"]],
                      [(0, 300_000), (1, 100_000), (0, 100_000)], cpu=0.6)
    table = speed_profile.module_phases(profile)
    assert list(table.seconds) == ["anonlib.audit.leaks", "anonlib.audit.elements", WORKERS_EXIT, "interpreter"]
    assert table.seconds["anonlib.audit.leaks"] == pytest.approx(0.4)


def test_frame_labels_name_the_module_and_the_function() -> None:
    def outer() -> object:
        def inner() -> object:
            return sys._getframe().f_code

        return inner()

    assert label(outer()) == "tests.unit.test_bench_speed_profile:" \
        "test_frame_labels_name_the_module_and_the_function.<locals>.outer.<locals>.inner"
    assert label(json.dumps.__code__) == "json:dumps"
    assert label(pydicom.dcmread.__code__) == "pydicom.filereader:dcmread"  # from site-packages


def test_the_sampler_records_a_real_process(tmp_path: Path) -> None:
    """``anonlib --version`` under the sampler: samples in import machinery and anonlib.cli,
    weights summing to about the process's CPU time."""
    out = tmp_path / "profile.json"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, str(REPO / "bench" / "speed_sampler.py"), str(out), "--interval-ms", "1",
                           "--", "--version"], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    data = json.loads(out.read_text())
    profile = Profile(data["interpreter_cpu"], data["stacks"], [tuple(s) for s in data["samples"]])
    assert 0 < profile.interpreter_cpu < 5 and profile.samples
    assert data["other_threads_cpu"] >= 0 and 0 <= data["dump_cpu"] < 5
    assert any(frame.startswith("bench.speed_sampler:main") for stack in profile.stacks for frame in stack)
    assert "imports" in phases_of(profile).seconds


def test_a_failing_profile_is_noted_and_the_timed_rounds_kept(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from bench import speed
    from bench.speed_tools import Context, tools

    def broken(*_args: object, **_kwargs: object) -> speed_profile.ProfileReport:
        raise ValueError("truncated profile")

    monkeypatch.setattr(speed_profile, "run", broken)
    ctx = Context(python=Path(sys.executable), repo=REPO, work=tmp_path)
    corpora = [Corpus("ct", "ct", tmp_path, 4, 2.0)]
    report = speed._profile(ctx, corpora, tools(ctx), {}, 10, None)
    assert report is not None and report.notes == ["The profile failed: ValueError: truncated profile"]
    parts = speed._profile_markdown(report, TARGETS, [])
    assert parts[1].endswith("The profile failed: ValueError: truncated profile")
    assert "not profiled" in parts[0]


def test_the_constellation_targets_get_their_study_jobs_phases_not_the_folder_runs_profile(tmp_path: Path) -> None:
    from bench.constellation import phase_summary

    (tmp_path / "worker-1.log").write_text(
        "INFO anonlib.phases: study abc: phases: total 10.000 fetch 1.000 deidentify 2.000 gate 6.000 upload 0.500\n"
        "INFO something else\n")
    summary = phase_summary(tmp_path, count=2)
    assert summary == "gate 6.00 s (60 %), deidentify 2.00 s (20 %) of 10.00 s in 1 job(s)"
    assert phase_summary(tmp_path / "none") == ""
    targets = ("| target | measured | verdict |\n|---|---|---|\n"
               "| constellation end to end ≥ Orthanc anonymize + peer store, ≥ 100 instances/s (one CT study, "
               "2 workers) | 16.6 instances/s | **not met** |\n"
               "| 3-instance studies ≥ half of that | 17.1 instances/s | **not met** |\n")
    ct_run = Run("const-ct-300", "constellation w2", 0, 18.0, 800, 0, False, 300,
                 f"C-STORE 3.6 s; StableAge 1 s; job phases: {summary}")
    rows = [Row(Corpus("const-ct-300", "const-ct", Path("c"), 300, 150.0), "constellation w2", [ct_run])]
    ct_line, small_line = gap_lines(targets, speed_profile.ProfileReport(), rows).splitlines()
    assert "gate 6.00 s (60 %)" in ct_line and "1.64×" not in ct_line and "workers do not split" not in ct_line
    assert "no job phases recorded" in small_line
