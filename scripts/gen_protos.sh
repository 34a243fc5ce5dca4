#!/usr/bin/env bash
# The one way stubs are made from proto/: Python messages + gRPC stubs with type hints (.pyi),
# and the descriptor set Envoy's transcoder reads. CI runs it and fails when the result drifts.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
# protoc finds the mypy-protobuf plugins on PATH, next to the interpreter.
export PATH="$(dirname "$PY"):$PATH"
OUT=gen/python
rm -rf "$OUT" && mkdir -p "$OUT"
mapfile -t FILES < <(cd proto && find aistack -name '*.proto' | sort)
# grpc_tools ships google/protobuf/*.proto; proto/ holds our files and the vendored google/api, google/rpc.
WKT=$("$PY" -c 'import grpc_tools, os; print(os.path.join(os.path.dirname(grpc_tools.__file__), "_proto"))')
"$PY" -m grpc_tools.protoc -I proto -I "$WKT" \
  --python_out="$OUT" --grpc_python_out="$OUT" \
  --mypy_out="$OUT" --mypy_grpc_out="$OUT" \
  "${FILES[@]}"
# Envoy needs every import, google/rpc/{status,error_details} included, to write JSON errors.
"$PY" -m grpc_tools.protoc -I proto -I "$WKT" --include_imports \
  --descriptor_set_out=gen/aistack.binpb "${FILES[@]}" google/rpc/status.proto google/rpc/error_details.proto
# Regular packages (not namespace ones) keep mypy and setuptools simple.
find "$OUT/aistack" -type d -exec touch {}/__init__.py \;
touch "$OUT/aistack/py.typed"
echo "generated $(find "$OUT" -name '*_pb2.py' | wc -l) modules and gen/aistack.binpb"
