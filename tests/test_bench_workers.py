"""Bench workers: a failed case comes back with its reason, the OOM killer takes a worker first, the memory fit."""

import subprocess
import sys

import pytest

from repro.benchkit import first_to_kill, run_worker, worker_failure
from repro.solopo.bench import longest_under


def test_worker_failure_reasons():
    assert worker_failure(-9, "") == "killed by the system, most likely out of memory"
    assert worker_failure(1, "Traceback\ntorch.OutOfMemoryError: CUDA Out Of Memory. Tried\n") == "out of memory"
    assert worker_failure(1, "Traceback\nValueError: bad shape\n\n") == "exit code 1: ValueError: bad shape"
    assert worker_failure(3, "") == "exit code 3"


def test_a_failed_case_comes_back_as_a_row_or_ends_the_bench(tmp_path):
    args = ["solopo", str(tmp_path / "no-model"), "long", "per-sample", "8", "16", "4", "1"]
    result = run_worker(args, may_fail=True)
    assert result["failed"].startswith("exit code 1: ")
    with pytest.raises(SystemExit, match="bench worker solopo .* failed"):
        run_worker(args)


@pytest.mark.skipif(sys.platform != "linux", reason="oom_score_adj is a Linux /proc file")
def test_a_worker_asks_to_be_killed_first():
    show = [sys.executable, "-c", "print(open('/proc/self/oom_score_adj').read())"]
    assert subprocess.run(show, capture_output=True, text=True, preexec_fn=first_to_kill).stdout.strip() == "1000"


def test_longest_under_fits_the_line_around_the_cap():
    points = [(2048, 6000.0), (1024, 4000.0), (4096, 10000.0)]  # 2 MiB a token, then also 2 MiB a token
    # 5000 lies between 1024 and 2048: 1024 + (5000 - 4000) * 1024 / 2000 = 1536
    assert longest_under(5000.0, points) == 1536
    # above every peak: the two longest, 2048 + (12000 - 6000) * 2048 / 4000 = 5120
    assert longest_under(12000.0, points) == 5120
    # below every peak: the two shortest, 1024 + (3000 - 4000) * 1024 / 2000 = 512
    assert longest_under(3000.0, points) == 512
    # the bracketing pair, not the two longest: (1024, 4000) and (2048, 5000) give 1024 + 500 * 1024 / 1000 = 1536
    assert longest_under(4500.0, [(1024, 4000.0), (2048, 5000.0), (4096, 13000.0)]) == 1536
    assert longest_under(5000.0, [(1024, 4000.0)]) is None
    assert longest_under(5000.0, [(1024, 4000.0), (2048, 4000.0)]) is None
