"""anisoscan registered as Milvus Lite's SCANN index type.

One line before the client is made:

    import anisoscan.milvus.lite          # registers SCANN (register() does it again, idempotent)
    client = MilvusClient("./data.db")
    client.create_index(..., index_type="SCANN", metric_type="IP", params={"nlist": 128})

Milvus Lite 3.x dispatches every segment index build and load through one module,
`milvus_lite.index.factory`; registration wraps its two functions so "SCANN" reaches
ScannSegmentIndex and every other type goes where it went before, and adds "SCANN" to the
known vector index types. Around that it wraps: Collection.create_index (SCANN's params
checked before Milvus Lite stores them, so a bad one is Milvus's IllegalArgument, not a log
line at flush), Collection.search (queries and search params checked once, before any
segment), Segment.build_or_load_index (a damaged sidecar is rebuilt from the segment), and
the gRPC decoder of index params (pymilvus 3 sends them as top-level pairs).
"""

from __future__ import annotations

import functools
import importlib
import inspect
import json
import logging
import os
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from .._core import IndexFileError
from .segment_index import INDEX_TYPE, ScannSegmentIndex, check_queries, index_params, search_params

log = logging.getLogger(__name__)

# The Milvus Lite releases whose internals this was written and tested against; pyproject's
# `milvus` extra pins the same range.
SUPPORTED_SERIES = ((3, 2),)
SUPPORTED_TEXT = "milvus-lite 3.2.x"


class IncompatibleMilvusLite(RuntimeError):
    """The installed Milvus Lite is not one whose internals the plug-in knows."""


class DamagedSidecar(Exception):
    """A segment's SCANN file that cannot be loaded (checksum, truncation, another metric or dim)."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = path, reason


@dataclass
class _Patch:
    owner: Any
    name: str
    original: Any


_patches: list[_Patch] = []


def _milvus_lite_modules() -> tuple[Any, Any, Any, Any, Any, str]:
    try:
        version = metadata.version("milvus-lite")
        modules = [importlib.import_module(f"milvus_lite.{m}")
                   for m in ("index.factory", "index.protocol", "engine.collection", "adapter.grpc.servicer",
                             "storage.segment")]
    except (metadata.PackageNotFoundError, ImportError) as e:
        raise IncompatibleMilvusLite(f"anisoscan's SCANN plug-in needs {SUPPORTED_TEXT}: "
                                     f"pip install 'anisoscan[milvus]' ({e})") from e
    if tuple(int(p) for p in version.split(".")[:2] if p.isdigit()) not in SUPPORTED_SERIES:
        raise IncompatibleMilvusLite(f"milvus-lite {version} is installed; anisoscan's SCANN plug-in supports "
                                     f"{SUPPORTED_TEXT}: pip install 'milvus-lite>=3.2,<3.3'")
    factory, protocol, collection, servicer, segment = modules
    _check_internals(version, factory, protocol, collection, servicer, segment)
    return factory, protocol, collection, servicer, segment, version


def _check_internals(version: str, factory: Any, protocol: Any, collection: Any, servicer: Any,
                     segment: Any) -> None:
    """The plug-in's assumptions about Milvus Lite, checked before anything is patched."""
    expected = {
        "factory.build_index_from_spec(spec, vectors)":
            _parameters(getattr(factory, "build_index_from_spec", None)) == ["spec", "vectors"],
        "factory.load_index_from_spec(spec, path, dim)":
            _parameters(getattr(factory, "load_index_from_spec", None)) == ["spec", "path", "dim"],
        "factory.KNOWN_VECTOR_INDEX_TYPES":
            isinstance(getattr(factory, "KNOWN_VECTOR_INDEX_TYPES", None), frozenset),
        "collection.KNOWN_VECTOR_INDEX_TYPES":
            getattr(collection, "KNOWN_VECTOR_INDEX_TYPES", None) is getattr(factory, "KNOWN_VECTOR_INDEX_TYPES", 0),
        "Collection.create_index(self, field_name, index_params)":
            _parameters(getattr(getattr(collection, "Collection", None), "create_index", None))
            == ["self", "field_name", "index_params"],
        "Collection.search(self, query_vectors, top_k, ..., anns_field, ..., search_params)":
            {"self", "query_vectors", "top_k", "anns_field", "search_params"}
            <= set(_parameters(getattr(getattr(collection, "Collection", None), "search", None)) or ()),
        "servicer.kv_pairs_to_index_params_dict(extra_params)":
            _parameters(getattr(servicer, "kv_pairs_to_index_params_dict", None)) == ["extra_params"],
        "Segment.build_or_load_index(self, spec, index_dir)":
            _parameters(getattr(getattr(segment, "Segment", None), "build_or_load_index", None))
            == ["self", "spec", "index_dir"],
        "VectorIndex's abstract methods":
            getattr(getattr(protocol, "VectorIndex", None), "__abstractmethods__", None)
            == frozenset({"build", "search", "save", "load", "index_type"}),
    }
    moved = [what for what, ok in expected.items() if not ok]
    if moved:
        raise IncompatibleMilvusLite(f"milvus-lite {version}: internals the SCANN plug-in relies on have changed "
                                     f"({'; '.join(moved)}); supported: {SUPPORTED_TEXT}")


def _parameters(fn: Callable[..., Any] | None) -> list[str] | None:
    return None if fn is None else list(inspect.signature(fn).parameters)


def _patch(owner: Any, name: str, value: Any) -> None:
    _patches.append(_Patch(owner, name, getattr(owner, name)))
    setattr(owner, name, value)


def registered() -> bool:
    return bool(_patches)


def register() -> None:
    """Makes "SCANN" an anisoscan index in this process's Milvus Lite. Idempotent.

    Raises IncompatibleMilvusLite, naming the supported versions, where Milvus Lite is
    missing or its internals moved.
    """
    if _patches:
        return
    factory, _, collection, servicer, segment, version = _milvus_lite_modules()
    build_original, load_original = factory.build_index_from_spec, factory.load_index_from_spec

    def build_index_from_spec(spec: Any, vectors: Any) -> Any:
        if spec.index_type != INDEX_TYPE:
            return build_original(spec, vectors)
        return ScannSegmentIndex.build(vectors, spec.metric_type, spec.build_params)

    def load_index_from_spec(spec: Any, path: str, dim: int) -> Any:
        if spec.index_type != INDEX_TYPE:
            return load_original(spec, path, dim)
        _, mmap = index_params(dim, spec.metric_type, spec.build_params)
        try:
            return ScannSegmentIndex.load(path, spec.metric_type, dim, mmap=mmap)
        except (IndexFileError, ValueError) as e:
            raise DamagedSidecar(path, str(e)) from e

    build_or_load_original = segment.Segment.build_or_load_index

    @functools.wraps(build_or_load_original)
    def build_or_load_index(self: Any, spec: Any, index_dir: str) -> None:
        try:
            build_or_load_original(self, spec, index_dir)
        except DamagedSidecar as e:  # derived data: set it aside and rebuild from the segment
            aside = f"{e.path}.damaged"
            os.replace(e.path, aside)
            log.warning("SCANN segment index %s is unusable (%s); moved to %s and rebuilt", e.path, e.reason, aside)
            build_or_load_original(self, spec, index_dir)

    create_original = collection.Collection.create_index

    @functools.wraps(create_original)
    def create_index(self: Any, field_name: str, index_params: dict) -> None:
        if str(index_params.get("index_type", "")).upper() == INDEX_TYPE:
            _check_create_index(self, field_name, index_params)
        return create_original(self, field_name, index_params)

    search_original = collection.Collection.search
    search_signature = inspect.signature(search_original)

    @functools.wraps(search_original)
    def search(self: Any, *args: Any, **kwargs: Any) -> Any:
        call = search_signature.bind(self, *args, **kwargs)
        _check_search(self, call.arguments)
        return search_original(self, *args, **kwargs)

    decode_original = servicer.kv_pairs_to_index_params_dict

    @functools.wraps(decode_original)
    def kv_pairs_to_index_params_dict(extra_params: Any) -> dict:
        # pymilvus 3 sends index params as top-level key/value pairs, Milvus's own form;
        # Milvus Lite 3.2 reads only a nested "params" JSON and would drop them.
        request = decode_original(extra_params)
        if str(request.get("index_type", "")).upper() == INDEX_TYPE:
            request["params"] = {**_top_level_params(extra_params), **request["params"]}
        return request

    known = factory.KNOWN_VECTOR_INDEX_TYPES | {INDEX_TYPE}
    _patch(factory, "build_index_from_spec", build_index_from_spec)
    _patch(factory, "load_index_from_spec", load_index_from_spec)
    _patch(factory, "KNOWN_VECTOR_INDEX_TYPES", known)
    _patch(collection, "KNOWN_VECTOR_INDEX_TYPES", known)
    _patch(collection.Collection, "create_index", create_index)
    _patch(collection.Collection, "search", search)
    _patch(segment.Segment, "build_or_load_index", build_or_load_index)
    _patch(servicer, "kv_pairs_to_index_params_dict", kv_pairs_to_index_params_dict)
    log.debug("anisoscan registered as Milvus Lite %s's SCANN index", version)


def unregister() -> None:
    """Undoes register() (for tests and embedding applications)."""
    while _patches:
        p = _patches.pop()
        setattr(p.owner, p.name, p.original)


_REQUEST_KEYS = frozenset({"index_type", "metric_type", "params", "search_params", "index_name", "field_name"})


def _top_level_params(extra_params: Any) -> dict[str, Any]:
    """The index params among a CreateIndexRequest's key/value pairs (values are JSON, as pymilvus sends)."""
    params = {}
    for kv in extra_params:
        if kv.key not in _REQUEST_KEYS:
            try:
                params[kv.key] = json.loads(kv.value)
            except ValueError:
                params[kv.key] = kv.value
    return params


def _check_search(collection: Any, arguments: dict[str, Any]) -> None:
    """A search on a SCANN field: queries and search params checked before any segment (or the
    brute-forced memtable) sees them, so bad input is one IllegalArgument, never a numpy error."""
    from milvus_lite.exceptions import SchemaValidationError
    from milvus_lite.schema.types import DataType

    vector_fields = [f for f in collection._schema.fields if f.dtype == DataType.FLOAT_VECTOR]
    name = arguments.get("anns_field") or (vector_fields[0].name if len(vector_fields) == 1 else None)
    spec = collection._index_specs.get(name)
    if spec is None or spec.index_type != INDEX_TYPE:
        return
    dim = next(int(f.dim) for f in vector_fields if f.name == name)
    try:
        check_queries(arguments["query_vectors"], dim)
        search_params(arguments.get("top_k", 10), arguments.get("search_params") or {})
    except (ValueError, TypeError) as e:
        raise SchemaValidationError(f"SCANN search: {e}") from e


def _check_create_index(collection: Any, field_name: str, request: dict) -> None:
    """SCANN's parameters checked as the build will read them; errors are Milvus's IllegalArgument."""
    from milvus_lite.exceptions import SchemaValidationError
    from milvus_lite.schema.types import DataType

    field = next((f for f in collection._schema.fields if f.name == field_name), None)
    if field is None:
        return  # Milvus Lite's own check names the unknown field
    if field.dtype != DataType.FLOAT_VECTOR:
        raise SchemaValidationError(f"index_type SCANN: field {field_name!r} is {field.dtype.name}; "
                                    f"SCANN indexes FLOAT_VECTOR fields")
    metric = request.get("metric_type")
    if metric is None:
        return  # Milvus Lite's own check asks for it
    try:
        index_params(int(field.dim), str(metric).upper(), request.get("params") or {})
    except (ValueError, TypeError) as e:
        raise SchemaValidationError(f"invalid SCANN index params: {e}") from e


def serve(data_dir: str, host: str = "127.0.0.1", port: int = 19530) -> None:
    """Serves a Milvus Lite database, SCANN registered, to any Milvus client until SIGINT or SIGTERM.

    The database is the one `MilvusClient(data_dir)` opens in-process (one process at a time).
    """
    from milvus_lite.adapter.grpc.server import start_server_in_thread

    register()
    server, db, bound = start_server_in_thread(os.path.abspath(data_dir), host=host, port=port)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    log.info("Milvus Lite with anisoscan SCANN: %s on %s:%d", data_dir, host, bound)
    try:
        while not stop.wait(1.0):
            pass
    finally:
        server.stop(grace=5)
        db.close()
        log.info("stopped: %s closed", data_dir)


register()
