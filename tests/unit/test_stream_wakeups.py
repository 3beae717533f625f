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
