"""The benchmark's statistics: how sure a paired median is, and when a verdict cannot be trusted."""

from __future__ import annotations

import random

import pytest
from benchmarks import _stats, _verdicts


def test_median_interval_takes_the_binomial_order_statistics():
    assert _stats.median_interval(range(10)) == (1, 8)  # x(2), x(9): 97.9 % coverage
    assert _stats.median_interval(range(8)) == (0, 7)  # x(2), x(7) would cover only 93 %
    assert _stats.median_interval(range(20)) == (5, 14)
    assert _stats.median_interval(range(5)) is None  # even (min, max) covers only 94 %
    assert _stats.median_interval([None, 3.0, *range(6)]) is not None  # gaps are skipped


def test_median_interval_covers_the_true_median_of_a_long_tailed_noise():
    rng = random.Random(7)
    true_median = 1.0  # lognormal(0, s) has median exp(0) = 1 whatever s is
    trials, covered = 2000, 0
    for _ in range(trials):
        low, high = _stats.median_interval(rng.lognormvariate(0.0, 0.3) for _ in range(10))
        covered += low <= true_median <= high
    assert covered / trials >= 0.95


def _section(ratios: list[float]) -> dict:
    """A path measured over rounds, each paired with its own raw run of 100 tok/s."""
    runs = [{"agg_tok_s": 100 * r, "raw_agg_tok_s": 100.0} for r in ratios]
    return {"agg_tok_s": 100 * sorted(ratios)[len(ratios) // 2], "runs": runs}


def test_a_verdict_is_unresolved_when_the_pairs_straddle_the_target():
    raw = {"agg_tok_s": 100.0, "runs": []}
    noisy = _verdicts._ratio_check(
        "x", _section([0.7, 0.8, 0.9, 0.95, 0.96, 1.0, 1.1, 1.2, 1.3, 1.4]), raw, "agg_tok_s", 0.98
    )
    tight_miss = _verdicts._ratio_check(
        "x", _section([0.90, 0.91, 0.92, 0.92, 0.93, 0.93, 0.94, 0.95, 0.95, 0.96]), raw, "agg_tok_s", 0.98
    )
    tight_pass = _verdicts._ratio_check(
        "x", _section([0.99, 1.0, 1.0, 1.01, 1.01, 1.02, 1.02, 1.03, 1.03, 1.04]), raw, "agg_tok_s", 0.98
    )
    assert noisy["resolved"] is False and "95 % interval 0.800 to 1.300" in noisy["detail"]
    assert tight_miss["pass"] is False and tight_miss["resolved"] is True
    assert tight_pass["pass"] is True and tight_pass["resolved"] is True


def test_round_by_round_compares_two_paths_each_against_its_own_raw_neighbour():
    # Round i: the API ran at 1.0 x its raw neighbour, the server at 0.5 x its own; the host's
    # speed (the raw runs) moved between rounds and must cancel out.
    hosts = [100.0, 60.0, 140.0, 90.0, 110.0, 70.0, 130.0, 100.0]
    api = {"runs": [{"agg_tok_s": h, "raw_agg_tok_s": h} for h in hosts]}
    server = {
        "runs": [{"agg_tok_s": h * 0.5 * f, "raw_agg_tok_s": h * f} for h, f in zip(hosts, hosts[::-1], strict=True)]
    }
    assert _stats.round_by_round(api, server, "agg_tok_s", relative=True) == pytest.approx((2.0, 2.0))
    api["runs"].pop()
    assert _stats.round_by_round(api, server, "agg_tok_s", relative=True) is None  # rounds must match
