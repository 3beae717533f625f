"""Per-run summaries: every runner returns one record per stream, in ``perf_counter`` seconds.

A record is ``{"start", "first", "last", "done", "tokens", "text"}`` where ``start`` is when the
batch was submitted (the same for every stream of a run), ``first``/``last`` when the consumer saw
the first/last token and ``done`` when the path reported the end (for UI paths: the final paint).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from typing import Any


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear-interpolated percentile (q in [0, 100]); None for no values."""
    data = sorted(v for v in values if v is not None)
    if not data:
        return None
    if len(data) == 1:
        return data[0]
    pos = (len(data) - 1) * q / 100.0
    low, high = math.floor(pos), math.ceil(pos)
    return data[low] + (data[high] - data[low]) * (pos - low)


def median(values: Iterable[float | None]) -> float | None:
    data = [v for v in values if v is not None]
    return statistics.median(data) if data else None


def summarise(records: Sequence[dict[str, Any]], expected_tokens: int) -> dict[str, Any]:
    """One run (one batch of streams) → TTFT percentiles, decode and aggregate speed."""
    start = min(r["start"] for r in records)
    ttft = [(r["first"] - r["start"]) * 1000 for r in records if r["first"] is not None]
    decode = [
        (r["tokens"] - 1) / (r["last"] - r["first"])
        for r in records
        if r["first"] is not None
        and r["last"] is not None
        and r["last"] > r["first"]
        and r["tokens"] > 1
    ]
    total = sum(r["tokens"] for r in records)
    last = max((r["last"] for r in records if r["last"] is not None), default=None)
    done = max(r["done"] for r in records)
    return {
        "streams": len(records),
        "tokens": total,
        "tokens_ok": all(r["tokens"] == expected_tokens for r in records),
        "ttft_ms_p50": percentile(ttft, 50),
        "ttft_ms_p95": percentile(ttft, 95),
        "decode_tok_s": median(decode),  # per stream, median over the batch
        "agg_tok_s": total / (last - start) if last and last > start else None,
        "e2e_tok_s": total / (done - start) if done > start else None,  # up to the path's end
        "e2e_s": done - start,
    }


def combine(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Repetitions of one path at one size → medians of each numeric field, runs kept."""
    out: dict[str, Any] = {}
    for key, value in runs[0].items():
        if isinstance(value, bool):
            out[key] = all(r.get(key, True) for r in runs)
        elif isinstance(value, (int, float)) or value is None:
            out[key] = median(r.get(key) for r in runs)
    out["reps"] = len(runs)
    out["runs"] = list(runs)
    return out


def _pairs(section: dict[str, Any], raw: dict[str, Any], key: str) -> list[tuple[float, float]]:
    """(path, raw) values of ``key`` per round: against the raw run measured next to each run
    (``raw_<key>``), or, in files from before that, against the raw run of the same round."""
    runs, raw_runs = section.get("runs") or [], raw.get("runs") or []
    if runs and all(r.get(f"raw_{key}") is not None for r in runs):
        pairs = [(r[key], r[f"raw_{key}"]) for r in runs]
    elif runs and len(runs) == len(raw_runs):
        pairs = [(r[key], b[key]) for r, b in zip(runs, raw_runs, strict=True)]
    else:
        pairs = []
    return [(a, b) for a, b in pairs if a is not None and b is not None]


def vs_raw(section: dict[str, Any] | None, raw: dict[str, Any], key: str) -> float | None:
    """``section`` ÷ raw for ``key``: the median of per-round ratios, so that a machine whose speed
    drifts between rounds (seen on shared GPU hosts: ±30 % within a minute) compares like with like."""
    if section is None:
        return None
    pairs = _pairs(section, raw, key)
    if not pairs:
        return ratio(section.get(key), raw.get(key))
    return median(a / b for a, b in pairs if b)


def median_interval(values: Iterable[float | None], confidence: float = 0.95) -> tuple[float, float] | None:
    """A distribution-free interval for the median: the order statistics x(k) and x(n+1-k), with
    the largest k whose binomial coverage is at least ``confidence``. No assumption about the
    shape of the host's noise (the pairs seen on shared GPU hosts have long tails both ways);
    None when there are too few values for that confidence (fewer than 6 at 95 %)."""
    data = sorted(v for v in values if v is not None)
    n, best = len(data), None
    for k in range(1, n // 2 + 1):
        tail = sum(math.comb(n, i) for i in range(k)) / 2**n  # P(Binomial(n, 1/2) <= k - 1)
        if 1 - 2 * tail < confidence:
            break
        best = k
    return None if best is None else (data[best - 1], data[n - best])


def vs_raw_interval(
    section: dict[str, Any] | None, raw: dict[str, Any], key: str
) -> tuple[float, float] | None:
    """The 95 % interval of ``vs_raw``'s median: how far the host's noise leaves it uncertain."""
    if section is None:
        return None
    return median_interval(a / b for a, b in _pairs(section, raw, key) if b)


def ttft_vs_raw_interval(section: dict[str, Any] | None, raw: dict[str, Any]) -> tuple[float, float] | None:
    """The 95 % interval of ``ttft_vs_raw``'s median difference, in ms."""
    if section is None:
        return None
    return median_interval(a - b for a, b in _pairs(section, raw, "ttft_ms_p50"))


def round_by_round(
    a: dict[str, Any], b: dict[str, Any], key: str, relative: bool
) -> tuple[float, float] | None:
    """Two paths measured in the same rounds, each against its own raw neighbour: the 95 % interval
    of the per-round comparison of their raw-relative values, as a ratio (a ÷ b) or a difference
    (a - b). None unless both have every round."""
    ra, rb = a.get("runs") or [], b.get("runs") or []
    if not ra or len(ra) != len(rb):
        return None
    values = []
    for x, y in zip(ra, rb, strict=True):
        if None in (x.get(key), x.get(f"raw_{key}"), y.get(key), y.get(f"raw_{key}")):
            return None
        if relative:
            values.append((x[key] / x[f"raw_{key}"]) / (y[key] / y[f"raw_{key}"]))
        else:
            values.append((x[key] - x[f"raw_{key}"]) - (y[key] - y[f"raw_{key}"]))
    return median_interval(values)


def cpu_vs_raw(section: dict[str, Any] | None, raw: dict[str, Any]) -> float | None:
    """Median extra CPU time per token, in µs, that a path spent in the benchmark's process over
    the raw run next to it (paired per round like ``vs_raw``)."""
    if section is None:
        return None
    return median(a - b for a, b in _pairs(section, raw, "cpu_us_per_token"))


def ttft_vs_raw(section: dict[str, Any] | None, raw: dict[str, Any]) -> float | None:
    """Median TTFT difference to raw in ms, paired per round like ``vs_raw``."""
    if section is None:
        return None
    pairs = _pairs(section, raw, "ttft_ms_p50")
    if not pairs:
        a, b = section.get("ttft_ms_p50"), raw.get("ttft_ms_p50")
        return None if a is None or b is None else a - b
    return median(a - b for a, b in pairs)


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b
