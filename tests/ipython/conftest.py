"""A real IPython InteractiveShell whose display messages are recorded, to count and read them."""

from __future__ import annotations

import pytest
from IPython.core.displaypub import DisplayPublisher
from IPython.core.interactiveshell import InteractiveShell


class RecordingPublisher(DisplayPublisher):
    """Keeps every display/update message the shell would send to a frontend."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.messages = []

    def publish(self, data, metadata=None, source=None, *, transient=None, update=False, **kwargs):
        self.messages.append({"data": data, "transient": transient or {}, "update": update})

    def clear_output(self, wait=False):
        pass

    def for_display(self, display_id):
        return [m for m in self.messages if m["transient"].get("display_id") == display_id]


@pytest.fixture
def shell(host):
    shell = InteractiveShell.instance()
    recorder = RecordingPublisher(shell=shell)
    shell.display_pub = recorder
    if "vstream" not in shell.extension_manager.loaded:
        shell.run_line_magic("load_ext", "vstream")
    shell.recorder = recorder
    yield shell
    recorder.messages.clear()
