"""The benchmark tools still run (tools/bench/: speed numbers are theirs, never asserted here):
tiny batches, one step, their machine-readable RESULT lines parsed."""
import json
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
BENCH = ROOT / "tools" / "bench"


def run(*args, timeout=300):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg"}
    done = subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=timeout, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def results(stdout):
    return [json.loads(line[7:]) for line in stdout.splitlines() if line.startswith("RESULT ")]


@pytest.mark.parametrize("model", ["lenet", "lenet-sat", "mobilenetv2"])
def test_train_step_runs_each_model(model):
    out = run(BENCH / "train_step.py", "--model", model, "--batch", "4", "--steps", "1",
              "--warmup", "1", "--threads", "1", "--no-peer", "--profile", "0", "--results")
    (result,) = results(out)
    assert result["model"] == model and result["images_per_s"] > 0
    if model == "lenet-sat":
        assert result["best_ratio"] > 0 and "QAT/float step time" in out   # QAT over float


def test_pytorch_peer_serves_steps():
    pytest.importorskip("torch")
    peer = subprocess.Popen([sys.executable, str(BENCH / "peers" / "torch_reference.py"),
                             "mobilenetv2", "--batch", "2", "--threads", "1", "--serve"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert json.loads(peer.stdout.readline())["ready"]
        peer.stdin.write("2\n")
        peer.stdin.flush()
        reply = json.loads(peer.stdout.readline())
        assert len(reply["wall_s"]) == len(reply["cpu_s"]) == 2
        peer.stdin.write("q\n")
        peer.stdin.flush()
        assert peer.wait(timeout=60) == 0
    finally:
        if peer.poll() is None:
            peer.kill()


def test_inference_codes_equal_onnxruntime():
    pytest.importorskip("onnxruntime")
    out = run(BENCH / "inference.py", "--models", "lenet-sat", "--limit", "20", "--repeat", "1",
              "--results")
    (result,) = results(out)
    assert result["codes_equal"] is True
    assert result["integer_ratio"] > 0 and result["float_ratio"] > 0
