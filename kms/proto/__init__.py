"""Generated protobuf modules (built by `make python` from proto/; never committed)."""
