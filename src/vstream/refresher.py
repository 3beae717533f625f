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
    unshown = set(range(len(streams)))  # streams whose first token is not on screen yet
    try:
        while True:
            versions = [stream.version for stream in streams]
            version = sum(versions)
            finished = all(stream.done for stream in streams)
            if finished:
                break
            # Each stream's first token is painted as it arrives, so the UI's time to first token
            # is the engine's for every stream of a batch (the first request of a batch often
            # gets its token a step before the others, and waiting out the interval for them
            # cost 50 ms). The empty view before any token doesn't count against the rate; a
            # catch-up paint for a later stream borrows the next interval, so the rate holds.
            arrived = {i for i in unshown if streams[i].metrics.tokens}
            if version != seen and (throttle.due() or arrived):
                catch_up = not throttle.due() and len(unshown) < len(streams)
                seen = version
                unshown -= arrived
                paint(False)
                throttle.mark(borrow=catch_up)
            # While a stream has shown nothing, wake as soon as it changes; otherwise sleep until
            # the next repaint may happen, but wake at once when a stream ends, so the final text
            # is shown as soon as it exists.
            awaited = next((i for i in sorted(unshown) if not streams[i].done), None)
            running = next((i for i, stream in enumerate(streams) if not stream.done), None)
            if running is None:  # all may have ended since the check above
                continue
            pause = max(throttle.wait_time(), throttle.interval / 4)
            if awaited is not None:
                streams[awaited].wait_changed(versions[awaited], pause)
            else:
                streams[running].wait_done(pause)
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
