"""The index node: a gRPC server (server.py) translating to the node (index_node.py), which owns
every index, its durable storage (store.py) and its limits; the client (client.py) and the wire
format (wire.py) they share; index types (index_types.py); salvage of a damaged index (salvage.py)."""

from .index_node import IndexNode, IndexService

__all__ = ["IndexNode", "IndexService"]
