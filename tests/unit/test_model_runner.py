"""An engine started with a reasoning_config gets vLLM's V1 model runner for its build, so that
thinking_token_budget works on vLLM 0.26's CUDA engines (the V2 runner refuses it per request);
the end-to-end check is tests/engine/test_reasoning.py, run on the H200 by gpu-session.sh."""

from __future__ import annotations

import os

import pytest

from vstream.backends.local import V2_RUNNER, _model_runner_for

REASONING = {"reasoning_config": {"reasoning_start_str": "<think>", "reasoning_end_str": "</think>"}}


@pytest.fixture(autouse=True)
def no_switch(monkeypatch):
    monkeypatch.delenv(V2_RUNNER, raising=False)


def test_a_reasoning_config_builds_with_the_v1_runner_and_leaves_no_trace():
    with _model_runner_for(REASONING):
        assert os.environ[V2_RUNNER] == "0"
    assert V2_RUNNER not in os.environ


def test_without_a_reasoning_config_the_runner_is_vllms_choice():
    with _model_runner_for({"model": "m"}):
        assert V2_RUNNER not in os.environ


def test_the_users_own_switch_wins(monkeypatch):
    monkeypatch.setenv(V2_RUNNER, "1")
    with _model_runner_for(REASONING):
        assert os.environ[V2_RUNNER] == "1"
    assert os.environ[V2_RUNNER] == "1"


def test_a_failed_build_still_restores_the_environment():
    with pytest.raises(RuntimeError), _model_runner_for(REASONING):
        raise RuntimeError("the engine did not start")
    assert V2_RUNNER not in os.environ
