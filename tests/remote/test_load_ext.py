"""``%load_ext vstream`` with $VSTREAM_BASE_URL set connects to that server (a real `vllm serve`)
instead of starting an in-process engine, on a real IPython InteractiveShell.

The kernel's one host is process-wide; the test swaps in an empty slot for it (the session's
in-process engine, if another suite started one, is put back afterwards, untouched).
"""

from __future__ import annotations

import importlib

import pytest
from IPython.core.displaypub import CapturingDisplayPublisher
from IPython.core.interactiveshell import InteractiveShell

from vstream.testing import shown_texts

pytestmark = [pytest.mark.engine, pytest.mark.remote]


@pytest.fixture
def empty_host_slot(monkeypatch):
    """No kernel host yet (as in a fresh kernel); backends made meanwhile are recorded."""
    engine_module = importlib.import_module("vstream.engine")
    monkeypatch.setattr(engine_module, "_host", None)
    made: list[str] = []
    make = engine_module.EngineHost._make_backend

    def recording(self):
        backend = make(self)
        made.append(type(backend).__name__)
        return backend

    monkeypatch.setattr(engine_module.EngineHost, "_make_backend", recording)
    yield made
    if engine_module._host is not None:
        engine_module._host.shutdown()


@pytest.fixture
def fresh_shell(empty_host_slot):
    shell = InteractiveShell.instance()
    if "vstream" in shell.extension_manager.loaded:
        shell.extension_manager.unload_extension("vstream")
    saved = shell.display_pub
    shell.display_pub = CapturingDisplayPublisher(shell=shell)
    yield shell
    shell.display_pub = saved


def test_load_ext_with_base_url_streams_from_the_server(fresh_shell, empty_host_slot, server, monkeypatch, capsys):
    import vstream

    monkeypatch.setenv("VSTREAM_BASE_URL", server.url)
    monkeypatch.setenv("VSTREAM_API_KEY", server.api_key)

    assert fresh_shell.run_cell("%load_ext vstream").success
    out = capsys.readouterr().out
    assert f"vstream: connecting to {server.url} (from $VSTREAM_BASE_URL)" in out, out
    assert server.api_key not in out
    host = vstream.current()
    assert host is not None and host.config.base_url == server.url

    before = server.metrics().get("vllm:generation_tokens_total", 0.0)
    result = fresh_shell.run_cell(
        "%%vstream --chat --temperature 0 --max-tokens 20 --out answer\nWhat is the capital of France?\n"
    )
    assert result.success, result.error_in_exec
    answer = fresh_shell.user_ns["answer"]
    assert answer.text == "The capital of France is Paris." and answer.finish_reason == "stop"
    assert server.metrics().get("vllm:generation_tokens_total", 0.0) >= before + len(answer.token_ids)

    # The cell's display, repainted as tokens came, ends with the whole answer.
    shown = [m for m in fresh_shell.display_pub.outputs if "text/html" in m["data"]]
    display_id = shown[-1]["transient"]["display_id"]
    final = [m for m in shown if (m["transient"] or {}).get("display_id") == display_id][-1]["data"]
    assert shown_texts(final["text/html"])[0] == answer.text

    # Only the server was used: one host, remote, and no in-process engine was ever made.
    assert vstream.current() is host and host.info.device == "remote"
    assert host.info.device_name == f"127.0.0.1:{server.port}"
    assert empty_host_slot == ["RemoteBackend"]
    assert host.process_ids() == []
