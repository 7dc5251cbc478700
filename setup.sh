# Sourced by study.sh and test.sh: a virtual environment in .venv with requirements.txt in it.
# (CPU torch. On a GPU node install the CUDA build of torch into .venv first: see README.)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv || { echo "error: python3 -m venv failed: install it (sudo apt-get install python3-venv) and rerun" >&2; exit 1; }
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -r requirements.txt
export PATH="$PWD/.venv/bin:$PATH"
