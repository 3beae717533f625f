"""Async readers on another loop are woken once per feeding step, not once per stream.

The engine's loop thread feeds every stream of one engine step in one loop iteration; with 64
streams, one cross-thread wake-up each would cost 64 self-pipe writes and 64 reader-loop
wake-ups per token. These tests drive real event loops in two threads (no engine needed: the
Stream is pure Python).
"""

from __future__ import annotations

import asyncio
import threading

from loops import run_on_a_fresh_loop
from vstream.streaming import Stream


class FeedingLoop:
    """An event loop on its own thread, like the EngineHost's."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def step(self, fn) -> None:
        """Run ``fn`` as one callback (one loop iteration) and wait until the loop has moved on."""
        asyncio.run_coroutine_threadsafe(_call_then_yield(fn), self.loop).result(5)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


async def _call_then_yield(fn) -> None:
    fn()
    await asyncio.sleep(0)  # let the flush scheduled by fn run
    await asyncio.sleep(0)


def _streams(n: int) -> list[Stream]:
    return [Stream(f"r{i}", "p", [1], {"max_tokens": 3}) for i in range(n)]


def test_one_step_of_many_streams_wakes_the_reader_loop_once():
    feeder = FeedingLoop()
    streams = _streams(16)
    wakeups = 0

    async def read_all() -> list[str]:
        nonlocal wakeups
        loop = asyncio.get_running_loop()
        original = loop.call_soon_threadsafe

        def counting(*args, **kwargs):
            nonlocal wakeups
            wakeups += 1
            return original(*args, **kwargs)

        loop.call_soon_threadsafe = counting  # type: ignore[method-assign]

        async def read(stream: Stream) -> str:
            return "".join([piece async for piece in stream])

        readers = [asyncio.ensure_future(read(s)) for s in streams]
        await asyncio.sleep(0.05)  # every reader is now parked on its stream
        # asyncio.to_thread itself wakes this loop once when the step is done: count that apart.
        before = wakeups
        await asyncio.to_thread(feeder.step, lambda: None)
        baseline = wakeups - before
        counted = []
        for token in ("a", "b", "c"):
            before = wakeups
            await asyncio.to_thread(feeder.step, lambda t=token: [s._feed(t, [7], None) for s in streams])
            await asyncio.sleep(0.05)  # readers take the delta and park again
            counted.append(wakeups - before - baseline)
        await asyncio.to_thread(feeder.step, lambda: [s._finish("length") for s in streams])
        texts = await asyncio.wait_for(asyncio.gather(*readers), 5)
        assert counted == [1, 1, 1], f"reader loop woken {counted} times per step for {len(streams)} streams"
        return texts

    try:
        assert run_on_a_fresh_loop(read_all, timeout=30) == ["abc"] * len(streams)
    finally:
        feeder.close()


def test_feeding_from_a_plain_thread_wakes_readers_at_once():
    # shutdown() finishes streams from the caller's thread, where no loop runs to flush later.
    stream = _streams(1)[0]

    async def read() -> str:
        reader = asyncio.ensure_future(_collect(stream))
        await asyncio.sleep(0.05)
        threading.Thread(target=lambda: (stream._feed("x", [1], None), stream._finish("cancelled"))).start()
        return await asyncio.wait_for(reader, 2)

    assert run_on_a_fresh_loop(read, timeout=30) == "x"
    assert stream.cancelled


async def _collect(stream: Stream) -> str:
    return "".join([piece async for piece in stream])


# --- threads that wait (a plain ``for`` in a cell, the refreshers' wait_changed) -------------------


def _read_in_thread(stream: Stream, out: list[str]) -> threading.Thread:
    thread = threading.Thread(target=lambda: out.append("".join(stream)), daemon=True)
    thread.start()
    return thread


def test_threads_reading_one_stream_each_get_every_delta_fed_from_a_loop():
    feeder = FeedingLoop()
    stream = _streams(1)[0]
    texts: list[str] = []
    readers = [_read_in_thread(stream, texts) for _ in range(3)]
    try:
        for token in "abcdef":
            feeder.step(lambda t=token: stream._feed(t, [7], None))
        feeder.step(lambda: stream._finish("length"))
        for reader in readers:
            reader.join(5)
        assert texts == ["abcdef"] * 3
    finally:
        feeder.close()


def test_a_thread_parked_past_its_timeout_still_wakes_on_the_next_delta():
    # A parked reader looks again every PARK_S seconds and stays registered; a wake that comes
    # after it timed out must neither be lost nor raise in the feeding thread (its gate is open).
    feeder = FeedingLoop()
    stream = _streams(1)[0]
    texts: list[str] = []
    reader = _read_in_thread(stream, texts)
    try:
        threading.Event().wait(0.6)  # two timeouts
        assert len(stream._gates) == 1, "the parked reader registered its gate once"
        feeder.step(lambda: stream._feed("a", [7], None))
        feeder.step(lambda: stream._feed("b", [7], None))
        feeder.step(lambda: stream._finish("length"))
        reader.join(5)
        assert texts == ["ab"]
    finally:
        feeder.close()


def test_wait_changed_returns_at_a_change_and_times_out_without_one():
    feeder = FeedingLoop()
    stream = _streams(1)[0]
    try:
        assert stream.wait_changed(stream.version, timeout=0.05) is False
        seen = stream.version
        woke: list[bool] = []
        waiter = threading.Thread(target=lambda: woke.append(stream.wait_changed(seen, timeout=5)), daemon=True)
        waiter.start()
        threading.Event().wait(0.05)
        feeder.step(lambda: stream._feed("a", [7], None))
        waiter.join(5)
        assert woke == [True] and stream.version == seen + 1
        assert stream.wait_changed(seen, timeout=0) is True  # already changed: no wait
    finally:
        feeder.close()


# --- steps faster than WAKE_EVERY_S (a GPU's 2-3 ms): readers woken at most that often -----------


def _feed_steps(feeder: FeedingLoop, streams: list[Stream], steps: int, every_s: float) -> None:
    """``steps`` engine steps on the feeding loop, ``every_s`` apart, each feeding every stream."""

    async def run() -> None:
        for step in range(steps):
            for stream in streams:
                stream._feed(f"{step} ", [7], None)
            await asyncio.sleep(every_s)

    asyncio.run_coroutine_threadsafe(run(), feeder.loop).result(30)


def test_fast_steps_wake_a_reader_loop_at_most_every_wake_interval_and_lose_nothing():
    from vstream.streaming import WAKE_EVERY_S

    feeder = FeedingLoop()
    streams = _streams(8)
    steps, every_s = 100, 0.001
    got: list[list[str]] = [[] for _ in streams]

    async def read(stream: Stream, into: list[str]) -> None:
        async for piece in stream:
            into.append(piece)

    async def read_all() -> tuple[int, float, list[int]]:
        loop = asyncio.get_running_loop()
        wakeups = 0
        original = loop.call_soon_threadsafe

        def counting(*args, **kwargs):
            nonlocal wakeups
            wakeups += 1
            return original(*args, **kwargs)

        loop.call_soon_threadsafe = counting  # type: ignore[method-assign]
        readers = [asyncio.ensure_future(read(s, into)) for s, into in zip(streams, got, strict=True)]
        await asyncio.sleep(0.05)
        started = loop.time()
        await asyncio.to_thread(_feed_steps, feeder, streams, steps, every_s)
        took = loop.time() - started
        await asyncio.sleep(3 * WAKE_EVERY_S)  # the last steps' held wake comes by its timer
        read_before_the_end = [len(into) for into in got]
        counted = wakeups
        await asyncio.to_thread(feeder.step, lambda: [s._finish("length") for s in streams])
        await asyncio.wait_for(asyncio.gather(*readers), 5)
        return counted, took, read_before_the_end

    try:
        wakeups, took, read_before_the_end = run_on_a_fresh_loop(read_all, timeout=60)
    finally:
        feeder.close()
    assert got == [[f"{i} " for i in range(steps)]] * len(streams)
    assert read_before_the_end == [steps] * len(streams), "a held wake waited for the streams' end"
    # One wake per WAKE_EVERY_S of feeding (the first step's at once), and to_thread's hand-back;
    # one per step (100 or more) would mean no coalescing at all.
    ceiling = took / WAKE_EVERY_S + 4
    assert wakeups <= ceiling, f"{wakeups} reader-loop wake-ups in {took * 1e3:.0f} ms of 1 ms steps"


def test_a_streams_first_delta_and_its_end_reach_its_reader_at_once(monkeypatch):
    # An async reader (a waiting thread would also find held text when its PARK_S wait runs out).
    from vstream import streaming

    monkeypatch.setattr(streaming, "WAKE_EVERY_S", 5.0)  # a held wake would take 5-10 s
    feeder = FeedingLoop()
    stream, other = _streams(2)

    async def scenario() -> list[tuple[str, float]]:
        loop = asyncio.get_running_loop()
        seen: list[tuple[str, float]] = []

        async def read() -> None:
            async for delta in stream:
                seen.append((delta, loop.time()))

        readers = [asyncio.ensure_future(read()), asyncio.ensure_future(_collect(other))]
        await asyncio.sleep(0.05)
        await asyncio.to_thread(feeder.step, lambda: other._feed("x", [7], None))  # a flush just happened...
        fed = loop.time()
        await asyncio.to_thread(feeder.step, lambda: stream._feed("first", [7], None))  # ...yet this goes at once
        while not seen and loop.time() - fed < 3:
            await asyncio.sleep(0.01)
        await asyncio.to_thread(feeder.step, lambda: stream._feed("middle", [7], None))  # held: 5 s
        ended = loop.time()
        await asyncio.to_thread(feeder.step, lambda: stream._finish("length"))  # wakes at once, with it
        await asyncio.wait_for(readers[0], 3)
        other._finish("length")
        await asyncio.wait_for(readers[1], 3)
        return [(delta, at - (fed if delta == "first" else ended)) for delta, at in seen]

    try:
        seen = run_on_a_fresh_loop(scenario, timeout=30)
    finally:
        feeder.close()
    assert [delta for delta, _ in seen] == ["first", "middle"]
    assert all(after < 1.0 for _, after in seen), seen


def test_a_wake_held_when_the_feeding_loop_stops_is_given_by_the_streams_end():
    # Engine shutdown: the loop stops with a held wake; the streams are then ended from the
    # caller's thread, and their readers must not wait forever.
    feeder = FeedingLoop()
    stream = _streams(1)[0]
    texts: list[str] = []
    reader = _read_in_thread(stream, texts)
    try:
        threading.Event().wait(0.05)
        feeder.step(lambda: stream._feed("a", [7], None))  # first: at once
        feeder.step(lambda: stream._feed("b", [7], None))  # held (within WAKE_EVERY_S)
    finally:
        feeder.close()
    stream._finish("cancelled")
    reader.join(2)
    assert texts == ["ab"]
