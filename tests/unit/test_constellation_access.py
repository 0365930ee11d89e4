"""Who may reach the constellation's nodes (issue 11, item 1), without starting anything: the
allowed senders setting, what intake declares for them, and per-node, per-role credentials.
The real Orthanc behaviour is proven in tests/integration/test_intake_lockdown.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from anonlib.constellation import ConstellationSettings
from anonlib.constellation.manage import _node_env, _plan_nodes
from anonlib.constellation.senders import Sender
from anonlib.errors import ConfigError


def _settings(tmp_path: Path, **env: str) -> ConstellationSettings:
    return ConstellationSettings.from_env({"ANONLIB_HOME": str(tmp_path), "ANONLIB_DESTINATIONS": "dest",
                                           "ANONLIB_INTAKE_HTTP_PORT": "0", "ANONLIB_RESEARCH_HTTP_PORT": "0",
                                           "ANONLIB_DEST_HTTP_PORT": "0", **env})


def test_one_host_is_the_sender_anonlib_scu_as_before(tmp_path: Path) -> None:
    assert _settings(tmp_path).allowed_senders == (Sender("ANONLIB_SCU", "127.0.0.1"),)
    assert _settings(tmp_path, ANONLIB_ALLOWED_SENDERS=" 10.0.0.5 ").allowed_senders == (Sender("ANONLIB_SCU",
                                                                                                "10.0.0.5"),)
    one = _settings(tmp_path, ANONLIB_ALLOWED_SENDERS="CT_1@10.0.0.5")
    assert one.allowed_senders == (Sender("CT_1", "10.0.0.5"),) and one.scu_aet == "CT_1"


def test_a_list_is_aet_at_host_pairs(tmp_path: Path) -> None:
    many = _settings(tmp_path, ANONLIB_ALLOWED_SENDERS="CT_1@10.0.0.5, MR-2@10.0.0.6 LOCAL@127.0.0.1,CT_1@10.0.0.5")
    assert many.allowed_senders == (Sender("CT_1", "10.0.0.5"), Sender("MR-2", "10.0.0.6"),
                                    Sender("LOCAL", "127.0.0.1"))
    assert many.scu_aet == "LOCAL"  # the one a storescu on this machine uses


@pytest.mark.parametrize("value, message", [
    ("10.0.0.5,127.0.0.1", r"several senders need an AE title each, as AET@HOST \(e.g. CT_1@10.0.0.5,MR_1@10.0.0.6\)"),
    ("CT_1@10.0.0.5,10.0.0.6", r"several senders need an AE title each.*'10.0.0.6'"),
    ("CT_1@10.0.0.5,ct_1@10.0.0.6", "AE title 'ct_1' is given twice .*give each host its own"),
    ("pacs.example.org", "'pacs.example.org' is not an IP address"),
    ("CT_1@pacs.example.org", "'pacs.example.org' is not an IP address"),
    ("10.0.0.300", "not an IP address"),
    ("::1", "IPv6 address; intake's DICOM port takes IPv4 only"),
    ("@10.0.0.5", "'' is not an AE title"),
    ("SEVENTEEN_LETTERS@10.0.0.5", "'SEVENTEEN_LETTERS' is not an AE title"),
    ("A\\B@10.0.0.5", "is not an AE title"),
    (" , ", "names no sender"),
])
def test_allowed_senders_refused_with_one_line(tmp_path: Path, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=f"^ANONLIB_ALLOWED_SENDERS.*{message}") as caught:
        _settings(tmp_path, ANONLIB_ALLOWED_SENDERS=value)
    assert "\n" not in str(caught.value)


def test_every_node_and_role_has_its_own_credentials(tmp_path: Path) -> None:
    nodes = _plan_nodes(_settings(tmp_path), None)
    users = [u for n in nodes.values() for u in (n.username, n.reader_username)]
    passwords = [p for n in nodes.values() for p in (n.password, n.reader_password)]
    assert len(set(users)) == len(users) == 6 and len(set(passwords)) == 6
    assert all(len(p) >= 32 for p in passwords)
    again = _plan_nodes(_settings(tmp_path), None)
    assert {n.password for n in again.values()}.isdisjoint(passwords)  # generated, not fixed


def test_intake_declares_its_senders_for_c_store_only(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    nodes = _plan_nodes(settings, None)
    spec = next(s for s in settings.nodes if s.name == "intake")
    env = _node_env(settings, spec, nodes["intake"], nodes, "postgresql://x@127.0.0.1/x")
    sender = json.loads(env["ANONLIB_INTAKE_MODALITIES"])["sender"]
    assert sender["AET"] == "ANONLIB_SCU" and sender["Host"] == "127.0.0.1" and sender["AllowStore"] is True
    assert not any(sender[k] for k in ("AllowFind", "AllowFindWorklist", "AllowGet", "AllowMove",
                                       "AllowStorageCommitment"))
    assert list(json.loads(env["ANONLIB_INTAKE_MODALITIES"])) == ["sender"]
    assert env["ANONLIB_REMOTE_ACCESS"] == "false"
    assert _node_env(_settings(tmp_path, ANONLIB_REMOTE_ACCESS="1"), spec, nodes["intake"], nodes,
                     "postgresql://x@127.0.0.1/x")["ANONLIB_REMOTE_ACCESS"] == "true"
    destination = json.loads(env["ANONLIB_RESEARCH_MODALITIES"])["dest"]
    assert not any(v for k, v in destination.items() if k.startswith("Allow"))
    assert (env["ANONLIB_ORTHANC_USER"], env["ANONLIB_ORTHANC_READER_USER"]) == ("anonlib-intake", "reader-intake")
    many = _settings(tmp_path, ANONLIB_ALLOWED_SENDERS="LOCAL@127.0.0.1,CT_1@10.0.0.5")
    env = _node_env(many, spec, nodes["intake"], nodes, "postgresql://x@127.0.0.1/x")
    # each sender its own modality: Orthanc 1.10.1 checks the host of an AET's first modality only
    declared = json.loads(env["ANONLIB_INTAKE_MODALITIES"])
    assert {n: (m["AET"], m["Host"], m["AllowStore"], m["AllowEcho"]) for n, m in declared.items()} == {
        "sender-1": ("LOCAL", "127.0.0.1", True, True), "sender-2": ("CT_1", "10.0.0.5", True, True)}
    assert not any(m[k] for m in declared.values() for k in ("AllowFind", "AllowFindWorklist", "AllowGet",
                                                              "AllowMove", "AllowStorageCommitment"))


def test_intake_checks_senders_in_orthanc_and_runs_no_lua_on_instances() -> None:
    """The host check is Orthanc's (DicomCheckModalityHost) at association; no Lua script on
    intake defines a callback that is handed the instance (ReceivedInstanceFilter and the
    On*Instance callbacks make Orthanc convert the whole dataset into a Lua table)."""
    env_dir = Path(__file__).resolve().parents[2] / "env" / "orthanc"
    text = (env_dir / "intake" / "intake.json").read_text()
    config = json.loads(text.replace("${ANONLIB_INTAKE_MODALITIES}", "{}").replace("${ANONLIB_INTAKE_SCP_TIMEOUT}", "10"))
    assert config["DicomCheckModalityHost"] is True and config["DicomAlwaysAllowStore"] is False
    assert config["LuaScripts"] == ["${ANONLIB_LUA_DIR}/roles.lua"]
    roles = (env_dir / "lua" / "roles.lua").read_text()
    assert "function IncomingHttpRequestFilter(" in roles
    for callback in ("ReceivedInstanceFilter", "OnStoredInstance", "IncomingCStoreInstanceFilter",
                     "OutgoingHttpRequestFilter", "OnStableStudy", "OnStableSeries"):
        assert callback not in roles


def test_intake_scp_timeout_is_intakes_own_short_one(tmp_path: Path) -> None:
    """A C-STORE intake cannot read is never answered (Orthanc 1.10.1) and holds one of intake's
    DICOM threads for DicomScpTimeout: intake's is ANONLIB_INTAKE_SCP_TIMEOUT (30 s by default, Orthanc's own),
    in intake's file only; research and destinations keep 60 s; common sets none (a key in two
    files stops Orthanc)."""
    env_dir = Path(__file__).resolve().parents[2] / "env" / "orthanc"
    assert '"DicomScpTimeout": ${ANONLIB_INTAKE_SCP_TIMEOUT},' in (env_dir / "intake" / "intake.json").read_text()
    for role in ("research", "destination"):
        assert '"DicomScpTimeout": 60,' in (env_dir / role / f"{role}.json").read_text()
    assert "DicomScpTimeout" not in (env_dir / "common" / "orthanc.json").read_text()
    # a deflate bomb (~1 MB on the wire) kept one of intake's DICOM threads at full CPU for
    # minutes while DCMTK inflated it, answered never, whatever the timeout: refused at association
    assert '"DeflatedTransferSyntaxAccepted": false,' in (env_dir / "intake" / "intake.json").read_text()
    settings = _settings(tmp_path)
    assert settings.intake_scp_timeout == 30
    nodes = _plan_nodes(settings, None)
    spec = next(s for s in settings.nodes if s.name == "intake")
    assert _node_env(settings, spec, nodes["intake"], nodes, "postgresql://x@127.0.0.1/x")[
        "ANONLIB_INTAKE_SCP_TIMEOUT"] == "30"
    assert _settings(tmp_path, ANONLIB_INTAKE_SCP_TIMEOUT="45").intake_scp_timeout == 45
    for bad in ("0", "3601", "ten"):  # 0 would be Orthanc's "no timeout"
        with pytest.raises(ConfigError, match="ANONLIB_INTAKE_SCP_TIMEOUT"):
            _settings(tmp_path, ANONLIB_INTAKE_SCP_TIMEOUT=bad)


def test_credentials_are_kept_per_node_and_a_shared_user_is_replaced(tmp_path: Path) -> None:
    from dataclasses import replace

    from anonlib.constellation import ConstellationInfo

    settings = _settings(tmp_path)
    first = _plan_nodes(settings, None)
    kept = _plan_nodes(settings, ConstellationInfo(home=str(tmp_path), nodes=first, export_dir="", db_url=""))
    assert all((kept[n].password, kept[n].reader_password) == (first[n].password, first[n].reader_password)
               for n in first)
    shared = {n: replace(node, username="anonlib", password="shared", reader_username="", reader_password="")
              for n, node in first.items()}  # as an `up` before issue 11 described them
    renewed = _plan_nodes(settings, ConstellationInfo(home=str(tmp_path), nodes=shared, export_dir="", db_url=""))
    passwords = [p for node in renewed.values() for p in (node.password, node.reader_password)]
    assert "shared" not in passwords and len(set(passwords)) == 6
