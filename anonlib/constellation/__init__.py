"""The constellation: intake and research Orthanc nodes with PostgreSQL, and the workers."""

from anonlib.constellation.info import ConstellationInfo, NodeInfo
from anonlib.constellation.settings import ConstellationSettings, NodeSpec

__all__ = ["ConstellationInfo", "ConstellationSettings", "NodeInfo", "NodeSpec"]
