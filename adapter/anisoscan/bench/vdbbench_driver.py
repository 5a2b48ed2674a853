"""Runs inside VectorDBBench's own virtualenv, started by `python -m anisoscan.bench vdbbench`;
it imports nothing of anisoscan. Its command line is VectorDBBench's, plus what that lacks:

- `milvusscann`: the SCANN index of its Milvus client config (nlist, with_raw_data; nprobe,
  reorder_k), which its CLI has no command for, plus anisoscan's `soar_lambda` (spilled
  assignment), sent only when given, since Milvus's own SCANN has no such parameter.
  Booleans go as "true"/"false", which Milvus 2.3 servers require.
- Its Milvus client expects Milvus 2.5+: the pre-search step (sorted segments, target-size
  compaction) becomes flush, wait until the index is built, load; and hits are read by "id",
  since Milvus 2.3 does not name the primary key field in search results.
"""

import time
from typing import Annotated, TypedDict, Unpack

import click
from vectordb_bench.backend.clients.milvus.cli import DBTYPE, MilvusTypedDict, _build_milvus_config
from vectordb_bench.backend.clients.milvus.config import SCANNConfig
from vectordb_bench.backend.clients.milvus.milvus import Milvus
from vectordb_bench.cli.cli import CommonTypedDict, cli, click_parameter_decorators_from_typed_dict, run


class Milvus23SCANNConfig(SCANNConfig):
    soar_lambda: float = 0.0

    def index_param(self) -> dict:
        param = super().index_param()
        param["params"]["with_raw_data"] = "true" if self.with_raw_data else "false"
        if self.soar_lambda > 0:
            param["params"]["soar_lambda"] = self.soar_lambda
        return param


class SCANNTypedDict(TypedDict):
    nlist: Annotated[int, click.option("--nlist", type=int, required=True, help="partitions")]
    nprobe: Annotated[int, click.option("--nprobe", type=int, required=True, help="partitions searched")]
    reorder_k: Annotated[int, click.option("--reorder-k", type=int, required=True, help="candidates re-ranked")]
    with_raw_data: Annotated[bool, click.option("--with-raw-data/--without-raw-data", default=True,
                                                show_default=True, help="keep vectors for exact re-ranking")]
    soar_lambda: Annotated[float, click.option("--soar-lambda", type=float, default=0.0, show_default=True,
                                               help="anisoscan's spilled assignment (0: off, not sent)")]


class MilvusSCANNTypedDict(CommonTypedDict, MilvusTypedDict, SCANNTypedDict): ...


@cli.command()
@click_parameter_decorators_from_typed_dict(MilvusSCANNTypedDict)
def MilvusSCANN(**parameters: Unpack[MilvusSCANNTypedDict]) -> None:  # noqa: N802 (VectorDBBench's naming)
    run(db=DBTYPE, db_config=_build_milvus_config(parameters),
        db_case_config=Milvus23SCANNConfig(nlist=parameters["nlist"], nprobe=parameters["nprobe"],
                                           reorder_k=parameters["reorder_k"],
                                           with_raw_data=parameters["with_raw_data"],
                                           soar_lambda=parameters["soar_lambda"]),
        **parameters)


def _optimize_milvus23(self: Milvus) -> None:
    self.client.flush(self.collection_name)
    while True:
        info = self.client.describe_index(self.collection_name, self._main_index_name)
        if info.get("state") == "Finished" and info.get("indexed_rows", 0) >= info.get("total_rows", 0):
            break
        if info.get("state") == "Failed":
            raise RuntimeError(f"index build failed: {info.get('index_state_fail_reason')}")
        time.sleep(1)
    self.client.load_collection(self.collection_name)


def _search_embedding_milvus23(self: Milvus, query: list[float], k: int = 100, **_: object) -> list[int]:
    res = self.client.search(self.collection_name, data=[query], anns_field=self._vector_field,
                             search_params=self.case_config.search_param(), limit=k, filter=self.expr)
    return [hit["id"] for hit in res[0]]


Milvus._optimize = _optimize_milvus23
Milvus.search_embedding = _search_embedding_milvus23

if __name__ == "__main__":
    cli()
