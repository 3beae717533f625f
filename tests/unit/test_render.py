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


# --- an empty answer explains itself --------------------------------------------------------------


def _ended(text: str, tokens: int, reason: str = "stop", stop_reason=None) -> Stream:
    stream = Stream("req-1", "Write a short poem about the sea.", [1, 2, 3], {})
    if tokens:
        stream._feed(text, list(range(tokens)), None)
    stream._finish(reason, stop_reason=stop_reason)
    return stream


def test_an_answer_that_ends_at_once_with_no_text_says_so_and_suggests_chat_mode():
    stream = _ended("", 1)
    card = render.stream_card(stream, chat_hint="add --chat")
    assert 'class="vstream-note vstream-empty-answer"' in card
    note = _text_of(card)
    assert "the model stopped immediately (1 token, end-of-sequence, no text)" in note
    assert "try chat mode (add --chat)" in note
    assert "try chat mode (add --chat)" in render.plain_summary([stream], chat_hint="add --chat")


def test_in_chat_mode_an_empty_answer_suggests_something_else():
    note = render.empty_answer_note(_ended("\n", 1), chat_hint=None)
    assert note is not None and "chat mode" not in note and "rewording" in note


@pytest.mark.parametrize(
    "stream",
    [
        _ended("Waves", 1),  # it said something
        _ended("", 0, reason="cancelled"),  # stopped by the user
        _ended("", 1, reason="length"),  # max_tokens=1
        _ended("", 1, stop_reason="\n"),  # the caller's own stop string
        _ended("   ", 12),  # not "at once"
    ],
    ids=["text", "cancelled", "length", "stop-string", "later"],
)
def test_other_streams_get_no_note(stream):
    assert render.empty_answer_note(stream, chat_hint="add --chat") is None
    assert "vstream-empty-answer" not in render.stream_card(stream, chat_hint="add --chat")


# --- reasoning --------------------------------------------------------------------------------------


def _thinking_stream(deltas: list[str], *, done: bool = True) -> Stream:
    stream = Stream("req-1", "Think.", [1], {"reasoning": True})
    for i, delta in enumerate(deltas):
        stream._feed(delta, [i], None)
    if done:
        stream._finish("stop")
    return stream


@pytest.mark.parametrize("payload", PAYLOADS)
def test_reasoning_is_escaped_in_the_thinking_block(payload):
    stream = _thinking_stream(["<thi", f"nk>{payload}</th", "ink>", payload])
    assert stream.reasoning == payload and stream.text == payload
    card = render.stream_card(stream)
    assert "<script" not in card and "<img" not in card and "<svg" not in card and "<b>" not in card
    assert _text_of(card).count(payload) == 2


def test_the_thinking_block_says_thinking_then_thought_for_and_can_be_hidden():
    stream = _thinking_stream(["<think>", "hmm, the sea"], done=False)
    card = render.stream_card(stream)
    assert '<details class="vstream-thinking" open' in card and "Thinking…" in card
    stream._feed("</think>Blue.", [9], None)
    stream._finish("stop")
    card = render.stream_card(stream)
    assert '<details class="vstream-thinking" style' in card  # closed once the answer started
    assert re.search(r"Thought for \d+\.\d s \(\d+ tokens\)", card)
    hidden = render.stream_card(stream, hide_thinking=True)
    assert "hmm, the sea" not in hidden and "Thought for" in hidden and "Blue." in hidden
    assert "hmm, the sea" in render.plain_summary([stream]) and "hmm" not in render.plain_summary(
        [stream], hide_thinking=True
    )


def test_a_stream_without_reasoning_has_no_thinking_block():
    stream = Stream("req-1", "Hi", [1], {})
    stream._feed("<think>not split</think>", [1], None)
    stream._finish("stop")
    assert "vstream-thinking" not in render.stream_card(stream)


@pytest.mark.parametrize("text", ["\nstarts on a new line", "\n\ntwo newlines first", "no newline first\n", ""])
def test_a_text_block_shows_its_leading_newlines(text):
    # HTML parsers drop one newline right after <pre>: the block gives them one to drop.
    from vstream.testing import shown_texts

    assert shown_texts(render.text_block(text)) == [text]
