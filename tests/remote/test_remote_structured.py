"""Structured output against a real `vllm serve`: the same request options give conforming
answers through the server's completions endpoint (its ``structured_outputs`` field)."""

from __future__ import annotations

import re

import pytest

from schemas import AGE_REGEX, PERSON, YES_NO_GRAMMAR

pytestmark = [pytest.mark.engine, pytest.mark.remote]

jsonschema = pytest.importorskip("jsonschema")

def test_json_answers_from_the_server_validate_against_their_schema(idle_remote):
    streams = idle_remote.stream_many(
        [
            {"prompt": f"Describe a fictional person ({seed}). Answer in JSON.", "chat": True,
             "json_schema": PERSON, "temperature": 0.7, "seed": seed, "max_tokens": 120}
            for seed in range(10)
        ]
    )  # fmt: skip
    for stream in streams:
        jsonschema.validate(stream.json(timeout=300), PERSON)
    print(f"\n10/10 JSON answers from vllm serve validated: {streams[0].text!r}")


def test_regex_choice_and_grammar_reach_the_server(idle_remote):
    regex = AGE_REGEX
    texts = [
        idle_remote.stream("Tell me about someone's age.", chat=True, regex=regex, temperature=0.7, seed=s,
                           max_tokens=40).wait(120).text
        for s in range(3)
    ]  # fmt: skip
    assert all(re.fullmatch(regex, text) for text in texts), texts
    picked = idle_remote.stream("Tea?", chat=True, choice=["yes", "no", "it depends"], temperature=0.7, seed=1)
    assert picked.wait(120).text in ("yes", "no", "it depends")
    answer = idle_remote.stream(
        "Is water wet?", chat=True, grammar=YES_NO_GRAMMAR, temperature=0.7, seed=2, max_tokens=20
    )
    assert answer.wait(120).text in ("The answer is yes.", "The answer is no.")


def test_reasoning_is_split_from_a_servers_stream_too(idle_remote):
    forced = r"<think>[a-z ]{8,60}</think>[A-Za-z ]{3,40}"
    options = {"chat": True, "regex": forced, "temperature": 0.7, "seed": 4, "max_tokens": 80}
    stream = idle_remote.stream("Think about the sea, then name a colour.", reasoning=True, **options).wait(120)
    assert re.fullmatch(r"[a-z ]{8,60}", stream.reasoning) and "<" not in stream.text
    assert stream.metrics.reasoning_tokens >= 8
    auto = idle_remote.stream("Think about the sea, then name a colour.", **options).wait(120)
    assert auto.text.startswith("<think>")  # auto: the server's tokenizer has no <think> token
