"""The collector hand-over's own logic (backends/feeding.py), on stand-ins for vLLM's outputs.

The real path (AsyncLLM's output handler calling ``put``) runs in every engine test; these pin
what those rarely reach: an output that was put before the hand-over, an abort from outside,
an engine error, and a feeder that must never raise into vLLM's output handler.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from loops import run_on_a_fresh_loop
from vstream.backends import feeding
from vstream.streaming import CANCELLED, Stream


class Collector:
    """What ``AsyncLLM.add_request`` returns, as far as attach uses it."""

    def __init__(self, waiting=None) -> None:
        self.waiting = waiting

    def put(self, output) -> None:
        raise AssertionError("the old put was called after the hand-over")

    def get_nowait(self):
        waiting, self.waiting = self.waiting, None
        if isinstance(waiting, Exception):
            raise waiting
        return waiting


def output(text, ids, finished=False, reason=None):
    completion = SimpleNamespace(text=text, token_ids=ids, logprobs=None, finish_reason=reason, stop_reason=None)
    return SimpleNamespace(outputs=[completion], finished=finished)


def run(body):
    # Not asyncio.run here: in the whole suite this thread already runs Playwright's loop.
    return run_on_a_fresh_loop(body, timeout=10)


def test_an_output_put_before_the_hand_over_is_fed_first():
    async def body():
        stream = Stream("r", "p", [1], {})
        collector = Collector(waiting=output("Hello", [5, 6]))
        ended = feeding.attach(collector, stream, logprobs=False)
        collector.put(output(" world", [7], finished=True, reason="length"))
        await ended
        return stream

    stream = run(body)
    assert stream.text == "Hello world" and stream.token_ids == [5, 6, 7] and stream.finish_reason == "length"


def test_an_abort_from_outside_ends_the_stream_as_cancelled():
    async def body():
        stream = Stream("r", "p", [1], {})
        collector = Collector()
        ended = feeding.attach(collector, stream, logprobs=False)
        collector.put(output("Hi", [5]))
        collector.put(output("", [], finished=True, reason="abort"))
        await ended
        return stream

    stream = run(body)
    assert stream.finish_reason == CANCELLED and stream.text == "Hi"


def test_an_engine_error_is_raised_by_the_future_and_leaves_the_stream_to_the_caller():
    async def body():
        stream = Stream("r", "p", [1], {})
        collector = Collector()
        ended = feeding.attach(collector, stream, logprobs=False)
        collector.put(RuntimeError("engine died"))
        with pytest.raises(RuntimeError, match="engine died"):
            await ended
        return stream

    assert not run(body).done  # LocalBackend.run finishes it with the error it names


def test_an_error_already_waiting_is_raised_too():
    async def body():
        ended = feeding.attach(Collector(waiting=RuntimeError("dead")), Stream("r", "p", [1], {}), logprobs=False)
        with pytest.raises(RuntimeError, match="dead"):
            await ended

    run(body)


def test_a_malformed_output_fails_the_request_not_vllms_output_handler():
    async def body():
        collector = Collector()
        ended = feeding.attach(collector, Stream("r", "p", [1], {}), logprobs=False)
        collector.put(SimpleNamespace(outputs=[]))  # does not raise here
        with pytest.raises(IndexError):
            await ended

    run(body)


def test_after_a_cancel_later_outputs_are_ignored():
    async def body():
        stream = Stream("r", "p", [1], {})
        collector = Collector()
        ended = feeding.attach(collector, stream, logprobs=False)
        ended.cancel()  # the request's task was cancelled; it ends the stream itself
        collector.put(output("late", [9], finished=True, reason="abort"))
        return stream

    stream = run(body)
    assert stream.text == "" and not stream.done
