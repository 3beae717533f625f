"""The repaint throttle bounds updates per second whatever the token rate."""

import threading
import time

from vstream.refresher import follow
from vstream.streaming import Stream
from vstream.throttle import Throttle


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_throttle_allows_one_update_per_interval():
    clock = FakeClock()
    throttle = Throttle(rate=20, clock=clock)
    allowed = 0
    for step in range(1000):  # 1000 tokens over one simulated second
        clock.now = step / 1000
        if throttle.due():
            throttle.mark()
            allowed += 1
    assert allowed == 20


def test_follow_bounds_repaints_and_always_paints_the_end():
    # A Stream fed by a thread: pure UI logic, the engine side is covered by the engine tests.
    stream = Stream("t", "p", [], {})
    paints = []

    def feed():
        for i in range(300):
            stream._feed(f"{i} ", [i], None)
            time.sleep(0.002)
        stream._finish("length")

    threading.Thread(target=feed).start()
    started = time.monotonic()
    throttle = follow([stream], lambda final: paints.append((final, stream.text)), rate=20)
    elapsed = time.monotonic() - started
    assert paints[-1] == (True, stream.text)
    assert len(paints) == throttle.updates
    assert len(paints) <= 20 * elapsed + 2


def test_follow_copes_with_a_stream_ending_while_it_paints():
    # The stream ends during a repaint, after follow checked it was running (seen once in CI as
    # a StopIteration from follow).
    stream = Stream("r", "p", [], {})
    stream._feed("x", [1], None)
    paints = []

    def paint(final):
        paints.append(final)
        if not stream.done:
            stream._finish("stop")

    follow([stream], paint, rate=1000)
    assert paints == [False, True]


def test_follow_paints_the_first_token_as_it_arrives():
    # A UI that waits out its repaint interval before the first paint adds up to 50 ms to what the
    # user sees as time to first token (measured on an H100: 52 ms in the UI for 10 ms in the engine).
    stream = Stream("f", "p", [], {})
    painted_at = []

    def paint(final):
        if stream.text and not painted_at:
            painted_at.append(time.monotonic())

    def feed():
        time.sleep(0.02)
        fed_at.append(time.monotonic())
        stream._feed("first", [1], None)
        time.sleep(0.3)
        stream._finish("length")

    fed_at = []
    threading.Thread(target=feed).start()
    follow([stream], paint, rate=2)  # a 500 ms repaint interval makes any wait-out obvious
    assert painted_at and painted_at[0] - fed_at[0] < 0.1, (painted_at, fed_at)


def test_a_catch_up_paint_borrows_the_next_interval():
    clock = FakeClock()
    throttle = Throttle(rate=20, clock=clock)
    throttle.mark()  # t=0: first tokens of some streams
    clock.now = 0.003
    throttle.mark(borrow=True)  # a later stream's first token, painted before it was due
    clock.now = 0.099
    assert not throttle.due()
    clock.now = 0.100
    assert throttle.due()


def test_follow_paints_every_streams_first_token_as_it_arrives():
    # The first request of a batch often gets its token one engine step before the others; on an
    # H100 the others then waited out the interval (8 samples: 29 ms for the first, 79 ms for
    # the rest, where the engine had them all by 29 ms).
    early, late = Stream("a", "p", [], {}), Stream("b", "p", [], {})
    fed_at, shown = {}, {"a": [], "b": []}  # shown: when each non-final paint showed the stream

    def paint(final):
        for stream in (early, late):
            if stream.text and not final:
                shown[stream.request_id].append(time.monotonic())

    def feed():
        for stream, pause in ((early, 0.02), (late, 0.03)):
            time.sleep(pause)
            fed_at[stream.request_id] = time.monotonic()
            stream._feed("token", [1], None)
        for i in range(400):  # then steady tokens for both for about a second
            time.sleep(0.0025)
            early._feed(f" {i}", [i], None)
            late._feed(f" {i}", [i], None)
        early._finish("length")
        late._finish("length")

    threading.Thread(target=feed).start()
    follow([early, late], paint, rate=4)  # 250 ms between repaints
    for name in ("a", "b"):
        assert shown[name][0] - fed_at[name] < 0.1, (shown, fed_at)
    # The catch-up paint borrows the next interval: each stream still sees at most 4 repaints a
    # second (the benchmark's measure: repaints after the first, over the time they span).
    times = shown["a"]
    assert len(times) >= 3, times
    assert (len(times) - 1) / (times[-1] - times[0]) <= 4.0, times
