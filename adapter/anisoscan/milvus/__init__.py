"""anisoscan on the Milvus side.

- `anisoscan.milvus.lite`: SCANN as an index type inside Milvus Lite (import it to register);
- `anisoscan.milvus.attach`: an index kept beside a Milvus server's collection, for small
  collections (it re-syncs by comparing the whole collection).
"""

import logging

from .attach import AttachedIndex, attach, key_id

__all__ = ["AttachedIndex", "attach", "key_id", "quiet_library_logs"]


def quiet_library_logs() -> None:
    """Silences library chatter that reads like failures: faiss's loader trying AVX-512 builds,
    pymilvus's mvccTs warnings, Milvus Lite's notes on RPCs it does not implement."""
    for name, level in (("faiss.loader", logging.WARNING), ("pymilvus", logging.ERROR),
                        ("grpc._server", logging.CRITICAL), ("milvus_lite", logging.WARNING)):
        logging.getLogger(name).setLevel(level)
