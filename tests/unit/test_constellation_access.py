"""Who may reach the constellation's nodes (issue 11, item 1), without starting anything: the
allowed senders setting, what intake declares for them, and per-node, per-role credentials.
The real Orthanc behaviour is proven in tests/integration/test_intake_lockdown.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from anonlib.constellation import ConstellationSettings
from anonlib.constellation.manage import _node_env, _plan_nodes
from anonlib.errors import ConfigError


def _settings(tmp_path: Path, **env: str) -> ConstellationSettings:
    return ConstellationSettings.from_env({"ANONLIB_HOME": str(tmp_path), "ANONLIB_DESTINATIONS": "dest",
                                           "ANONLIB_INTAKE_HTTP_PORT": "0", "ANONLIB_RESEARCH_HTTP_PORT": "0",
                                           "ANONLIB_DEST_HTTP_PORT": "0", **env})


def test_allowed_senders_default_to_loopback_and_take_ip_addresses(tmp_path: Path) -> None:
    assert _settings(tmp_path).allowed_senders == ("127.0.0.1",)
    many = _settings(tmp_path, ANONLIB_ALLOWED_SENDERS="10.0.0.5, 127.0.0.1 10.0.0.5,::1")
    assert many.allowed_senders == ("10.0.0.5", "127.0.0.1", "::1")


@pytest.mark.parametrize("value, message", [("pacs.example.org", "not an IP address"),
                                            ("10.0.0.300", "not an IP address"), (" , ", "names no host")])
def test_allowed_senders_refuse_names_and_nothing(tmp_path: Path, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=f"ANONLIB_ALLOWED_SENDERS.*{message}"):
        _settings(tmp_path, ANONLIB_ALLOWED_SENDERS=value)


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
    assert (env["ANONLIB_ALLOWED_SENDERS"], env["ANONLIB_CHECK_MODALITY_HOST"]) == ("127.0.0.1", "true")
    assert env["ANONLIB_REMOTE_ACCESS"] == "false"
    assert _node_env(_settings(tmp_path, ANONLIB_REMOTE_ACCESS="1"), spec, nodes["intake"], nodes,
                     "postgresql://x@127.0.0.1/x")["ANONLIB_REMOTE_ACCESS"] == "true"
    destination = json.loads(env["ANONLIB_RESEARCH_MODALITIES"])["dest"]
    assert not any(v for k, v in destination.items() if k.startswith("Allow"))
    assert (env["ANONLIB_ORTHANC_USER"], env["ANONLIB_ORTHANC_READER_USER"]) == ("anonlib-intake", "reader-intake")
    many = _settings(tmp_path, ANONLIB_ALLOWED_SENDERS="127.0.0.1,10.0.0.5")
    env = _node_env(many, spec, nodes["intake"], nodes, "postgresql://x@127.0.0.1/x")
    # Orthanc 1.10.1 checks the host of the first modality of an AET only: a list is Lua's job
    assert (env["ANONLIB_ALLOWED_SENDERS"], env["ANONLIB_CHECK_MODALITY_HOST"]) == ("127.0.0.1,10.0.0.5", "false")


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
