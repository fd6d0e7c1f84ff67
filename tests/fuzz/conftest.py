"""Fuzz tests: the case counts of every test are printed at the end (see ``fuzzing.py``)."""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from fuzzing import pytest_terminal_summary  # noqa: E402,F401  (pytest hook)
