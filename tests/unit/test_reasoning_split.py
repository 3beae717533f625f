"""The <think>…</think> splitter: reasoning and answer come apart whatever way the text is cut
into deltas, markers cut across two deltas included."""

from __future__ import annotations

import pytest

from vstream.reasoning import ANSWER, REASONING, ThinkSplitter, is_thinking_model, starts_inside

TEXT = "<think>\nthe user wants a colour; blue is calm\n</think>\n\nBlue."


def split(deltas: list[str], **kwargs) -> tuple[str, str, list[str]]:
    splitter = ThinkSplitter(**kwargs)
    pieces = [p for delta in deltas for p in splitter.feed(delta)] + splitter.flush()
    reasoning = "".join(t for k, t in pieces if k == REASONING)
    answer = "".join(t for k, t in pieces if k == ANSWER)
    return reasoning, answer, [k for k, _ in pieces]


def test_one_delta():
    reasoning, answer, kinds = split([TEXT])
    assert reasoning == "\nthe user wants a colour; blue is calm\n" and answer == "Blue."
    assert kinds == [REASONING, ANSWER]


@pytest.mark.parametrize("cut", range(1, len(TEXT)))
def test_every_cut_into_two_deltas_gives_the_same_split(cut):
    assert split([TEXT[:cut], TEXT[cut:]])[:2] == split([TEXT])[:2]


def test_a_marker_cut_across_two_deltas():
    # "</th" + "ink>": neither delta holds the marker.
    reasoning, answer, _ = split(["<think>pondering</th", "ink>Yes"])
    assert (reasoning, answer) == ("pondering", "Yes")
    reasoning, answer, _ = split(["<thi", "nk>why", "</", "think", ">", "Because."])
    assert (reasoning, answer) == ("why", "Because.")


def test_one_character_at_a_time():
    assert split(list(TEXT))[:2] == split([TEXT])[:2]


def test_text_without_a_block_is_all_answer_and_kept_as_is():
    assert split([" Blue", " is calm."]) == ("", " Blue is calm.", [ANSWER, ANSWER])
    assert split(["<b>bold</b>"])[:2] == ("", "<b>bold</b>")  # a "<" that is not <think>


def test_a_prompt_that_opened_the_block():
    assert split(["calm blue", "</think>", "Blue."], inside=True)[:2] == ("calm blue", "Blue.")
    assert starts_inside("<|im_start|>assistant\n<think>\n") and not starts_inside("assistant\n")


def test_an_unclosed_block_is_all_reasoning_even_a_partial_end_marker():
    assert split(["<think>still thinking </thi"])[:2] == ("still thinking </thi", "")


def test_a_later_think_tag_inside_the_answer_stays_answer():
    assert split(["<think>a</think>b <think>c</think>"])[:2] == ("a", "b <think>c</think>")


def test_auto_mode_recognises_thinking_models():
    assert is_thinking_model({"<think>": 1, "</think>": 2}, None)
    assert is_thinking_model(set(), "{% if '</think>' in content %}")
    assert not is_thinking_model({"<|im_start|>": 1}, "{{ message['content'] }}")
    assert not is_thinking_model(None, None)
