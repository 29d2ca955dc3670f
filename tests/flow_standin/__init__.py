"""A stand-in Flow 5 server for tests (see server.py). Never shipped, never a backend."""

from tests.flow_standin.server import FlowStandIn, Recorded, dct_hash, similarity

__all__ = ["FlowStandIn", "Recorded", "dct_hash", "similarity"]
