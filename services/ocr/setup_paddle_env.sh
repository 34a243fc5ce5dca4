#!/usr/bin/env bash
# Builds run/paddle-venv: PaddleOCR 3.x in an environment of its own (Paddle does not belong in the
# default .venv), where tests/ocr/test_ocr_paddle.py runs the adapter against the real library.
# Cheap to re-run: a stamp of the requirements skips a venv that is already up to date.
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=${PADDLE_VENV:-run/paddle-venv}
PYTHON=${PYTHON:-python3}
stamp="$VENV/.aistack-paddle"
digest=$(cat requirements/optional/ocr-paddle.txt | sha256sum | cut -d' ' -f1)
if [[ -f $stamp && $(cat "$stamp") == "$digest" ]]; then
  echo "[paddle] $VENV up to date"
  exit 0
fi
[[ -x $VENV/bin/python ]] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q -r requirements/optional/ocr-paddle.txt
"$VENV/bin/python" -c 'import paddleocr; print("[paddle] paddleocr", paddleocr.__version__, "imports")'
echo "$digest" >"$stamp"
