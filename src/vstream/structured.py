"""Checks for structured-output constraints, before the engine sees them.

vLLM compiles a constraint when the request arrives (xgrammar or guidance); a bad one there is
an error deep in the engine's log. Here each is checked in the caller's thread and refused with
a ``SamplingError`` naming the option: a JSON schema against its meta-schema (``jsonschema``),
a regex by compiling it, a choice list for being a non-empty list of strings.
"""

from __future__ import annotations

import json
import re
from typing import Any

from .errors import SamplingError

MAX_CHOICES = 1024


def json_schema(value: Any) -> dict[str, Any]:
    """A schema given as a dict, a JSON string or a pydantic model class, as a checked dict."""
    if isinstance(value, type) and hasattr(value, "model_json_schema"):
        value = value.model_json_schema()  # a pydantic (v2) model class
    elif hasattr(value, "model_json_schema"):
        raise SamplingError(
            f"json_schema must be a schema or a pydantic model class; got an instance of {type(value).__name__}: "
            f"pass the class, {type(value).__name__}"
        )
    elif isinstance(value, str):
        if not value.strip():
            raise SamplingError("json_schema is empty: give a JSON schema, e.g. {\"type\": \"object\"}")
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise SamplingError(f"json_schema is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise SamplingError(
            f"json_schema must be a JSON object (a dict, a JSON string or a pydantic model class), "
            f"got {type(value).__name__}"
        )
    try:
        from jsonschema import exceptions, validators
    except ImportError:
        raise SamplingError(
            "checking json_schema needs the jsonschema package: pip install 'vstream[structured]'"
        ) from None
    try:
        validators.validator_for(value).check_schema(value)
    except exceptions.SchemaError as exc:
        where = "/".join(str(p) for p in exc.path)
        raise SamplingError(
            f"json_schema is not a valid JSON schema: {exc.message}" + (f" (at {where})" if where else "")
        ) from None
    try:
        json.dumps(value)
    except (TypeError, ValueError) as exc:
        raise SamplingError(f"json_schema must hold JSON values only: {exc}") from None
    return value


def regex(value: Any) -> str:
    if not isinstance(value, str):
        raise SamplingError(f"regex must be a string (a regular expression), got {type(value).__name__}")
    if not value:
        raise SamplingError("regex is empty: give a regular expression the answer must match")
    try:
        re.compile(value)
    except re.error as exc:
        raise SamplingError(f"regex does not compile: {exc}") from None
    return value


def choice(value: Any) -> list[str]:
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise SamplingError(f"choice must be a list of strings, got {type(value).__name__}")
    if not value:
        raise SamplingError("choice is an empty list: give at least one string the answer may be")
    if len(value) > MAX_CHOICES:
        raise SamplingError(f"choice takes at most {MAX_CHOICES} strings, got {len(value)}")
    for item in value:
        if not isinstance(item, str) or not item:
            raise SamplingError(f"choice must hold non-empty strings, got {item!r}")
    return list(value)


def grammar(value: Any) -> str:
    if not isinstance(value, str):
        raise SamplingError(f"grammar must be a string (an EBNF/GBNF grammar), got {type(value).__name__}")
    if not value.strip():
        raise SamplingError("grammar is empty: give a grammar, e.g. root ::= \"yes\" | \"no\"")
    return value
