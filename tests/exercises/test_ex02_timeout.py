"""Exercise 02's hole-sampler check: an answer that never returns is stopped and rejected within the time limit
(in the main thread by a timer signal, in another thread by an asynchronous exception), and the reference
sampler's claims hold (it fills exact tilings, raises only when the holes cannot fit)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import wrong_02  # tests/exercises/wrong_02.py (pytest puts this folder on sys.path)

from hrlib.augment.local import nonoverlapping_holes
from hrlib.exercises import check
from hrlib.exercises.ex02 import TIME_LIMIT_S, call_in_time

HANGING = wrong_02._naive_rejection


def test_a_hanging_answer_fails_within_the_limit() -> None:
    start = time.perf_counter()
    result = check("02.nonoverlapping_holes", HANGING, quiet=True)
    elapsed = time.perf_counter() - start
    assert not result.passed and "did not return" in result.message and "(height // h)" in result.message
    assert elapsed < TIME_LIMIT_S + 30.0  # generous: the point is that it returns, not how fast


def test_a_hanging_answer_fails_in_a_worker_thread_too() -> None:
    out: dict[str, object] = {}
    before = set(threading.enumerate())
    worker = threading.Thread(target=lambda: out.update(r=check("02.nonoverlapping_holes", HANGING, quiet=True)))
    worker.start()
    worker.join(TIME_LIMIT_S + 5.0)
    assert not worker.is_alive()
    assert not out["r"].passed and "did not return" in out["r"].message  # type: ignore[union-attr]
    for _ in range(50):  # the stopped answer's thread ends soon after the asynchronous exception
        left = [t for t in threading.enumerate() if t not in before and t is not worker and t.is_alive()]
        if not left:
            break
        time.sleep(0.1)
    assert not left, f"the stopped answer's thread is still running: {left}"


def test_the_timer_is_restored_after_a_call() -> None:
    import signal

    before = signal.getsignal(signal.SIGALRM)
    assert call_in_time(lambda x: x + 1, "f(1)", 1) == 2
    assert signal.getsignal(signal.SIGALRM) is before
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_an_exception_swallowing_answer_is_still_stopped() -> None:
    def stubborn(height, width, num_holes, hole_size, rng):
        while True:
            try:
                while True:
                    pass
            except Exception:  # a learner's catch-all: the time limit is not an Exception
                continue

    result = check("02.nonoverlapping_holes", stubborn, quiet=True)
    assert not result.passed and "did not return" in result.message


@pytest.mark.parametrize(("height", "width", "n", "size"), [(64, 64, 16, (16, 16)), (32, 32, 4, (16, 16)),
                                                              (30, 40, 12, (10, 10)), (64, 64, 8, (16, 16))])
def test_hrlib_sampler_fills_what_fits(height: int, width: int, n: int, size: tuple[int, int]) -> None:
    for seed in range(50):
        holes = nonoverlapping_holes(height, width, n, size, rng=np.random.default_rng(seed))
        assert holes.shape == (n, 4)


def test_free_corner_sampling_alone_gets_stuck_on_exact_tilings() -> None:
    """What the exercise's hint now says: picking among free corners can run out of room although holes fit."""
    stuck = 0
    for seed in range(50):
        try:
            wrong_02._free_corners(64, 64, 16, (16, 16), np.random.default_rng(seed))
        except ValueError:
            stuck += 1
    assert stuck >= 45
