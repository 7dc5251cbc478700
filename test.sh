#!/usr/bin/env bash
# The test suite, from a fresh clone: bash test.sh   (extra arguments go to pytest)
source "$(dirname "$0")/setup.sh"
# one test per core at a time (pytest-xdist -n auto), every process on one thread: most tests run
# tiny models in subprocesses, where a second thread buys little and contention costs much
export OMP_NUM_THREADS=1
python -m pytest -q -n auto tests "$@"
