#!/usr/bin/env bash
# A study end to end, from a fresh clone:
#   bash study.sh                          # the built-in CPU study, config/sweep_builtin.py
#   bash study.sh config/sweep_gpu.py      # the one-GPU study (install the CUDA torch first: README)
# installs into .venv, fetches the Debian documentation corpora (apt) and prepares the ones the
# config needs (sweep.py --prepare), runs the sweep and writes <out_dir>/report/. Extra arguments
# go to sweep.py. Rerunning skips what is done.
source "$(dirname "$0")/setup.sh"
config=config/sweep_builtin.py
if [[ "${1:-}" == *.py ]]; then config=$1; shift; fi
# apt's package lists are empty on a fresh machine: apt-get download needs them once (as root)
if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -print -quit 2>/dev/null)" ]; then
  if [ "$(id -u)" = 0 ]; then apt-get update; else sudo apt-get update; fi
fi
python sweep.py "$config" --prepare "$@"
