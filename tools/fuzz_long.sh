#!/bin/sh
# The long reliability run (issue: untrusted INI/weights/data/ONNX files, interrupted trainings).
#   10 000 INI mutations, >= 1 000 cases of every other file kind (syntxt, IDX, CIFAR, ONNX,
#   $() expressions), fresh random cases each run, and 50 SIGKILL trials of a training.
# Expected: 0 failures (tracebacks) and 0 hangs; known bugs of other modules are counted as
# "known bug" in the "fuzz cases" summary and reproduced in tests/fuzz/test_found_bugs.py.
# Usage: tools/fuzz_long.sh [extra pytest args]      (about 30-40 minutes on 2 cores)
set -e
cd "$(dirname "$0")/.."
N2D2PY_FUZZ_EXAMPLES=${N2D2PY_FUZZ_EXAMPLES:-10000} python -m pytest -q -p no:cacheprovider tests/fuzz "$@"
N2D2PY_KILL_TRIALS=${N2D2PY_KILL_TRIALS:-50} python -m pytest -q -p no:cacheprovider tests/test_reliability.py "$@"
