"""What to audit: de-identified instances from a folder or an Orthanc node, matched to their
originals (a folder or an Orthanc node) through the lookup store.

The counterpart of an output is found through the store's instance records (new SOP Instance
UID → original SOP Instance UID); an output whose SOP Instance UID is itself one of the
originals' (a tool that kept UIDs) is matched to that original directly.

Fail closed: originals that are missing, unreadable or empty (a typo, an unknown or empty node)
and a lookup store that cannot be opened are configuration errors, never an audit that quietly
ran without them; with originals given, an instance whose original is not found makes the
audit INCOMPLETE (see :func:`~anonlib.audit.run.audit`, ``expect_originals``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, cast

from anonlib.audit.markers import SOP_INSTANCE_UID, file_profile_marker, header, profile_name
from anonlib.audit.model import AuditInput, AuditResult
from anonlib.audit.pixel_check import PixelMode
from anonlib.audit.pool import MIN_PER_WORKER, ordered_map, workers_for
from anonlib.audit.run import AuditOptions, audit
from anonlib.constellation.info import NodeInfo
from anonlib.errors import ConfigError, StoreError
from anonlib.store import LookupStore, default_store_url, open_store

__all__ = ["folder_inputs", "orthanc_inputs", "tree_names", "sop_uid_of", "audit_located", "Located",
           "UidMapping", "Progress", "open_lookup", "profile_of", "dataset_name"]

#: The project's UID mapping built from the lookup store's secret (the caller passes the
#: engine's ``UidMapper``: the audit itself imports nothing of the engine).
UidMapping = Callable[[bytes], Callable[[str], str]]

#: What to audit, as a caller finds it: the output folder or constellation node, the originals'
#: folder or node (None: none), and the node's Orthanc study IDs to audit (None: every study).
Located = tuple[Path | NodeInfo, Path | NodeInfo | None, list[str] | None]

#: ``progress(done, total)``, called as instances are audited.
Progress = Callable[[int, int], None]

_TABLE_SUFFIXES = {".csv", ".tsv"}
_TEXT_SUFFIXES = {".csv", ".json", ".html", ".htm", ".txt", ".md", ".tsv", ".xml", ".log"}


def sop_uid_of(data: bytes | Path) -> str | None:
    """The SOP Instance UID of a DICOM file, or None when it is not one (see
    :func:`~anonlib.audit.markers.header`)."""
    ds = header(data, SOP_INSTANCE_UID)
    value = ds.get("SOPInstanceUID") if ds is not None else None
    return str(value).strip(" \x00") if value else None


def _files(root: Path) -> Iterator[Path]:
    return (p for p in sorted(root.rglob("*")) if p.is_file() and not p.name.startswith("."))


#: Files per worker below which the SOP Instance UIDs are read in this process (a header read
#: up to the UID costs ~0.3 ms: a worker pays for itself from a few hundred files).
_UIDS_PER_WORKER = 100


def _uids_of(paths: list[Path]) -> list[str | None]:
    """:func:`sop_uid_of` of each file, in worker processes for many files (see
    :mod:`anonlib.audit.pool`); a range whose worker failed is read again here."""
    workers = workers_for(len(paths) // _UIDS_PER_WORKER * MIN_PER_WORKER)
    if workers <= 1:
        return [sop_uid_of(path) for path in paths]
    uids: list[str | None] = []
    for chunk in ordered_map(lambda index: sop_uid_of(paths[index]), len(paths), workers):
        uids += chunk.results if chunk.results is not None else [sop_uid_of(paths[i]) for i in chunk.indexes]
    return uids


def _original_index(originals: Path) -> dict[str, Path]:
    """SOP Instance UID → file, for every DICOM file under ``originals``; a folder that does not
    exist, cannot be read or holds no DICOM file is a :class:`ConfigError`."""
    if not originals.exists():
        raise ConfigError(f"originals {originals}: no such folder")
    if not originals.is_dir():
        raise ConfigError(f"originals {originals}: not a folder")
    index: dict[str, Path] = {}
    try:
        paths = list(_files(originals))
        for path, uid in zip(paths, _uids_of(paths)):
            if uid:
                index.setdefault(uid, path)
    except OSError as exc:
        raise ConfigError(f"originals {originals}: cannot be read ({type(exc).__name__})") from None
    if not index:
        raise ConfigError(f"originals {originals}: no readable DICOM file in it")
    return index


def _mapping(store: LookupStore | None) -> dict[str, str]:
    """new SOP Instance UID → original SOP Instance UID, from the lookup store."""
    if store is None:
        return {}
    return {record.new_sop_uid: record.original_sop_uid for record in store.instances()}


def folder_inputs(target: Path, originals: Path | None, store: LookupStore | None) -> list[AuditInput]:
    """Every DICOM file under ``target``, with its original from ``originals`` when found."""
    index = _original_index(originals) if originals is not None else {}
    mapping = _mapping(store)
    inputs = []
    paths = [p for p in _files(target) if p.suffix.lower() not in _TEXT_SUFFIXES]
    for number, (path, uid) in enumerate(zip(paths, _uids_of(paths))):
        if uid is None:
            continue
        original = index.get(mapping.get(uid, "")) or index.get(uid)
        inputs.append(AuditInput(f"file #{number + 1}", path, original))
    return inputs


def tree_names(target: Path) -> dict[str, str]:
    """Every file and folder name under ``target`` and the text of its text files, keyed by a
    PHI-free description of the place. Of a CSV or TSV file the header row is left out: it
    names the writing tool's columns (a patient named "Modality^Lut" is not in ``modality``)."""
    names: dict[str, str] = {}
    for number, path in enumerate(sorted(target.rglob("*"))):
        names[f"file or folder name, entry {number + 1} of the output tree"] = str(path.relative_to(target))
        if path.is_file() and path.suffix.lower() in _TEXT_SUFFIXES and path.stat().st_size < 50_000_000:
            text = path.read_text("utf-8", errors="replace")
            if path.suffix.lower() in _TABLE_SUFFIXES:  # the header row names the writer's columns
                text = text.partition("\n")[2]
            names[f"content of {path.suffix.lstrip('.')} file, entry {number + 1} of the output tree"] = text
    return names


def orthanc_inputs(node: NodeInfo, originals: NodeInfo | None, store: LookupStore | None, *,
                   studies: list[str] | None = None) -> list[AuditInput]:
    """Instances of ``node`` (all, or of the given Orthanc study IDs), with their originals
    fetched from ``originals`` when found there."""
    from anonlib.orthanc.client import call, connect  # httpx: only for nodes

    mapping = _mapping(store)
    inputs = []
    if originals is not None:
        _check_originals_node(originals)
    with connect(node) as client:
        ids = studies if studies else cast(list[str], call(node.name, "list studies", client.get_studies))
        instances: list[str] = []
        for study in ids:
            found = cast(list[dict[str, Any]], call(node.name, "list instances", client.get_studies_id_instances, study))
            instances += [i["ID"] for i in found]
        source = connect(originals) if originals is not None else None
        try:
            for number, instance in enumerate(instances):
                data = cast(bytes, call(node.name, "fetch instance", client.get_instances_id_file, instance))
                original = _fetch_original(source, originals, mapping, sop_uid_of(data) or "") if source else None
                inputs.append(AuditInput(f"instance #{number + 1}", data, original))
        finally:
            if source is not None:
                source.close()
    return inputs


def _check_originals_node(node: NodeInfo) -> None:
    """An originals node that holds no instance is a configuration error."""
    from anonlib.orthanc.client import call, connect  # httpx: only for nodes

    with connect(node) as client:
        found = cast(dict[str, Any], call(node.name, "read statistics", client.get_statistics))
    if not int(found.get("CountInstances", 0)):
        raise ConfigError(f"originals node {node.name!r} holds no instance")


def _fetch_original(client: Any, node: NodeInfo | None, mapping: dict[str, str], uid: str) -> bytes | None:
    from anonlib.orthanc.client import call

    assert node is not None
    for candidate in (mapping.get(uid), uid):
        if not candidate:
            continue
        found = cast(list[dict[str, Any]], call(node.name, "look up instance", client.post,
                                                f"{client.url}/tools/lookup", content=candidate.encode()))
        for item in found:
            if item.get("Type") == "Instance":
                return cast(bytes, call(node.name, "fetch original", client.get_instances_id_file, item["ID"]))
    return None


def open_lookup(db_url: str | None, *, use_default: bool) -> LookupStore | None:
    """The lookup store at ``db_url``, opened read-only (the audit writes nothing). A
    ``db_url`` that cannot be opened, names an SQLite file that does not exist or holds no
    anonlib lookup store is a :class:`ConfigError` (the URL is not repeated: it may hold a
    password). Without ``db_url``: the default store when ``use_default`` and it exists, else
    None."""
    if db_url is None:
        if not use_default:
            return None
        db_url = default_store_url(create=False)
        if not Path(db_url[len("sqlite:///"):]).is_file():
            return None
    elif db_url.startswith("sqlite:///") and not Path(db_url[len("sqlite:///"):]).is_file():
        raise ConfigError(f"lookup store {db_url[len('sqlite:///'):]}: no such file")
    try:
        store = open_store(db_url, readonly=True)
    except StoreError as exc:
        raise ConfigError(f"the lookup store cannot be opened: {exc}") from None
    try:
        found = store.find_secret()
    except StoreError as exc:
        store.close()
        raise ConfigError(f"the lookup store cannot be read: {exc}") from None
    if found is None:
        store.close()
        raise ConfigError("the lookup store holds no anonlib lookup data (no project secret)")
    return store


def profile_of(inputs: Sequence[AuditInput]) -> str:
    """The de-identification profile the outputs name in their markers (anonlib's
    ``profile NAME FINGERPRINT``): one name, ``a, b (mixed)`` for several, ``unknown`` for
    none. Only a short name of plain characters is taken, nothing else from the data.
    (:func:`~anonlib.audit.run.audit` finds the same while it reads the outputs.)"""
    return profile_name(Counter(file_profile_marker(item.output) for item in inputs))


def dataset_name(target: Path | NodeInfo) -> str:
    """What the operator called the audited set: the folder's or the node's name."""
    if isinstance(target, NodeInfo):
        return f"node {target.name}"
    return f"folder {target.resolve().name or target}"


def audit_located(target: Path | NodeInfo, originals: Path | NodeInfo | None = None,
                  studies: list[str] | None = None, *, db_url: str | None, use_store: bool,
                  conformance: bool = True, audit_empty: bool = True,
                  uid_mapping: UidMapping | None = None, progress: Progress | None = None,
                  pixels: PixelMode = "sample", pixel_engine: str = "") -> AuditResult:
    """Audit a folder ``target`` against a folder of ``originals``, or a constellation node's
    ``studies`` (None: every study) against an originals node. The lookup store at ``db_url``
    (or, when ``use_store``, the default store if it exists; see :func:`open_lookup`) matches
    outputs to their originals and holds the secret of the UID mapping (``uid_mapping(secret)``,
    which lets the reference check verify targets). Originals that are missing or empty and a
    store that cannot be opened raise :class:`ConfigError`; with originals, an instance without
    its original makes the result INCOMPLETE. Without ``audit_empty``, nothing to audit gives an
    empty result at once. ``progress(done, total)`` follows the audit of the instances.
    ``pixels`` and ``pixel_engine``: the pixel check (see :class:`~anonlib.audit.run.AuditOptions`)."""
    options = AuditOptions(conformance=conformance, pixels=pixels, pixel_engine=pixel_engine)
    store = open_lookup(db_url, use_default=use_store)
    try:
        if isinstance(target, NodeInfo):
            inputs = orthanc_inputs(target, cast(NodeInfo | None, originals), store, studies=studies)
            names: dict[str, str] = {}
        else:
            inputs, names = folder_inputs(target, cast(Path | None, originals), store), tree_names(target)
        if not inputs and not audit_empty:
            return AuditResult(dataset=dataset_name(target))
        mapper = uid_mapping(store.secret()) if store is not None and uid_mapping is not None else None
        result = audit(inputs, map_uid=mapper, names=names, options=options,
                       expect_originals=originals is not None, progress=progress)
    finally:
        if store is not None:
            store.close()
    result.dataset = dataset_name(target)  # result.profile: read by audit() with the outputs
    return result
