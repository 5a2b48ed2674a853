"""Salvage a Failed index while the node is stopped: `python -m anisoscan.node.salvage FOLDER [--apply]`.

FOLDER is the index's folder, <data-dir>/<name>.<generation>. Salvage loads the snapshot and
applies the log records in order up to the first damaged, missing or inapplicable one, and
reports what stops there. Without --apply it changes nothing. With --apply it saves what it
could apply as a new snapshot, deletes the whole log (the records it could not apply too)
and marks the index Finished, so that the next start serves it.

A database SQLite itself cannot open: `sqlite3 index.db .recover | sqlite3 recovered.db`,
move recovered.db over index.db (and delete index.db-wal), then run salvage.
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from . import index_types
from .errors import StorageError
from .index_node import apply, write_snapshot
from .store import FINISHED, IndexStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Salvage:
    rows: int
    kept_through: int  # the last record applied
    dropped: int  # records from the first bad one on
    lost_transactions: int  # committed transactions SQLite dropped from a damaged -wal file
    reason: str  # why replay stopped ("" when every record applied)


def salvage(folder: Path, write: bool = False) -> Salvage:
    store = IndexStore.open(folder, salvage=True)
    try:
        meta = store.read_meta()
        if not meta.snapshot_file:
            raise StorageError(f"{store.path}: the build never finished (no snapshot); drop the index and create it "
                               "again")
        index = index_types.lookup(meta.index_type).load(folder / meta.snapshot_file)
        seq, reason = meta.snapshot_seq, ""
        if store.lost_transactions:
            reason = f"{store.path}-wal is damaged: {store.lost_transactions} committed transaction(s) are lost"
        try:
            for record, _ in store.records_after(seq, meta.dim):
                try:
                    apply(index, record)
                except ValueError as e:
                    raise StorageError(f"log record {record.seq} does not apply: {e}") from e
                seq = record.seq
        except StorageError as e:
            reason = str(e)
        dropped, _ = store.records_from(seq + 1)
        result = Salvage(len(index), seq, dropped, store.lost_transactions, reason)
        if write:
            snapshot = write_snapshot(folder, meta.index_type, index, seq)
            store.reset(replace(meta, state=FINISHED, error="", loaded=True, snapshot_seq=seq,
                                snapshot_file=snapshot))
            if meta.snapshot_file != snapshot:
                (folder / meta.snapshot_file).unlink(missing_ok=True)
        return result
    finally:
        store.close()


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser = argparse.ArgumentParser(prog="python -m anisoscan.node.salvage", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="the index's folder: <data-dir>/<name>.<generation>")
    parser.add_argument("--apply", action="store_true", help="write the salvaged index (the node must be stopped)")
    args = parser.parse_args(argv)
    try:
        result = salvage(args.folder, args.apply)
    except (StorageError, OSError, ValueError) as e:
        log.error("cannot salvage %s: %s", args.folder, e)
        return 1
    log.info("%s: %d rows, log records through %d applied; %d record(s) and %d lost transaction(s) %s%s",
             args.folder, result.rows, result.kept_through, result.dropped, result.lost_transactions,
             "dropped" if args.apply else "would be dropped", f" ({result.reason})" if result.reason else "")
    return 0


if __name__ == "__main__":
    sys.exit(main())
