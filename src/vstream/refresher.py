"""Follow running streams and repaint a view at a bounded rate (rich's Live, tqdm's mininterval).

``follow`` blocks the calling thread: the magic calls it on the kernel's main thread (so Ctrl-C
lands here and cancels the requests), the panel on a worker thread of its own (so a busy cell
does not freeze the panel).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from .streaming import Stream
from .throttle import DEFAULT_RATE, Throttle

Paint = Callable[[bool], None]  # paint(final)


def follow(streams: Sequence[Stream], paint: Paint, *, rate: float = DEFAULT_RATE) -> Throttle:
    """Repaint while ``streams`` run, at most ``rate`` times a second; always paint the end.

    KeyboardInterrupt cancels every stream in the engine, paints the partial result, re-raises.
    Returns the throttle, whose ``updates`` counts the repaints.
    """
    throttle = Throttle(rate)
    seen = -1
    shown_tokens = False
    try:
        while True:
            versions = [stream.version for stream in streams]
            version = sum(versions)
            finished = all(stream.done for stream in streams)
            if finished:
                break
            # The first token is painted at once (the empty view before it doesn't count against
            # the rate), so the UI's time to first token is the engine's.
            first_tokens = not shown_tokens and any(stream.metrics.tokens for stream in streams)
            if version != seen and (throttle.due() or first_tokens):
                seen = version
                shown_tokens = shown_tokens or first_tokens
                paint(False)
                throttle.mark()
            # Until the first token is shown, wake on any change so it is painted as it arrives;
            # then sleep until the next repaint may happen, but wake at once when a stream ends,
            # so the final text is shown as soon as it exists.
            running = next((i for i, stream in enumerate(streams) if not stream.done), None)
            if running is None:  # all may have ended since the check above
                continue
            if not shown_tokens:
                streams[running].wait_changed(versions[running], throttle.interval)
            else:
                streams[running].wait_done(max(throttle.wait_time(), throttle.interval / 4))
    except KeyboardInterrupt:
        for stream in streams:
            stream.cancel(wait=False)
        for stream in streams:
            stream.cancel(wait=True)
        paint(True)
        throttle.mark()
        raise
    paint(True)
    throttle.mark()
    return throttle
