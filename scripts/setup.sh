#!/usr/bin/env bash
# Makes this checkout runnable on a fresh Debian/Ubuntu machine (as root), and is cheap to re-run:
# Debian packages from requirements/apt.txt (apt-get only when one is missing), the Python venv .venv
# with every requirements/*.txt and the project itself (editable), and buf from npm (node_modules/).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi

apt_updated=0
apt_install() {
  if [[ $apt_updated -eq 0 ]]; then
    $SUDO apt-get update -qq
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@"
}

# 1. Debian packages.
mapfile -t WANTED < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' requirements/apt.txt | grep -v '^$' | sort -u)
MISSING=()
for pkg in "${WANTED[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    MISSING+=("$pkg")
  fi
done
if ((${#MISSING[@]})); then
  log "installing Debian packages: ${MISSING[*]}"
  apt_install "${MISSING[@]}"
fi
# Node may come from NodeSource (its nodejs bundles npm) or Debian (separate npm package).
if ! command -v npm >/dev/null; then
  log "installing nodejs and npm"
  apt_install nodejs npm
fi

# 2. Python venv. The kit needs 3.11+ (StrEnum); Ubuntu 22.04's python3 is 3.10, its python3.11 is not.
new_enough() { command -v "$1" >/dev/null && "$1" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; }
if [[ -z ${PYTHON:-} ]]; then
  for candidate in python3 python3.13 python3.12 python3.11; do
    if new_enough "$candidate"; then PYTHON=$candidate; break; fi
  done
fi
if [[ -z ${PYTHON:-} && ! -x .venv/bin/python ]]; then
  log "installing Python 3.11 (python3 here is older)"
  apt_install python3.11 python3.11-venv python3.11-dev
  PYTHON=python3.11
fi
if [[ ! -x .venv/bin/python ]] && ! new_enough "$PYTHON"; then
  echo "setup: $PYTHON is not Python 3.11 or newer (set PYTHON=...)" >&2
  exit 1
fi
if [[ ! -x .venv/bin/python ]]; then
  log "creating .venv with $("$PYTHON" --version)"
  "$PYTHON" -m venv .venv
fi

# Re-install only when a requirements file, pyproject.toml or the package roots changed: pip takes
# tens of seconds even when everything is satisfied, and `make test` runs this every time.
stamp=.venv/.aistack-setup
digest=$(cat requirements/*.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [[ ! -f $stamp || $(cat "$stamp") != "$digest" ]]; then
  DEPS=()
  NODEPS=()
  for file in requirements/*.txt; do
    case "$file" in
      requirements/apt.txt) ;;
      *-nodeps.txt) NODEPS+=(-r "$file") ;;
      *) DEPS+=(-r "$file") ;;
    esac
  done
  # One resolver run over every capability's pins, so conflicts show up here and not at run time.
  log "pip install ${DEPS[*]}"
  .venv/bin/python -m pip install -q "${DEPS[@]}"
  if ((${#NODEPS[@]})); then
    log "pip install --no-deps ${NODEPS[*]}"
    .venv/bin/python -m pip install -q --no-deps "${NODEPS[@]}"
  fi
  # The build backend's deprecation chatter would bury the useful lines; shown only on failure.
  if ! out=$(.venv/bin/python -m pip install -q --no-deps -e . 2>&1); then
    echo "$out" >&2
    exit 1
  fi
  echo "$digest" >"$stamp"
else
  log "Python packages up to date (.venv)"
fi

# 3. buf, pinned in package.json / package-lock.json.
want_buf=$(sed -n 's/.*"@bufbuild\/buf": *"\([^"]*\)".*/\1/p' package.json)
if [[ ! -x node_modules/.bin/buf || $(node_modules/.bin/buf --version 2>/dev/null) != "$want_buf" ]]; then
  log "installing buf $want_buf from npm"
  if [[ -f package-lock.json ]]; then
    npm ci --no-audit --no-fund --loglevel=error
  else
    npm install --no-audit --no-fund --loglevel=error
  fi
fi

# Tools the platform runs, all shipped inside PyPI wheels; fail here rather than at `make run`.
for tool in envoy grpcurl; do
  [[ -x .venv/bin/$tool ]] || { echo "setup: .venv/bin/$tool missing (requirements/base.txt)" >&2; exit 1; }
done
envoy_version=$(.venv/bin/envoy --version | sed -n 's|.*version: [0-9a-f]*/\([0-9.]*\)/.*|\1|p')
log "ready: .venv, buf $(node_modules/.bin/buf --version), envoy $envoy_version"
