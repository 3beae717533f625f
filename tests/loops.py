"""Running a coroutine the way a user's own async code does, whatever else the test session runs."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable, Coroutine
from typing import Any


def run_on_a_fresh_loop(main: Callable[[], Coroutine[Any, Any, Any]], timeout: float = 300) -> Any:
    """asyncio.run(main()) on its own thread: the way a user's async code owns a loop of its own
    (and independent of the loop Playwright keeps running on the main thread in browser tests)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, main()).result(timeout=timeout)
