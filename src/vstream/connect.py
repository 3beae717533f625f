"""``vstream.connect(base_url)``: make the kernel's host stream from a shared ``vllm serve``.

After it, ``vstream.engine()``, ``%%vstream``, ``vstream.Panel()`` and every Stream go to the
server. ``vstream.engine(model=...)`` keeps the connection and switches to that served model;
``vstream.engine(base_url=None, model="smollm2-135m-instruct")`` goes back to an in-process
engine.
"""

from __future__ import annotations

import atexit
import os

from . import engine as _engine
from .backends.remote import AUTO_MODEL, split_base_url
from .config import EngineConfig
from .engine import STOPPED, EngineHost

API_KEY_VARIABLES = ("VSTREAM_API_KEY", "OPENAI_API_KEY")
BASE_URL_VARIABLE = "VSTREAM_BASE_URL"


def api_key_from_env() -> str | None:
    for name in API_KEY_VARIABLES:
        value = os.environ.get(name)
        if value:
            return value
    return None


def connect(
    base_url: str | None = None,
    api_key: str | None = None,
    model: str | None = None,
    *,
    wait: bool = True,
    timeout: float = 60.0,
) -> EngineHost:
    """Stream from the OpenAI-compatible vLLM server at ``base_url`` (default: $VSTREAM_BASE_URL).

    ``api_key`` defaults to $VSTREAM_API_KEY, then $OPENAI_API_KEY; it is kept on the host, never
    in its config, reprs or messages. ``model`` defaults to the server's (first) model. An
    in-process engine of this kernel is shut down first. With ``wait`` (the default) this
    returns once the server answered, and raises ``EngineStartError`` saying why if it did not.
    """
    base_url = base_url or os.environ.get(BASE_URL_VARIABLE)
    if not base_url:
        raise ValueError(
            f"give the server's address, e.g. vstream.connect('http://127.0.0.1:8000'), or set ${BASE_URL_VARIABLE}"
        )
    root, _address = split_base_url(base_url)
    key = api_key or api_key_from_env()
    settings = {"base_url": root, "model": model or AUTO_MODEL}
    with _engine._host_lock:
        host = _engine._host
        if host is None:
            # engine() would start at once; the key must be on the host before its backend exists.
            host = EngineHost(EngineConfig.from_kwargs(**settings))
            host.api_key = key
            _engine._host = host
            atexit.register(_engine._shutdown_at_exit)
            host.start()
        else:
            wanted = EngineConfig.from_kwargs(host.config, **settings)
            if wanted != host.config or key != host.api_key or host.state == STOPPED:
                if host.state != STOPPED:
                    what = (
                        "the in-process engine"
                        if not host.config.base_url
                        else f"the connection to {host.config.base_url}"
                    )
                    print(f"vstream: closing {what}; connecting to {root}")
                host.api_key = key
                host.shutdown()
                host.config = wanted
            host.start()
    if wait:
        info = host.wait_ready(timeout)
        print(
            f"vstream: connected to {root}: {info.model}, vLLM {info.vllm_version}, context {info.max_model_len}"
        )
    return host
