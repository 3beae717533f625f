"""``%load_ext vstream`` reads $VSTREAM_BASE_URL: with it set, the extension connects to that
server instead of starting an in-process engine (no server here: a closed port, a bad URL).

A real IPython InteractiveShell; the process-wide host slot is swapped for an empty one and put
back afterwards. tests/remote/test_load_ext.py streams from a real `vllm serve`.
"""

from __future__ import annotations

import importlib
import socket

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell


@pytest.fixture
def fresh_shell(monkeypatch):
    engine_module = importlib.import_module("vstream.engine")
    monkeypatch.setattr(engine_module, "_host", None)
    monkeypatch.delenv("VSTREAM_API_KEY", raising=False)
    shell = InteractiveShell.instance()
    if "vstream" in shell.extension_manager.loaded:
        shell.extension_manager.unload_extension("vstream")
    yield shell
    if engine_module._host is not None:
        engine_module._host.shutdown()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_base_url_makes_load_ext_connect_instead_of_starting_an_engine(fresh_shell, monkeypatch, capsys):
    import vstream

    url = f"http://127.0.0.1:{_closed_port()}"
    monkeypatch.setenv("VSTREAM_BASE_URL", url + "/v1")
    fresh_shell.run_line_magic("load_ext", "vstream")
    out = capsys.readouterr().out
    assert f"vstream: connecting to {url} (from $VSTREAM_BASE_URL) instead of starting an in-process engine" in out
    host = vstream.current()
    assert host is not None and host.config.base_url == url
    assert type(host._backend).__name__ == "RemoteBackend"
    # Nothing listens there: the first cell says so, naming the server, and starts nothing else.
    with pytest.raises(UsageError, match=f"the engine is not available: could not reach the vLLM server at {url}"):
        fresh_shell.run_cell_magic("vstream", "--max-tokens 3", "Hello")
    assert vstream.current() is host and host.config.base_url == url


def test_unusable_base_url_starts_nothing_and_says_why(fresh_shell, monkeypatch, capsys):
    import vstream

    monkeypatch.setenv("VSTREAM_BASE_URL", "ftp://gpu-box:8000")
    fresh_shell.run_line_magic("load_ext", "vstream")
    out = capsys.readouterr().out
    assert "vstream: $VSTREAM_BASE_URL is set but not usable" in out and "ftp://gpu-box:8000" in out
    assert vstream.current() is None
