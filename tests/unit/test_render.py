"""Model output and prompts are untrusted: whatever becomes HTML shows as text and runs nothing."""

import html
import re

import pytest

from vstream import render
from vstream.streaming import Stream, TokenLogprob

PAYLOADS = [
    "<script>alert(1)</script>",
    '<img src=x onerror="document.title=\'pwned\'">',
    "\" onmouseover=\"alert(1)",
    "' onfocus='alert(1)",
    "<svg/onload=alert(1)>",
    "</pre><b>bold</b>",
    "&lt;already escaped&gt;",
    "<a href=\"javascript:alert(1)\">x</a>",
]


def _text_of(fragment: str) -> str:
    return html.unescape(re.sub(r"<[^>]*>", "", fragment))


@pytest.mark.parametrize("payload", PAYLOADS)
def test_escape_leaves_no_markup(payload):
    escaped = render.escape(payload)
    assert "<" not in escaped and ">" not in escaped and '"' not in escaped and "'" not in escaped
    assert html.unescape(escaped) == payload


@pytest.mark.parametrize("payload", PAYLOADS)
def test_stream_card_shows_payload_as_text(payload):
    stream = Stream("req-<1>", payload, [], {})
    stream._feed(payload, [1, 2], None)
    stream._finish("stop", stop_reason=payload)
    card = render.stream_card(stream, title=payload)
    assert "<script" not in card and "<img" not in card and "<svg" not in card and "<b>" not in card
    assert payload in _text_of(card)


@pytest.mark.parametrize("payload", PAYLOADS)
def test_logprob_tokens_escape_text_and_hover_titles(payload):
    tokens = [TokenLogprob(payload, -0.1, ((payload, -0.1), ("<i>", -2.0)))]
    fragment = render.logprob_tokens(tokens)
    titles = re.findall(r'title="([^"]*)"', fragment)
    assert len(titles) == 1  # the payload's quotes did not open a second attribute
    assert repr(payload) in html.unescape(titles[0])  # tokens are shown as Python literals
    assert "<i>" not in fragment and "<script" not in fragment


def test_probability_colour_goes_from_red_to_green():
    assert render.probability_colour(0.0).startswith("hsla(120")
    assert render.probability_colour(-20.0).startswith("hsla(0")
