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
