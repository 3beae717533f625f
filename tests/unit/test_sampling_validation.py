"""Bad sampling values are refused before they reach the engine, naming parameter and bound."""

import math

import pytest

from vstream import SamplingError, validate_sampling

BAD = [
    ({"temperature": -1}, "temperature must be a number in [0, 2]"),
    ({"temperature": 5.0}, "temperature must be a number in [0, 2], got 5.0"),  # vLLM's bound
    ({"temperature": math.nan}, "temperature must be a finite number"),
    ({"temperature": math.inf}, "temperature must be a finite number"),
    ({"temperature": "hot"}, "temperature must be a finite number"),
    ({"top_p": 0}, "top_p must be a number in (0, 1]"),
    ({"top_p": 1.5}, "top_p must be a number in (0, 1]"),
    ({"top_k": -2}, "top_k must be an integer ≥ -1"),
    ({"top_k": 2.5}, "top_k must be an integer"),
    ({"min_p": 1.1}, "min_p must be a number in [0, 1]"),
    ({"max_tokens": 0}, "max_tokens must be an integer ≥ 1"),
    ({"max_tokens": -5}, "max_tokens must be an integer ≥ 1"),
    ({"max_tokens": True}, "max_tokens must be an integer"),
    ({"seed": -1}, "seed must be an integer [0,"),
    ({"stop": ""}, "stop strings must be non-empty"),
    ({"stop": [1, 2]}, "stop strings must be non-empty strings"),
    ({"stop": 42}, "stop must be a string or a list of strings"),
    ({"stop": "\ud800"}, "not valid Unicode"),
    ({"repetition_penalty": 0}, "repetition_penalty must be a number in (0, 10]"),
    ({"presence_penalty": 3}, "presence_penalty must be a number in [-2, 2]"),
    ({"frequency_penalty": -2.5}, "frequency_penalty must be a number in [-2, 2]"),
    ({"logprobs": 50}, "logprobs must be an integer [0, 20]"),
    ({"ignore_eos": "yes"}, "ignore_eos must be True or False"),
    ({"min_tokens": 10, "max_tokens": 5}, "min_tokens (10) must be ≤ max_tokens (5)"),
    ({"temprature": 0.5}, "did you mean 'temperature'"),
]


@pytest.mark.parametrize(("params", "message"), BAD, ids=[str(p) for p, _ in BAD])
def test_bad_value_names_parameter_and_range(params, message):
    with pytest.raises(SamplingError) as info:
        validate_sampling(params)
    assert message in str(info.value)


def test_max_tokens_beyond_context_is_refused():
    with pytest.raises(SamplingError, match="max_tokens must be ≤ the model's context of 2048 tokens, got 4096"):
        validate_sampling({"max_tokens": 4096}, max_model_len=2048)


def test_good_values_pass_and_defaults_fill_in():
    checked = validate_sampling({"temperature": 0, "top_k": 5, "stop": "\n\n", "seed": 7})
    assert checked["temperature"] == 0.0
    assert checked["stop"] == ["\n\n"]
    assert checked["max_tokens"] == 256  # vstream's default, not vLLM's 16
    assert "logprobs" not in checked
