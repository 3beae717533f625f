"""vLLM's outputs straight into a Stream, from inside AsyncLLM's own output handler.

``AsyncLLM.generate()`` passes each output through a per-request queue to the request's own
task, so every stream costs a task switch and two generator resumptions per engine step before
its delta reaches the Stream. ``AsyncLLM.add_request()`` returns that queue (a
``RequestOutputCollector``, in vLLM 0.26 and 0.32 alike), and the output processor hands it
each output, the final abort output and any engine error through its ``put``. ``attach`` takes
``put`` over, so the Stream gets its delta in the step that decoded it, and the request's task
only waits for the end.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ..streaming import CANCELLED, Stream, TokenLogprob

ABORTED = "abort"  # vLLM's finish reason for an aborted request


def attach(collector: Any, stream: Stream, *, logprobs: bool) -> asyncio.Future[None]:
    """Feed ``stream`` from ``collector`` from now on, first with what it holds already. The
    future ends with the request; it raises what the engine put (its EngineDeadError)."""
    ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    feed = _Feeder(stream, ended, logprobs=logprobs)
    try:
        waiting = collector.get_nowait()  # put before this call (merged deltas), or an error
    except Exception as exc:
        waiting = exc
    collector.put = feed  # no await in between: nothing is put to the old method meanwhile
    if waiting is not None:
        feed(waiting)
    return ended


class _Feeder:
    """The collector's ``put``: one RequestOutput (or an exception) into the Stream."""

    def __init__(self, stream: Stream, ended: asyncio.Future[None], *, logprobs: bool) -> None:
        self.stream = stream
        self.ended = ended
        self.logprobs = logprobs

    def __call__(self, output: Any) -> None:
        # This runs in vLLM's output handler: raising here would stop it for every request.
        ended = self.ended
        if ended.done():  # cancelled: the request's task ends the stream itself
            return
        try:
            if isinstance(output, BaseException):
                ended.set_exception(output)
                return
            completion = output.outputs[0]
            token_ids = list(completion.token_ids)
            stream = self.stream
            logprobs = _token_logprobs(completion.logprobs, token_ids) if self.logprobs else None
            stream._feed(completion.text, token_ids, logprobs)
            if output.finished:
                reason = completion.finish_reason or "stop"
                if reason == ABORTED:  # aborted in the engine by someone else's call
                    stream._finish(CANCELLED)
                else:
                    stream._finish(reason, stop_reason=completion.stop_reason)
                ended.set_result(None)
        except Exception as exc:
            ended.set_exception(exc)


def _token_logprobs(positions: Any, token_ids: list[int]) -> list[TokenLogprob]:
    out = []
    for token_id, position in zip(token_ids, positions or (), strict=False):
        if not position:
            continue
        chosen = position.get(token_id)
        ranked = sorted(position.items(), key=lambda item: item[1].rank if item[1].rank is not None else 1 << 30)
        top = tuple((entry.decoded_token or "", float(entry.logprob)) for _tid, entry in ranked)
        if chosen is None:
            continue
        out.append(TokenLogprob(chosen.decoded_token or "", float(chosen.logprob), top))
    return out
