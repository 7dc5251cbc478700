#!/usr/bin/env bash
# The test suite, from a fresh clone: bash test.sh   (extra arguments go to pytest)
source "$(dirname "$0")/setup.sh"
python -m pytest -q tests "$@"
