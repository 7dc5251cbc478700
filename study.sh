#!/usr/bin/env bash
# The built-in study end to end on a CPU, from a fresh clone: bash study.sh
# installs into .venv, fetches the Debian documentation corpora (apt), prepares them, runs the
# sweep of config/sweep_builtin.py and writes out/builtin/report/. Rerunning skips what is done.
source "$(dirname "$0")/setup.sh"
# apt's package lists are empty on a fresh machine: apt-get download needs them once (as root)
if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -print -quit 2>/dev/null)" ]; then
  if [ "$(id -u)" = 0 ]; then apt-get update; else sudo apt-get update; fi
fi
for lang in en de es zh; do
  python prepare/debian_docs.py --lang "$lang"
done
python sweep.py config/sweep_builtin.py "$@"
echo "report: out/builtin/report/report.md"
