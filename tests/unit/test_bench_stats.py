"""The benchmark's statistics: how sure a paired median is, and when a verdict cannot be trusted."""

from __future__ import annotations

import random

import pytest
from benchmarks import report, stats
from benchmarks.records import Beside, Cell, Result, Run, _build


def test_median_interval_takes_the_binomial_order_statistics():
    assert stats.median_interval(range(10)) == (1, 8)  # x(2), x(9): 97.9 % coverage
    assert stats.median_interval(range(8)) == (0, 7)  # x(2), x(7) would cover only 93 %
    assert stats.median_interval(range(20)) == (5, 14)
    assert stats.median_interval(range(5)) is None  # even (min, max) covers only 94 %
    assert stats.median_interval([None, 3.0, *range(6)]) == (0, 5)  # gaps are skipped


def test_median_interval_covers_the_true_median_of_a_long_tailed_noise():
    rng = random.Random(7)
    trials, covered = 2000, 0
    for _ in range(trials):
        low, high = stats.median_interval(rng.lognormvariate(0.0, 0.3) for _ in range(10))
        covered += low <= 1.0 <= high  # lognormal(0, s) has median 1 whatever s is
    assert covered / trials >= 0.95


def _run(path: str, tok_s: float, cpu: float) -> Run:
    return Run(path, 1, 64, tok_s, tok_s, 30.0, 1.0, cpu)


def test_a_cell_pairs_each_run_with_the_raw_run_beside_it():
    # The host's speed moves between rounds (raw 100, 60, 140 ...); the path runs at 0.9 x the raw
    # run next to it every time, so the paired ratio is 0.9 exactly while unpaired medians are not.
    hosts = [100.0, 60.0, 140.0, 90.0, 110.0, 70.0]
    cell = Cell("api", 1, 64, "eager", pairs=[(_run("raw", h, 200.0), _run("api", 0.9 * h, 230.0)) for h in hosts])
    ratio, interval = cell.ratio("agg_tok_s")
    assert ratio == pytest.approx(0.9) and interval == pytest.approx((0.9, 0.9))
    extra, interval = cell.extra("cpu_us_per_token")
    assert extra == pytest.approx(30.0) and interval == pytest.approx((30.0, 30.0))


def test_a_verdict_is_unresolved_only_when_its_interval_straddles_the_limit():
    assert report.verdict(True, (10.0, 30.0), 20.0) == "pass (unresolved)"
    assert report.verdict(False, (10.0, 30.0), 20.0) == "miss (unresolved)"
    assert report.verdict(True, (5.0, 15.0), 20.0) == "pass"
    assert report.verdict(False, (25.0, 35.0), 20.0) == "**miss**"
    assert report.verdict(True, None, 20.0) == "pass"  # too few pairs for an interval: the median alone


def test_records_read_back_as_the_same_typed_objects():
    cell = Cell("panel", 8, 32, "graphs", logprobs=True, pairs=[(_run("raw", 100, 50), _run("panel", 99, 60))],
                beside=[Beside(0.99, 3.0, 0.5, True, 2048.0)], errors=["x"])  # fmt: skip
    result = Result("cpu", "CPU", "2026-12-01T00:00:00+00:00", "cmd", [1.0, 2.0], cells=[cell])
    import dataclasses
    import json

    again = _build(Result, json.loads(json.dumps(dataclasses.asdict(result))))
    assert again == result
    assert isinstance(again.cells[0].pairs[0][1], Run) and isinstance(again.cells[0].beside[0], Beside)
