"""The anisoscan.v1 gRPC interface; index_node_pb2*.py are generated from proto/ by the build."""
