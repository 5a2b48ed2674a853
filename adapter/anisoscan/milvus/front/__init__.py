"""A Milvus-protocol front: Milvus clients reach a Milvus server through it, and fields indexed
as SCANN are served by anisoscan.

- proxy.py: byte forwarding of every RPC the front does not own (streaming included);
- owned.py: the RPCs it answers for SCANN fields (index management, search, writes);
- translate.py: Milvus protobuf messages <-> numpy arrays and values;
- sync.py: the build (one export) and the application of writes, in the upstream's order;
- store.py: the front's durable state (served fields, primary key <-> id maps);
- reconcile.py: catching writes that bypass the front, per key range;
- server.py: start, stop, serve.
"""

from .server import FrontServer, Settings, serve

__all__ = ["FrontServer", "Settings", "serve"]
