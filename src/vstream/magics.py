"""``%%vstream`` (one prompt, streamed inline) and ``%vstream`` (engine commands).

Options are parsed by IPython's ``magic_arguments``, so ``%%vstream?`` documents them; ranges
are checked by ``config.validate_sampling`` and reported as ``UsageError`` naming the option.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import shlex
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class, no_var_expand
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from IPython.display import display
from traitlets import Bool, Dict, Float, Unicode

from . import escapes, options
from .config import validate_sampling
from .engine import ASLEEP, READY, STARTING, EngineHost, engine
from .errors import EngineConfigError, EngineStartError, SamplingError, VStreamError
from .refresher import follow
from .streaming import Stream

MAX_SAMPLES = 8


def _usage_error(exc: Exception) -> UsageError:
    """Rephrase a validation error in terms of the magic's option names."""
    message = str(exc)
    if "cannot be used together" in message:  # names every option of the group: all become flags
        flags = {o.name: o.flag for o in options.OPTIONS if o.group and o.flag}
        return UsageError(re.sub(r"\b\w+\b", lambda m: flags.get(m.group(0), m.group(0)), message))
    for option in sorted(options.OPTIONS, key=lambda o: len(o.name), reverse=True):
        if option.flag and message.startswith(option.name + " "):
            message = option.flag + message[len(option.name) :]
            break
    return UsageError(message)


def _argument_for(option: options.Option) -> argument:
    """The ``%%vstream`` argument of one request option, from its row."""
    bounds = option.bounds()
    text = option.help + (f" In {bounds}." if bounds.startswith(("[", "(")) else f" {bounds}." if bounds else "")
    kwargs: dict[str, Any] = {"dest": option.name, "help": text}
    if option.kind == options.REAL:
        kwargs["type"] = float
    elif option.kind in (options.INT, options.OPTIONAL_INT):
        kwargs["type"] = int
    elif option.kind == options.FLAG:
        kwargs.update(action="store_true", default=None)
    elif option.kind in (options.STOP, options.CHOICE):
        kwargs["action"] = "append"
    elif option.kind == options.TRISTATE:
        kwargs.update(type=_on_off_auto, metavar="on|off|auto")
    return argument(*option.flags, **kwargs)


_ON_OFF_AUTO = {"on": True, "off": False, "auto": None}


def _on_off_auto(text: str) -> bool | None:
    try:
        return _ON_OFF_AUTO[text.lower()]
    except KeyError:
        raise argparse.ArgumentTypeError(f"use on, off or auto, not {text!r}") from None


def request_arguments(func: Any) -> Any:
    """Decorate a magic with an argument per option row that has a flag, in the table's order."""
    for option in reversed(options.OPTIONS):  # decorators apply bottom-up
        if option.flags:
            func = _argument_for(option)(func)
    return func


@magics_class
class VStreamMagics(Magics):
    """The magics, with their defaults as traitlets config (``c.VStreamMagics.defaults = {...}``)."""

    defaults = Dict(help="Sampling defaults for %%vstream, e.g. {'temperature': 0.7}.").tag(config=True)
    engine_options = Dict(help="Engine settings used by %load_ext and %vstream start.").tag(config=True)
    autostart = Bool(
        True, help="At %load_ext, start the engine in the background (or connect to $VSTREAM_BASE_URL if set)."
    ).tag(config=True)
    update_rate = Float(20.0, help="Display updates per second per stream while streaming.").tag(config=True)
    model = Unicode("", help="Model for the engine (empty: the embedded default).").tag(config=True)

    # --- %%vstream ------------------------------------------------------------------------------

    # The usage line reads "%%vstream" (magic_arguments would name it after the method).
    @magic_arguments("%vstream")
    @request_arguments
    @argument("--chat", "-c", action="store_true", help="Apply the model's chat template to the prompt.")
    @argument("--system", "-s", help="System prompt (implies --chat).")
    @argument("--samples", "-n", type=int, default=1, help=f"Stream N samples side by side, 1..{MAX_SAMPLES}.")
    @argument("--out", "-o", help="Store the finished Stream (a list with -n > 1) in this variable.")
    @argument("--hide-thinking", action="store_true", help="Show only how long the model thought, not its thinking.")
    @argument("--model", help="Switch the engine to this model (restarts it).")
    @argument("--no-interpolate", action="store_true", help="Leave {name} placeholders in the prompt as they are.")
    @cell_magic("vstream")
    # The option line is taken as written: IPython would fill {3} in --regex '[0-9]{3}' and $ in
    # '^a$' from the namespace (and turn a JSON literal into a Python dict's repr).
    @no_var_expand
    def vstream_cell(self, line: str, cell: str) -> None:
        """Stream the cell's text through the kernel's vLLM engine.

        ``{name}`` placeholders in the cell are filled from your variables (as IPython does for
        shell commands) unless ``--no-interpolate`` is given; the option line is taken as written
        (``--regex '[0-9]{3}'``). ``--json-schema`` and ``--grammar`` take a variable's name too.
        Ctrl-C (or the stop button) aborts the request in the engine and keeps the text so far.
        """
        args = parse_argstring(self.vstream_cell, line)
        args.system = _decoded(args.system)
        sampling = self._sampling_from(args)
        samples = args.samples
        if not 1 <= samples <= MAX_SAMPLES:
            raise UsageError(f"--samples must be an integer in [1, {MAX_SAMPLES}], got {samples}")
        if args.out is not None and not args.out.isidentifier():
            raise UsageError(f"--out must be a Python variable name, got {args.out!r}")
        # The cell body ends with the newline that closes the cell, not one the user meant.
        body = cell.rstrip("\n")
        prompt = body if args.no_interpolate else self.shell.var_expand(body, depth=0)
        if not prompt.strip():
            raise UsageError("the cell is empty: write the prompt in the cell body, below %%vstream")

        host = self._host(model=args.model)
        self._wait_for(host)
        chat = bool(args.chat or args.system is not None)
        streams = self._submit(host, prompt, chat, args.system, sampling, samples)
        if args.out is not None:
            # Stored before streaming, so an interrupted cell still leaves the partial result.
            self.shell.user_ns[args.out] = streams[0] if samples == 1 else streams
        self._show(
            streams,
            logprobs=args.logprobs is not None,
            chat_hint=None if chat else "add --chat",
            hide_thinking=args.hide_thinking,
        )

    def _sampling_from(self, args: Any) -> dict[str, Any]:
        sampling = dict(self.defaults)
        for option in options.OPTIONS:
            value = getattr(args, option.name, None)
            if value is not None:
                sampling[option.name] = self._option_value(option, value)
        try:
            validate_sampling(sampling)
        except SamplingError as exc:
            raise _usage_error(exc) from None
        return sampling

    def _option_value(self, option: options.Option, value: Any) -> Any:
        """An option's value as the cell meant it (quotes off; escapes decoded where they apply)."""
        if option.kind in (options.STOP, options.CHOICE):
            return [_decoded(item) for item in value]
        if option.kind == options.REGEX:
            return _unquoted(value)  # a regex keeps its backslashes as typed: \d, \n, \s
        if option.kind in (options.SCHEMA, options.GRAMMAR):
            text = _unquoted(value)
            if text.isidentifier() and text in self.shell.user_ns:
                return self.shell.user_ns[text]  # a dict, a JSON string, a pydantic class, a grammar
            if option.kind == options.GRAMMAR:
                return escapes.decode(text)
            try:
                return json.loads(text)
            except ValueError as exc:
                raise UsageError(
                    f"{option.flag} takes a variable of this notebook or a JSON literal; {text[:60]!r} is "
                    f"neither ({'no such variable' if text.isidentifier() else f'not JSON: {exc}'})"
                ) from None
        return value

    def _submit(
        self, host: EngineHost, prompt: str, chat: bool, system: str | None, sampling: dict[str, Any], samples: int
    ) -> list[Stream]:
        requests = []
        for i in range(samples):
            settings = {**sampling, "prompt": prompt, "chat": chat, "system": system}
            if samples > 1 and "seed" in settings:
                settings["seed"] = settings["seed"] + i  # the same seed would repeat one sample
            requests.append(settings)
        try:
            return host.stream_many(requests)
        except (SamplingError, ValueError) as exc:
            raise _usage_error(exc) from None

    def _show(self, streams: list[Stream], *, logprobs: bool, chat_hint: str | None, hide_thinking: bool) -> None:
        """Stream into a live widget view (deltas only, the panel's front end), then replace it with
        a static text/html + text/plain display that a saved notebook keeps. Without a widget front
        end (a terminal) nothing is repainted: a line says it streams, then the answer shows."""
        from .panel.static import streams_bundle

        titles = [f"sample {i + 1}" for i in range(len(streams))] if len(streams) > 1 else [None]
        view = _live_view(streams, titles=titles, logprobs=logprobs, chat_hint=chat_hint, hide_thinking=hide_thinking)
        if view is not None:
            handle = display(view, display_id=True)
        else:
            handle = display({"text/plain": "vstream: streaming…"}, raw=True, display_id=True)
        try:
            follow(streams, view.paint if view is not None else _no_repaint, rate=self.update_rate)
        finally:
            shown = streams_bundle(
                streams, titles=titles, logprobs=logprobs, chat_hint=chat_hint, hide_thinking=hide_thinking
            )
            handle.update(shown, raw=True)
            if view is not None:
                view.close()

    # --- engine access --------------------------------------------------------------------------

    def _engine_options(self, **overrides: Any) -> dict[str, Any]:
        options = dict(self.engine_options)
        if self.model:
            options.setdefault("model", self.model)
        options.update({k: v for k, v in overrides.items() if v is not None})
        return options

    def _host(self, **overrides: Any) -> EngineHost:
        try:
            return engine(**self._engine_options(**overrides))
        except EngineConfigError as exc:
            raise UsageError(str(exc)) from None

    def _wait_for(self, host: EngineHost) -> None:
        """Show start-up progress in the cell until the engine is ready (or say why it failed)."""
        handle = None
        while True:
            try:
                host.wait_ready(timeout=0.5)
                break
            except TimeoutError:
                bundle = {"text/plain": f"vstream: engine {host.status()}"}
                if handle is None:
                    handle = display(bundle, raw=True, display_id=True)
                else:
                    handle.update(bundle, raw=True)
            except (EngineStartError, VStreamError) as exc:
                if handle is not None:
                    handle.update({"text/plain": f"vstream: engine {host.status()}"}, raw=True)
                raise UsageError(f"the engine is not available: {exc}") from None
        if handle is not None:
            handle.update({"text/plain": f"vstream: engine {host.status()}"}, raw=True)

    # --- %vstream -------------------------------------------------------------------------------

    @line_magic("vstream")
    def vstream_line(self, line: str) -> Any:
        """Engine commands: status | start | restart [key=value ...] | shutdown | config [key=value ...] | logs [N]
        | sleep [after=SECONDS|never] | wake
        | connect URL [model=NAME] (an OpenAI-compatible vLLM server; the key comes from VSTREAM_API_KEY)."""
        words = shlex.split(line)
        if not words:
            raise UsageError(
                "usage: %vstream status | start | restart [key=value ...] | shutdown | config [key=value ...]"
                " | logs [N] | sleep [after=SECONDS|never] | wake | connect URL [model=NAME]"
            )
        command, rest = words[0], words[1:]
        handler = getattr(self, f"_cmd_{command}", None)
        if handler is None:
            raise UsageError(
                f"unknown %vstream command {command!r}; use status, start, restart, shutdown, config, logs, "
                "sleep, wake or connect"
            )
        return handler(rest)

    def _cmd_status(self, rest: list[str]) -> None:
        from .engine import current

        host = current()
        print(f"vstream: engine {host.status() if host else 'not created (run %vstream start)'}")

    def _cmd_sleep(self, rest: list[str]) -> None:
        """``%vstream sleep``: free the GPU memory now; ``%vstream sleep after=120`` (or ``never``)
        sets how long an idle engine waits before it sleeps by itself."""
        from .engine import current

        host = current()
        if host is None:
            raise UsageError("no engine yet: run %vstream start")
        given = _key_values(rest)
        if set(given) - {"after"}:
            raise UsageError(f"%vstream sleep takes after=SECONDS or after=never, got {rest!r}")
        try:
            if "after" in given:
                after = given["after"]
                host.sleep_after_s = None if after in ("never", "off", None) else after
                print(f"vstream: an idle engine sleeps {_after_text(host.sleep_after_s)}")
                return
            host.sleep()
        except VStreamError as exc:
            raise UsageError(str(exc)) from None
        print(f"vstream: engine {host.status()}")

    def _cmd_wake(self, rest: list[str]) -> None:
        from .engine import current

        host = current()
        if host is None:
            raise UsageError("no engine yet: run %vstream start")
        try:
            host.wake()
        except VStreamError as exc:
            raise UsageError(str(exc)) from None
        print(f"vstream: engine {host.status()}")

    def _cmd_start(self, rest: list[str]) -> None:
        host = self._host(**_key_values(rest))
        print(f"vstream: engine {host.status()}")

    def _cmd_restart(self, rest: list[str]) -> None:
        host = self._host()
        try:
            host.restart(**_key_values(rest))
        except EngineConfigError as exc:
            raise UsageError(str(exc)) from None
        print(f"vstream: engine {host.status()}")

    def _cmd_connect(self, rest: list[str]) -> None:
        """``%vstream connect [URL] [model=NAME]``: stream from a shared ``vllm serve``.

        The API key comes from $VSTREAM_API_KEY (or $OPENAI_API_KEY), never from the cell, so it
        is not saved in the notebook; in Python, ``vstream.connect(url, api_key=getpass())``.
        """
        from .connect import connect

        url = rest[0] if rest and "=" not in rest[0] else None
        options = _key_values(rest[1:] if url else rest)
        if "api_key" in options:
            raise UsageError(
                "don't write the API key in a cell (it would be saved in the notebook): set "
                "$VSTREAM_API_KEY, or call vstream.connect(url, api_key=getpass.getpass())"
            )
        unknown = set(options) - {"model"}
        if unknown:
            raise UsageError(f"%vstream connect takes a URL and model=NAME, got {sorted(unknown)[0]!r}")
        try:
            connect(url, model=options.get("model"))
        except (VStreamError, ValueError) as exc:
            raise UsageError(str(exc)) from None

    def _connect_from_env(self, base_url: str) -> None:
        """``%load_ext`` with $VSTREAM_BASE_URL set: connect to that server, in the background
        (as the in-process engine warms up), instead of starting an engine in this kernel."""
        from .connect import BASE_URL_VARIABLE, connect

        try:
            host = connect(base_url, wait=False)
        except (VStreamError, ValueError) as exc:
            print(
                f"vstream: ${BASE_URL_VARIABLE} is set but not usable ({exc}); no engine started: "
                f"fix it and run %vstream connect, or unset it and run %vstream start"
            )
            return
        print(
            f"vstream: connecting to {host.config.base_url} (from ${BASE_URL_VARIABLE}) instead of "
            f"starting an in-process engine; engine {host.status()}"
        )

    def _cmd_shutdown(self, rest: list[str]) -> None:
        from .engine import shutdown

        shutdown()
        print("vstream: engine stopped")

    def _cmd_config(self, rest: list[str]) -> dict[str, Any] | None:
        if rest == ["--reset"]:
            self.defaults = {}
        elif rest:
            updated = {**self.defaults, **_key_values(rest)}
            try:
                validate_sampling(updated)
            except SamplingError as exc:
                raise _usage_error(exc) from None
            self.defaults = updated
        engine_options = self._engine_options() or "(defaults)"
        print(f"vstream: sampling defaults {self.defaults or '(engine defaults)'}; engine {engine_options}")
        return None

    def _cmd_logs(self, rest: list[str]) -> None:
        from . import logs

        count = int(rest[0]) if rest and rest[0].isdigit() else 40
        lines = logs.tail(count)
        print("\n".join(lines) if lines else f"vstream: no engine log yet ({logs.log_file()})")


def _no_repaint(final: bool) -> None:
    pass


def _live_view(streams: list[Stream], **view: Any) -> Any:
    """The magic's live view (``panel.view.StreamView``), or None where no front end can show a
    widget: a terminal's comm has no kernel."""
    try:
        from .panel.view import StreamView
    except ImportError:  # anywidget missing: the static display still shows the answer
        return None
    live = StreamView(streams, **view)
    if not live.live:
        live.close()
        return None
    return live


def _after_text(seconds: float | None) -> str:
    return "never" if seconds is None else f"after {seconds:g} s without requests"


def _unquoted(value: str) -> str:
    """An option value without the outer quotes that magic_arguments keeps."""
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def _decoded(value: str | None) -> str | None:
    """An option value as meant: outer quotes removed, escapes decoded."""
    if value is None:
        return None
    return escapes.decode(_unquoted(value))


def _key_values(words: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for word in words:
        key, sep, raw = word.partition("=")
        if not sep or not key:
            raise UsageError(f"expected key=value, got {word!r}")
        key = key.lstrip("-").replace("-", "_")
        try:
            out[key] = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            out[key] = raw
    return out


# %reload_ext is unload + load in one cell: the engine is stopped only if the cell that unloaded
# the extension ends without loading it again, so a reload keeps the warm engine.
_unload_pending = False


def load(ipython: Any) -> None:
    global _unload_pending
    _unload_pending = False
    magics = VStreamMagics(shell=ipython)
    ipython.register_magics(magics)
    if magics.autostart:
        from .connect import BASE_URL_VARIABLE
        from .engine import current

        host = current()
        if host is None or host.state not in (READY, ASLEEP, STARTING):
            base_url = os.environ.get(BASE_URL_VARIABLE)
            if base_url:
                magics._connect_from_env(base_url)
            else:
                magics._host()


def unload(ipython: Any) -> None:
    global _unload_pending
    manager = ipython.magics_manager
    for kind in ("line", "cell"):
        manager.magics[kind].pop("vstream", None)
    manager.registry.pop("VStreamMagics", None)
    _unload_pending = True

    def stop_engine_after_cell(*_args: Any) -> None:
        global _unload_pending
        ipython.events.unregister("post_run_cell", stop_engine_after_cell)
        if _unload_pending:
            _unload_pending = False
            from .engine import shutdown

            shutdown()

    ipython.events.register("post_run_cell", stop_engine_after_cell)
