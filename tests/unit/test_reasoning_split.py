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


# --- vLLM's reasoning parser, for tokenizers that have the marker tokens ---------------------------


@pytest.fixture(scope="module")
def thinking_tokenizer():
    """The embedded model's tokenizer with <think> and </think> added as tokens (as Qwen3's and
    DeepSeek-R1's vocabularies have them)."""
    pytest.importorskip("vllm.reasoning")
    transformers = pytest.importorskip("transformers")
    from vstream.models import EMBEDDED_MODEL, resolve_model

    tokenizer = transformers.AutoTokenizer.from_pretrained(resolve_model(EMBEDDED_MODEL))
    tokenizer.add_tokens(["<think>", "</think>"])
    return tokenizer


def _token_deltas(tokenizer, text: str) -> list[tuple[str, list[int]]]:
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return [(tokenizer.decode([i]), [i]) for i in ids]


@pytest.mark.parametrize("inside", [False, True], ids=["block-in-output", "block-opened-by-prompt"])
def test_vllms_parser_splits_by_marker_token_ids(thinking_tokenizer, inside):
    from vstream.reasoning import TokenSplitter, has_marker_tokens, vllm_parser
    from vstream.streaming import Stream

    assert has_marker_tokens(thinking_tokenizer.get_vocab())
    text = ("" if inside else "<think>") + "the sea is calm</think>\n\nBlue."
    deltas = _token_deltas(thinking_tokenizer, text)
    assert any(d == "</think>" for d, _ in deltas)  # one token: the parser sees its id
    stream = Stream("r", "prompt", [1], {})
    stream._think(inside=inside, parser=vllm_parser(thinking_tokenizer, inside=inside))
    assert isinstance(stream._splitter, TokenSplitter)
    for delta, ids in deltas:
        stream._feed(delta, ids, None)
    stream._finish("stop")
    assert stream.reasoning.strip() == "the sea is calm" and stream.text == "Blue."
    assert stream.metrics.reasoning_tokens + stream.metrics.answer_tokens == len(deltas)


def test_vllms_parser_leaves_an_answer_without_a_block_alone(thinking_tokenizer):
    from vstream.reasoning import TokenSplitter, vllm_parser

    splitter = TokenSplitter(vllm_parser(thinking_tokenizer, inside=False))
    pieces = [p for d, ids in _token_deltas(thinking_tokenizer, "Just blue.") for p in splitter.feed(d, ids)]
    assert "".join(t for k, t in pieces if k == ANSWER) == "Just blue." and all(k == ANSWER for k, _ in pieces)


def test_vllms_parser_splits_even_when_the_text_leaves_the_markers_out(thinking_tokenizer):
    # vLLM detokenizes with skip_special_tokens=True: a model whose markers are special tokens
    # streams no "<think>" text at all, and only the token ids say where the block is.
    from vstream.reasoning import TokenSplitter, vllm_parser

    ids = thinking_tokenizer("<think>calm sea</think>Blue.", add_special_tokens=False)["input_ids"]
    marker_ids = {thinking_tokenizer.convert_tokens_to_ids(t) for t in ("<think>", "</think>")}
    deltas = [("" if i in marker_ids else thinking_tokenizer.decode([i]), [i]) for i in ids]
    splitter = TokenSplitter(vllm_parser(thinking_tokenizer, inside=False))
    pieces = [p for d, i in deltas for p in splitter.feed(d, i)]
    assert "".join(t for k, t in pieces if k == REASONING) == "calm sea"
    assert "".join(t for k, t in pieces if k == ANSWER) == "Blue."


def test_events_of_a_stream_without_reasoning_are_answer_deltas_then_the_finish():
    from loops import run_on_a_fresh_loop
    from vstream.streaming import Event, Stream

    stream = Stream("plain", "prompt", [1], {})
    for delta in ("Blue", " sea", "."):
        stream._feed(delta, [7], None)
    stream._finish("stop")
    expected = [Event(ANSWER, "Blue"), Event(ANSWER, " sea"), Event(ANSWER, "."), Event("finish", finish_reason="stop")]
    assert list(stream.events()) == expected

    async def collect():
        return [event async for event in stream.events()]

    assert run_on_a_fresh_loop(collect) == expected  # browser tests keep a loop on this thread
