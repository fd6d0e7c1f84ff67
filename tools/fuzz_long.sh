#!/bin/sh
# The long reliability run (issue: untrusted INI/weights/data/ONNX files, interrupted trainings).
#   10 000 INI mutations, >= 1 000 cases of every other file kind (syntxt, IDX, CIFAR, ONNX,
#   $() expressions), fresh random cases each run, and 50 SIGKILL trials of a training.
#   Issue 12's classes 1-8 (tests/fuzz/test_fuzz_hardening.py, 1 000 cases each): hostile cell and
#   node names (SAT and PACT states, a ChannelShuffle), expansions that multiply, symlinked data
#   trees, ILSVRC2012 synset and val.txt names, ONNX external data on every tensor kind, busy run
#   folders, mutated net_state/, seeds, output names, each case in a watched temporary root.
#   Those alone, fresh cases, 500 each (about 7 minutes on 2 loaded cores):
#     N2D2PY_FUZZ_EXAMPLES=5000 python -m pytest -q tests/fuzz/test_fuzz_hardening.py
# Expected: 0 failures (tracebacks) and 0 hangs (a case past 20 s fails); the "fuzz cases" summary
# also gives the slowest case (and slowest refusal) per stage, "files written outside the run
# folder (watched roots): 0" and the peak memory of the fuzzing process and of its children. Known bugs of other modules are counted as "known bug"
# and reproduced in tests/fuzz/test_found_bugs.py.
# Usage: tools/fuzz_long.sh [extra pytest args]      (about 30-40 minutes on 2 cores)
set -e
cd "$(dirname "$0")/.."
N2D2PY_FUZZ_EXAMPLES=${N2D2PY_FUZZ_EXAMPLES:-10000} python -m pytest -q -p no:cacheprovider tests/fuzz "$@"
N2D2PY_KILL_TRIALS=${N2D2PY_KILL_TRIALS:-50} python -m pytest -q -p no:cacheprovider tests/test_reliability.py "$@"
