#!/usr/bin/env bash
# Install everything drumsep-lab needs on a fresh Debian machine (CPU-only torch first).
# Idempotent: re-running only installs what is missing.
set -uo pipefail
cd "$(dirname "$0")/.."

fail() { echo "setup error: $*" >&2; exit 1; }

# 1. System packages: ffmpeg (museval imports musdb -> stempeg, which needs it) and the
#    real multi-sampled drum kits the data renderer uses (Hydrogen kits, a small GM SoundFont).
need_apt=()
command -v ffmpeg >/dev/null 2>&1 || need_apt+=(ffmpeg)
[ -f /usr/share/hydrogen/data/drumkits/GMRockKit/drumkit.xml ] || need_apt+=(hydrogen-drumkits hydrogen-data)
[ -f /usr/share/sounds/sf2/TimGM6mb.sf2 ] || need_apt+=(timgm6mb-soundfont)  # 6 MB of GM drum kits (drumdata.soundfonts)
if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  if command -v apt-get >/dev/null 2>&1 && { [ -z "$SUDO" ] || command -v sudo >/dev/null 2>&1; }; then
    echo "installing ${need_apt[*]} with apt-get"
    { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null; } \
      || echo "setup warning: apt-get could not install ${need_apt[*]}; without ffmpeg museval cannot be imported, without hydrogen-drumkits the renderer falls back to its synthetic kits." >&2
  else
    echo "setup warning: please install ${need_apt[*]} (Debian: apt-get install ${need_apt[*]}); without them museval or the real kits are unavailable." >&2
  fi
fi

# 2. torch first, from the CPU build: a bare 'torch' requirement would pull the multi-GB CUDA build.
python -c "import torch, sys; sys.exit(0 if torch.__version__.startswith('2.13') else 1)" 2>/dev/null \
  || python -m pip install -q "torch==2.13.0" \
  || fail "could not install torch==2.13.0 (pip install torch==2.13.0 failed); install a CPU build of torch>=2.5,<2.14 and re-run."

# 3. The project and its test tools (the torch range in pyproject admits 2.13.0, so nothing is re-downloaded).
python -m pip install -q -e ".[test]" || fail "pip could not install drumsep-lab's dependencies (see the messages above)."
python -c "import separation, train, eval, drumdata, compress" || fail "the packages do not import after installation."
echo "setup complete"
