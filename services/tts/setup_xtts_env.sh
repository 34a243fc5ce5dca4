#!/usr/bin/env bash
# Builds run/xtts-venv: the project plus XTTS-v2 (coqui-tts, torch) in an environment of its own, so
# the default .venv stays free of torch/transformers. Cheap to re-run.
#   services/tts/setup_xtts_env.sh && run/xtts-venv/bin/python -m aistack_tts   (with TTS_ENGINE=xtts)
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=${XTTS_VENV:-run/xtts-venv}
PYTHON=${PYTHON:-python3}
stamp="$VENV/.aistack-xtts"
digest=$(cat requirements/base.txt requirements/tts.txt requirements/optional/tts-xtts.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [[ -f $stamp && $(cat "$stamp") == "$digest" ]]; then
  echo "[xtts] $VENV up to date"
  exit 0
fi
[[ -x $VENV/bin/python ]] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q -r requirements/base.txt -r requirements/tts.txt -r requirements/optional/tts-xtts.txt
"$VENV/bin/python" -m pip install -q --no-deps -e .
# torchaudio's compiled ops are built against one torch release; with another one (here: the local
# CPU torch 2.13 and torchaudio 2.11, the newest on PyPI) they fail to load and `import torchaudio`
# fails with them. XTTS uses only torchaudio's pure-PyTorch parts (resample, MelSpectrogram), which
# work without the ops: set the unloadable libraries aside, and only when they do not load.
if ! "$VENV/bin/python" -c 'import torchaudio' 2>/dev/null; then
  lib=$("$VENV/bin/python" -c 'import importlib.util, pathlib; print(pathlib.Path(importlib.util.find_spec("torchaudio").origin).parent / "lib")')
  mkdir -p "$VENV/torchaudio-ops-disabled"
  mv "$lib"/*.so "$VENV/torchaudio-ops-disabled/"
  echo "[xtts] torchaudio ops do not match this torch; using torchaudio's pure-PyTorch functions"
fi
"$VENV/bin/python" -c 'from TTS.tts.models.xtts import Xtts; print("[xtts] coqui-tts imports")'
echo "$digest" >"$stamp"
