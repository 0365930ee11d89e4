"""Run the anonlib notebooks headless (papermill) and turn an executed one into an offline report.

:func:`run_notebook` never hangs and never skips a cell silently: every cell has a timeout, a
timeout or an error raises :class:`NotebookError`, ``interactive=False`` is injected (headless
runs build no widget), and while it runs the kernel's channels are polled in short slices — the
cure for the lost-wake-up stall of upstream nbclient issue #312 (see
``shared/reference/jupyter-notes.md``). Kernels talk over the local ``ipc`` transport (Unix
sockets in Jupyter's runtime folder, see :func:`ipc_kernel_manager`), not TCP, and the
``source``/``originals`` parameters are checked before a kernel starts: a bad one is one line
naming it (:func:`anonlib.parameters.check_sources`). :func:`notebook_report` writes a standalone HTML page
without code, widget state, widget JavaScript or anything loaded from the network — and only of
a notebook that declares, in its metadata, that it shows no identified data
(``anonlib.shows_identified_data: false``, see :func:`identified_data`); browse, preview,
anonymize, review (its images may show burned-in text) and reidentify declare ``true`` and are refused unless the caller allows it, which stamps every page
"CONTAINS IDENTIFIED DATA".

Executed notebooks and reports carry whatever the cells displayed, so errors raised here name the
notebook and the cell index only, never a cell's source or output.
"""

from __future__ import annotations

import os
import re
import tempfile
import threading
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from queue import Empty
from time import monotonic
from typing import Any

from anonlib.errors import AnonlibError, ConfigError

__all__ = ["IDENTIFIED_STAMP", "NOTEBOOKS", "NotebookError", "absolute_paths", "identified_data",
           "ipc_kernel_manager", "notebook_report", "notebooks_dir", "resolve_notebook", "run_notebook",
           "sliced_channel_polling"]

#: Short names of the bundled notebooks (``anonlib notebook run browse ...``).
NOTEBOOKS = {
    "browse": "01_browse.ipynb",
    "preview": "02_preview.ipynb",
    "anonymize": "03_anonymize.ipynb",
    "audit": "04_audit.ipynb",
    "review": "05_review.ipynb",
    "reidentify": "06_reidentify.ipynb",
}

#: The bundled notebooks that show original (identified) values.
IDENTIFIED_NOTEBOOKS = frozenset({"browse", "preview", "anonymize", "review", "reidentify"})
#: What a report of a notebook showing identified data says at its top, its bottom and in its title.
IDENTIFIED_STAMP = "CONTAINS IDENTIFIED DATA"

#: Longest single wait on a kernel channel while a notebook runs (seconds).
POLL_SLICE = 0.5

#: Output mime types of widgets: never written to a report (state lives in the notebook).
WIDGET_MIME_TYPES = frozenset({"application/vnd.jupyter.widget-view+json",
                               "application/vnd.jupyter.widget-state+json"})

_REPORT_TEMPLATE = """{%- extends 'index.html.j2' -%}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
"""

# What would make a browser fetch something while showing the report.
_REMOTE = re.compile(r"<script\b[^>]*\bsrc\s*=|<link\b[^>]*\bhref\s*=\s*[\"']?(?:https?:)?//"
                     r"|<(?:img|iframe|embed|source)\b[^>]*\bsrc\s*=\s*[\"']?(?:https?:)?//"
                     r"|@import\s+url\(\s*[\"']?(?:https?:)?//|\bimport\s*\(\s*[\"'](?:https?:)?//",
                     re.IGNORECASE)


class NotebookError(AnonlibError):
    """A notebook run failed or timed out, or an executed notebook cannot be reported.

    ``cell`` is the 0-based index of the failing cell in the notebook as written (papermill's
    injected-parameters cell not counted), or ``None``. The message never holds a cell's source
    or output: they may show identifying values.
    """

    def __init__(self, notebook: Path, cell: int | None, reason: str) -> None:
        where = f"{notebook}" if cell is None else f"{notebook}: cell {cell}"
        super().__init__(f"{where} {reason}")
        self.notebook = notebook
        self.cell = cell
        self.reason = reason


def notebooks_dir() -> Path:
    """The ``notebooks/`` folder next to the installed package (like ``env/``)."""
    import anonlib

    return Path(anonlib.__file__).resolve().parent.parent / "notebooks"


def resolve_notebook(name_or_path: str) -> Path:
    """``browse|preview|anonymize|audit|review|reidentify`` → the bundled notebook; anything else is a path."""
    path = notebooks_dir() / NOTEBOOKS[name_or_path] if name_or_path in NOTEBOOKS else Path(name_or_path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such notebook")
    return path


# -- short-slice polling (nbclient issue #312) ---------------------------------------------------

_patch_lock = threading.Lock()
_patch_users = 0
_original_get_msg: Callable[..., Awaitable[dict[str, Any]]] | None = None


def _sliced(original: Callable[..., Awaitable[dict[str, Any]]]) -> Callable[..., Awaitable[dict[str, Any]]]:
    async def get_msg(self: Any, timeout: float | None = None) -> dict[str, Any]:
        deadline = None if timeout is None else monotonic() + timeout
        while True:
            wait = POLL_SLICE if deadline is None else min(POLL_SLICE, max(0.0, deadline - monotonic()))
            try:
                return await original(self, timeout=wait)
            except Empty:
                if deadline is not None and monotonic() >= deadline:
                    raise

    get_msg.__wrapped__ = original  # type: ignore[attr-defined]
    return get_msg


@contextmanager
def sliced_channel_polling() -> Iterator[None]:
    """While inside, ``AsyncZMQSocketChannel.get_msg`` waits at most :data:`POLL_SLICE` per poll
    and loops until its own deadline (a message that arrived without waking the poll is seen at
    the next slice). Re-entrant and thread-safe; the original method is restored on exit."""
    global _patch_users, _original_get_msg
    from jupyter_client.channels import AsyncZMQSocketChannel

    with _patch_lock:
        if _patch_users == 0:
            _original_get_msg = AsyncZMQSocketChannel.get_msg
            setattr(AsyncZMQSocketChannel, "get_msg", _sliced(_original_get_msg))  # noqa: B010
        _patch_users += 1
    try:
        yield
    finally:
        with _patch_lock:
            _patch_users -= 1
            if _patch_users == 0 and _original_get_msg is not None:
                setattr(AsyncZMQSocketChannel, "get_msg", _original_get_msg)  # noqa: B010
                _original_get_msg = None


# -- parameters ---------------------------------------------------------------------------------------

#: Parameters of the notebooks' contract that name local paths when they are not node names/URLs.
PATH_PARAMETERS = ("source", "output", "originals", "profile")


def absolute_paths(parameters: Mapping[str, Any], base: Path) -> dict[str, Any]:
    """``parameters`` with relative local paths made absolute against ``base`` (the caller's
    working directory): the kernel runs in the notebook's folder. A ``source``/``originals``
    that is not an existing path and has no ``/`` is a node name and stays as it is; URLs stay;
    a relative ``sqlite:///`` store URL is made absolute too."""
    fixed = dict(parameters)
    for key in PATH_PARAMETERS:
        value = fixed.get(key)
        if not isinstance(value, str) or not value or "://" in value or Path(value).is_absolute():
            continue
        if key in ("output", "profile") or "/" in value or (base / value).exists():
            fixed[key] = str((base / value).resolve())
    db_url = fixed.get("db_url")
    if isinstance(db_url, str) and db_url.startswith("sqlite:///") and not db_url.startswith("sqlite:////"):
        database = db_url[len("sqlite:///"):]
        if database and database != ":memory:":
            fixed["db_url"] = "sqlite:///" + str((base / database).resolve())
    return fixed


# -- kernels over ipc --------------------------------------------------------------------------------

#: Longest Unix socket path Linux accepts is 107 bytes; a kernel's is its connection file's path
#: with ``-ipc-<port>`` instead of ``.json``.
_SOCKET_PATH_MAX = 100


def _runtime_dir() -> Path:
    """Jupyter's runtime folder, or a private one in the temporary folder when its path is too
    long for the kernel's Unix sockets."""
    from jupyter_core.paths import jupyter_runtime_dir

    from anonlib.settings import private_dir

    folder = Path(jupyter_runtime_dir())
    if len(str(folder)) + len("/kernel-00000000-0000-0000-0000-000000000000-ipc-65535") > _SOCKET_PATH_MAX:
        folder = Path(tempfile.gettempdir()) / f"anonlib-kernels-{os.getuid()}"
    return private_dir(folder)


def ipc_kernel_manager() -> type[Any]:
    """A ``jupyter_client`` kernel manager class whose kernels use the ``ipc`` transport, their
    sockets beside a connection file in the runtime folder (never in the notebook's folder,
    where ``jupyter_client`` would put them for a manager without a connection file)."""
    from jupyter_client.manager import AsyncKernelManager

    class IpcKernelManager(AsyncKernelManager):
        def __init__(self, **kwargs: Any) -> None:
            kwargs.setdefault("transport", "ipc")
            if not kwargs.get("connection_file"):
                kwargs["connection_file"] = str(_runtime_dir() / f"kernel-{uuid.uuid4()}.json")
            super().__init__(**kwargs)

    return IpcKernelManager


# -- the run -----------------------------------------------------------------------------------------

class _Tracker:
    """Which cell runs now, and where papermill put its injected-parameters cell."""

    def __init__(self) -> None:
        self.current: int | None = None
        self.injected: list[int] = []

    def on_cell_start(self, cell: Any, cell_index: int) -> None:
        self.current = cell_index
        if "injected-parameters" in cell.get("metadata", {}).get("tags", []):
            self.injected.append(cell_index)

    def source_index(self, executed_index: int | None) -> int | None:
        if executed_index is None:
            return None
        return executed_index - sum(1 for i in self.injected if i < executed_index)


def run_notebook(notebook: Path, output: Path, parameters: Mapping[str, Any], *,
                 timeout: float = 600, kernel: str | None = None) -> Path:
    """Execute ``notebook`` with papermill into ``output`` and return ``output``.

    ``parameters`` are injected after the cell tagged ``parameters``; ``interactive=False`` is
    added unless given. ``timeout`` bounds every cell (seconds). Raises :class:`NotebookError`
    (naming the cell) when a cell raises, a cell times out, the kernel dies or a code cell did
    not run. The kernel inherits this process's environment (``ANONLIB_HOME``...) and runs in
    the notebook's folder, as in JupyterLab: pass absolute paths (see :func:`absolute_paths`);
    it talks over ``ipc``, not TCP. A ``source`` or ``originals`` that cannot be opened raises
    :class:`ConfigError` naming the parameter before any kernel starts. ``output`` is written
    even on failure: it may show identifying values.
    """
    import papermill
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    if timeout <= 0:
        raise ConfigError("the notebook timeout must be positive")
    if not Path(notebook).is_file():
        raise ConfigError(f"{notebook}: no such notebook")
    notebook, output = Path(notebook).resolve(), Path(output).resolve()
    from anonlib.parameters import check_sources

    check_sources(parameters, base=notebook.parent)
    output.parent.mkdir(parents=True, exist_ok=True)
    tracker = _Tracker()
    with sliced_channel_polling():
        try:
            nb = papermill.execute_notebook(
                str(notebook), str(output), parameters={"interactive": False, **parameters},
                kernel_name=kernel, progress_bar=False, log_output=False, cwd=str(notebook.parent),
                execution_timeout=timeout, iopub_timeout=min(timeout, 30),
                on_cell_start=tracker.on_cell_start, kernel_manager_class=ipc_kernel_manager())
        except PapermillExecutionError as exc:
            raise NotebookError(notebook, tracker.source_index(exc.cell_index),
                                f"raised {exc.ename}{_own_message(exc.ename, exc.evalue)}") from None
        except CellTimeoutError:
            raise NotebookError(notebook, tracker.source_index(tracker.current),
                                f"did not finish within {timeout:g} s") from None
        except DeadKernelError:
            raise NotebookError(notebook, tracker.source_index(tracker.current),
                                "killed the kernel") from None
        except (RuntimeError, TimeoutError) as exc:  # kernel start-up, lost kernel
            raise NotebookError(notebook, tracker.source_index(tracker.current),
                                f"could not run ({type(exc).__name__})") from None
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and cell.source.strip() and cell.get("execution_count") is None:
            raise NotebookError(notebook, tracker.source_index(index), "did not run")
    return output


def _own_message(name: str, message: str) -> str:
    """``": message"`` for anonlib's own errors, whose messages are PHI-free by contract (an
    operator needs "originals x: no such folder"); "" for any other error, which may quote data."""
    def names(cls: type[BaseException]) -> set[str]:
        return {cls.__name__}.union(*(names(sub) for sub in cls.__subclasses__()))

    first = str(message).strip().splitlines()[:1]
    return f": {first[0][:300]}" if name in names(AnonlibError) and first else ""


# -- reports -------------------------------------------------------------------------------------

def identified_data(nb: Any) -> str:
    """Why the executed notebook ``nb`` may show identified data ("" when it declares it does
    not): its metadata ``anonlib.shows_identified_data`` is true or missing, or papermill ran
    it from a bundled notebook that shows original values (browse, preview, anonymize, review, reidentify)."""
    declared = nb.metadata.get("anonlib", {}).get("shows_identified_data")
    source = Path(str(nb.metadata.get("papermill", {}).get("input_path") or "")).name
    bundled = {file: name for name, file in NOTEBOOKS.items()}.get(source, "")
    if declared is True or bundled in IDENTIFIED_NOTEBOOKS:
        return f"it shows identified data (the {bundled or 'notebook'}'s original values)"
    if declared is not False:
        return ("it does not declare that it shows no identified data (notebook metadata "
                "anonlib.shows_identified_data: false)")
    return ""


def _stamp(body: str) -> str:
    """``body`` with :data:`IDENTIFIED_STAMP` in its title and at the top and bottom of the page."""
    banner = (f'<div class="anonlib-identified" style="background:#b91c1c;color:#fff;font-weight:700;'
              f'padding:0.6em 1em;text-align:center">{IDENTIFIED_STAMP}</div>')
    body = re.sub(r"<title>(.*?)</title>", lambda m: f"<title>{IDENTIFIED_STAMP} — {m.group(1)}</title>",
                  body, count=1, flags=re.DOTALL)
    if "<title>" not in body:
        body = body.replace("<head>", f"<head><title>{IDENTIFIED_STAMP}</title>", 1)
    body = re.sub(r"(<body[^>]*>)", lambda m: m.group(1) + banner, body, count=1)
    head, _, tail = body.rpartition("</body>")
    return f"{head}{banner}</body>{tail}"


def _failed_cell(nb: Any) -> int | None:
    for index, cell in enumerate(nb.cells):
        if any(o.get("output_type") == "error" for o in cell.get("outputs", [])):
            return index
        if cell.get("metadata", {}).get("papermill", {}).get("exception"):
            return index
    return None


def _reportable_output(output: Any) -> bool:
    kind = output.get("output_type")
    if kind == "stream":
        return bool(output.get("name") == "stdout")  # stderr: warnings and logs
    if kind in ("display_data", "execute_result"):
        data = output.get("data", {})
        # A widget's text/plain fallback is its repr, which may list values: drop it whole.
        if WIDGET_MIME_TYPES & set(data):
            return False
        data.pop("application/javascript", None)
        return bool(data)
    return False


def notebook_report(executed: Path, html: Path, *, allow_identified: bool = False) -> Path:
    """Write ``executed`` (a notebook run to the end) as a standalone HTML page without code.

    Kept: Markdown, tables, figures and printed text. Dropped: code, prompts, stderr, widget
    state and widget outputs, JavaScript outputs. The page loads nothing from the network (no
    require.js, MathJax or widget manager); a notebook output that would is refused. A notebook
    whose run failed is refused too (its traceback may quote values).

    A notebook that may show identified data (see :func:`identified_data`) is refused with a
    :class:`~anonlib.errors.ConfigError`, unless ``allow_identified``: then the page's title,
    top and bottom say :data:`IDENTIFIED_STAMP`.
    """
    import nbformat
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter

    if not executed.is_file():
        raise ConfigError(f"{executed}: no such notebook")
    nb = nbformat.read(executed, as_version=4)  # type: ignore[no-untyped-call]
    identified = identified_data(nb)
    if identified and not allow_identified:
        raise ConfigError(f"{executed}: no report: {identified}; --allow-identified writes one stamped "
                          f"{IDENTIFIED_STAMP!r}")
    failed = _failed_cell(nb)
    if failed is not None:
        raise NotebookError(executed, failed, "failed when the notebook ran: no report from a failed run")
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.outputs if _reportable_output(o)]
    exporter = HTMLExporter(  # type: ignore[no-untyped-call]
        template_name="lab", template_file="anonlib_report.html.j2",
        extra_loaders=[DictLoader({"anonlib_report.html.j2": _REPORT_TEMPLATE})],
        exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True)
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": html.stem}})
    remote = _REMOTE.search(body)
    if remote is not None:
        raise NotebookError(executed, None, "has an output that loads content from the network: "
                            "no offline report")
    if identified:
        body = _stamp(body)
    html.parent.mkdir(parents=True, exist_ok=True)
    html.write_text(body, encoding="utf-8")
    return html
