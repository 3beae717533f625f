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
