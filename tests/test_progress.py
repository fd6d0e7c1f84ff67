"""What a person sees while a network learns (n2d2py/progress.py).

On a terminal (a pseudo-terminal here): tqdm's per-batch bar with the position in the epoch,
images per second, the time left and the running loss; elsewhere: plain lines, never a carriage
return. Either way one line per epoch with loss, training and validation scores and whether the
validation score is the best so far."""
import fcntl
import io
import os
import re
import select
import struct
import subprocess
import sys
import termios

import pytest
from cli_runner import command, environment
from tiny_nets import TWO_FC_12 as TINY
from tiny_nets import write_ini

from n2d2py.progress import LearnHistory, Progress, log_point_line

EPOCH_LINE = re.compile(r"^epoch (\d)/2: loss (\d+\.?\d*), training (\d+\.\d\d)%, "
                        r"validation (\d+\.\d\d)%(, best so far \(saved in 'weights_validation'\)"
                        r"| \(best \d+\.\d\d% at epoch \d/2\))$")


def run_on_pty(cwd, *argv):
    """The command's whole output, read from the master side of a pseudo-terminal."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))  # 120 columns
    env = environment(TQDM_MININTERVAL="0", N2D2_DATA="/nonexistent")
    proc = subprocess.Popen(command(*argv), cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                            stdout=slave, stderr=slave)
    os.close(slave)
    chunks = []
    while True:
        ready, _, _ = select.select([master], [], [], 120)
        if not ready:
            proc.kill()
            pytest.fail("no output for 120 s")
        try:
            data = os.read(master, 65536)
        except OSError:       # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert proc.wait(timeout=60) == 0
    return b"".join(chunks).decode("utf-8", errors="replace")


def epoch_lines(text):
    """Epoch lines as the terminal shows them: what follows the last carriage return."""
    shown = (line.rstrip("\r").split("\r")[-1] for line in text.split("\n"))
    return [m for m in (EPOCH_LINE.match(line) for line in shown) if m]


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a POSIX pseudo-terminal")
def test_terminal_shows_a_per_batch_bar_and_one_line_per_epoch(tmp_path):
    path = write_ini(tmp_path, TINY)
    text = run_on_pty(tmp_path, path, "--learn-epoch", "2", "--seed", "3")
    # the bar, redrawn in place: epoch position (n/3200), percentage, rate, time left, loss
    bars = re.findall(r"epoch 1/2:\s+(\d+)%\|[^|]*\|\s*(\d+)/3200 \[(\d\d:\d\d)<(\d\d:\d\d), "
                      r"\s*([\d.]+)img/s, loss=([\d.]+), score=([\d.]+)%\]", text)
    assert len(bars) >= 3, text[:3000]
    positions = [int(b[1]) for b in bars]
    assert positions == sorted(positions) and positions[-1] > positions[0]
    assert all(float(b[4]) > 0 for b in bars)
    assert "\r" in text                                 # redrawn in place, not scrolled
    assert re.search(r"validation:\s+\d+%\|", text)     # the validation pass has its bar too
    lines = epoch_lines(text)
    assert [m.group(1) for m in lines] == ["1", "2"], text[-2000:]
    assert lines[0].group(5).startswith(", best so far")
    assert float(lines[1].group(2)) < float(lines[0].group(2))     # the loss went down


def test_a_log_file_gets_plain_lines_without_carriage_returns(tmp_path):
    path = write_ini(tmp_path, TINY)
    proc = subprocess.run(command(path, "--learn-epoch", "2", "--seed", "3"), cwd=tmp_path,
                          env=environment(N2D2_DATA="/nonexistent"), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "\r" not in proc.stdout and "\r" not in proc.stderr and "img/s]" not in proc.stdout
    lines = epoch_lines(proc.stdout)
    assert [m.group(1) for m in lines] == ["1", "2"], proc.stdout
    assert re.search(r"^Final recognition rate: \d+(\.\d+)?%    \(\d+/1000 images; error rate: ",
                     proc.stdout, re.M)


def test_plain_progress_line_has_position_rate_time_left_and_loss():
    out = io.StringIO()
    progress = Progress(out)
    progress.plain_every = 0.0
    progress.begin("epoch 3/10", 3200)
    progress.step(128, loss=0.5, success=0.75)
    progress.step(128, loss=0.25, success=1.0)
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert re.fullmatch(r"epoch 3/10: 256/3200 images, \d+ img/s, (\d+:\d\d|\?) left, "
                        r"loss 0\.375, score 87\.50%", lines[1]), lines[1]
    assert progress.meter.mean_loss == pytest.approx(0.375) and progress.meter.score == 87.5


def test_epoch_line_names_a_metric_other_than_the_recognition_rate():
    history = LearnHistory("F1Score")
    history.best, history.best_step = 0.9, 3200
    history.log = [{"label": "epoch 1/5", "step": 3200, "loss": 0.3, "training": 80.0,
                    "validation": 90.0, "best": True}]
    entry = {"label": "epoch 2/5", "step": 6400, "loss": 0.2, "training": 85.0,
             "validation": 89.0, "best": False}
    assert log_point_line(history, entry, "F1Score", "weights_validation") == (
        "epoch 2/5: loss 0.2, training 85.00%, validation 89.00% [F1Score] "
        "(best 90.00% at epoch 1/5)")


def test_progress_is_quiet_in_a_plain_stream_by_default():
    out = io.StringIO()
    progress = Progress(out)
    progress.begin("epoch 1/1", 100)
    progress.step(50, loss=1.0, success=0.5)
    progress.close()
    assert out.getvalue() == "" and not progress.tty and sys.stdout is not out
