"""Thirty-plus bad inputs across the API, the magic and the panel: each one named, none fatal."""

from __future__ import annotations

import math

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

import vstream
from vstream.panel import Panel

pytestmark = [pytest.mark.engine, pytest.mark.reliability]

API = [
    ("empty prompt", "", {}, "prompt is empty"),
    ("whitespace prompt", " \n\t ", {}, "prompt is empty"),
    ("prompt longer than the context", "lorem ipsum " * 9000, {}, "fills the model's context"),
    ("prompt of the wrong type", 3.14, {}, "prompt must be a string or a non-empty list"),
    ("empty message list", [], {}, "prompt must be a string or a non-empty list"),
    ("message without content", [{"role": "user"}], {}, "must be a dict with string 'role' and 'content'"),
    ("unknown role", [{"role": "root", "content": "x"}], {}, "use 'system', 'user' or 'assistant'"),
    ("lone surrogate in prompt", "abc \udcff", {}, "lone surrogate"),
    ("lone surrogate in a message", [{"role": "user", "content": "\ud83d"}], {}, "lone surrogate"),
    ("NaN temperature", "Hi", {"temperature": math.nan}, "temperature must be a finite number"),
    ("infinite top_p", "Hi", {"top_p": math.inf}, "top_p must be a finite number"),
    ("negative max_tokens", "Hi", {"max_tokens": -1}, "max_tokens must be an integer ≥ 1"),
    ("huge max_tokens", "Hi", {"max_tokens": 10**12}, "max_tokens must be ≤ the model's context"),
    ("float max_tokens", "Hi", {"max_tokens": 12.5}, "max_tokens must be an integer"),
    ("string seed", "Hi", {"seed": "42"}, "seed must be an integer"),
    ("huge seed", "Hi", {"seed": 2**70}, "seed must be an integer"),
    ("empty stop string", "Hi", {"stop": [""]}, "stop strings must be non-empty"),
    ("stop string with a surrogate", "Hi", {"stop": ["\ud800"]}, "not valid Unicode"),
    ("too many stop strings", "Hi", {"stop": [str(i) for i in range(100)]}, "stop takes at most 16 strings"),
    ("huge logprobs", "Hi", {"logprobs": 10**6}, "logprobs must be an integer [0, 20]"),
    ("unknown sampling name", "Hi", {"n": 1000}, "unknown sampling parameter 'n'"),
]

MAGIC = [
    ("--temperature nan", "--temperature must be a finite number"),
    ("--top-p 2", "--top-p must be a number in (0, 1]"),
    ("--min-p -0.5", "--min-p must be a number in [0, 1]"),
    ("--max-tokens -3", "--max-tokens must be an integer ≥ 1"),
    ("--samples 0", "--samples must be an integer in [1, 8]"),
    ("--samples 1000", "--samples must be an integer in [1, 8]"),
    ("--repetition-penalty 0", "--repetition-penalty must be a number in (0, 10]"),
    ("--frequency-penalty 9", "--frequency-penalty must be a number in [-2, 2]"),
    ("--seed -7", "--seed must be an integer"),
    ("--model nobody/not-cached --max-tokens 0", "--max-tokens must be an integer ≥ 1"),
    ("--out 'not a name'", "--out must be a Python variable name"),
]

PANEL = [
    ("top_p", 0.0, "top_p must be"),
    ("max_tokens", 0, "max_tokens must be"),
    ("top_k", -9, "top_k must be"),
    ("max_tokens", 10**9, "max_tokens must be ≤"),
    ("stop", "\\q", "stop: unknown escape \\q"),
]


@pytest.fixture
def serves(host):
    def check():
        assert host.unfinished_requests() == 0
        assert host.generate("The key to happiness is", max_tokens=3, seed=0).token_ids

    return check


@pytest.mark.parametrize(("name", "prompt", "sampling", "message"), API, ids=[c[0] for c in API])
def test_api(host, serves, name, prompt, sampling, message):
    with pytest.raises(vstream.SamplingError) as info:
        host.stream(prompt, **sampling)
    assert message in str(info.value)
    serves()


@pytest.mark.parametrize(("line", "message"), MAGIC, ids=[c[0] for c in MAGIC])
def test_magic(host, serves, line, message):
    shell = InteractiveShell.instance()
    if "vstream" not in shell.extension_manager.loaded:
        shell.run_line_magic("load_ext", "vstream")
    with pytest.raises(UsageError) as info:
        shell.run_cell_magic("vstream", line, "Hello")
    assert message in str(info.value)
    assert host.config.model == vstream.EMBEDDED_MODEL  # a refused cell switched nothing
    serves()


@pytest.mark.parametrize(("control", "value", "message"), PANEL, ids=[f"{c[0]}={c[1]!r}" for c in PANEL])
def test_panel(host, serves, control, value, message):
    panel = Panel("Hello", host=host)
    # What the front end sends when the field is typed into: the column's form, as shown.
    panel.set_state({"forms": [{**panel.forms[0], control: value}]})
    panel._handle_custom_msg({"action": "generate"}, [])  # the Generate button
    assert message in panel.error
    assert not panel.running and not panel.streams
    panel.close()
    serves()


def test_the_table_is_at_least_thirty_cases():
    assert len(API) + len(MAGIC) + len(PANEL) >= 30
