"""Model names resolve offline or fail at once with what to do."""

import time

import pytest

from vstream.models import ModelNotFoundError, resolve_model


def test_unknown_hub_id_fails_fast_with_instructions():
    started = time.monotonic()
    with pytest.raises(ModelNotFoundError) as info:
        resolve_model("no-such-org/no-such-model-xyz")
    assert time.monotonic() - started < 5
    message = str(info.value)
    assert "huggingface-cli download no-such-org/no-such-model-xyz" in message
    assert "allow_download=True" in message


def test_directory_without_config_is_refused(tmp_path):
    with pytest.raises(ModelNotFoundError, match=r"holds no config\.json"):
        resolve_model(str(tmp_path))


def test_local_checkpoint_path_is_used_as_is(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    assert resolve_model(str(tmp_path)) == str(tmp_path.resolve())


def test_the_embedded_model_computes_in_float32_on_a_cpu_and_other_choices_stand():
    from vstream.backends.local import LocalBackend
    from vstream.config import EngineConfig
    from vstream.models import embedded_dtype

    assert embedded_dtype("cpu") == "float32" and embedded_dtype("cuda") == "auto"
    assert LocalBackend(EngineConfig(), "cpu", False)._dtype == "float32"
    assert LocalBackend(EngineConfig(), "cuda", False)._dtype == "auto"
    assert LocalBackend(EngineConfig(dtype="bfloat16"), "cpu", False)._dtype == "bfloat16"  # asked for
    assert LocalBackend(EngineConfig(model="/some/checkpoint"), "cpu", False)._dtype == "auto"
