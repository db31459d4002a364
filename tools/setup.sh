#!/usr/bin/env bash
# Idempotent set-up of .venv (Python 3.11): torch 2.13.0 first (CPU wheel where one lies on disk;
# any unpinned torch would pull a multi-GB CUDA build), then the project with its extras (Ray pinned too).
# Near-instant when nothing changed (a stamp file keyed on pyproject.toml).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv
STAMP="$VENV/.hosig-installed"
PY=${PYTHON:-}
if [ -z "$PY" ]; then
  for cand in python3.11 python3; do
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      PY=$cand; break
    fi
  done
fi
[ -n "$PY" ] || { echo "setup: Python 3.11 is required (python3.11 or python3 = 3.11)" >&2; exit 1; }

# X11/GL client libraries the bpy wheel links against.
LIBS="libX11.so.6:libx11-6 libXi.so.6:libxi6 libXxf86vm.so.1:libxxf86vm1 libXfixes.so.3:libxfixes3 \
libXrender.so.1:libxrender1 libxkbcommon.so.0:libxkbcommon0 libSM.so.6:libsm6 libICE.so.6:libice6 \
libGL.so.1:libgl1 libEGL.so.1:libegl1 libXext.so.6:libxext6 libXkbcommon-x11.so.0:libxkbcommon-x11-0"
missing=""
for pair in $LIBS; do
  lib=${pair%%:*}; pkg=${pair##*:}
  if ! ldconfig -p 2>/dev/null | grep -qi "$lib"; then missing="$missing $pkg"; fi
done
if [ -n "$missing" ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing X11/GL client libraries for bpy:$missing" >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing) >&2 || \
      echo "setup: apt-get could not install:$missing (Blender tests may fail)" >&2
  else
    echo "setup: missing libraries for the bpy wheel (install with your package manager):$missing" >&2
  fi
fi

if [ -f "$STAMP" ] && [ "$STAMP" -nt pyproject.toml ] && [ -x "$VENV/bin/hosig" ]; then
  exit 0
fi
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null 2>&1 || true
"$VENV/bin/python" -m pip install -q --disable-pip-version-check "torch==2.13.0"
# Ray for `hosig batch --ray` and its tests: the tested release, pinned like torch (ray needs no torch).
"$VENV/bin/python" -m pip install -q --disable-pip-version-check "ray==2.58.0"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -e ".[blender,test,cluster]"
touch "$STAMP"
echo "setup: .venv ready" >&2
