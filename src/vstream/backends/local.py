"""vLLM's AsyncLLM (V1 engine) in this process, with its EngineCore in a child process.

Everything here except ``render`` runs on the EngineHost's loop thread: AsyncLLM binds its
output handler to the loop that first uses it, so it is built and used only there.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psutil

from .. import cpu_cores, ipc_folder, logs, memory, options, reasoning, spawning
from ..config import EngineConfig, cpu_model
from ..errors import EngineDeadError, EngineStartError, SamplingError
from ..models import EMBEDDED_MODEL, embedded_dtype, resolve_model
from ..streaming import CANCELLED, ERROR, Stream
from . import feeding
from .base import EngineInfo, Progress, PromptSpec, RenderedPrompt


class LocalBackend:
    """One AsyncLLM built from an EngineConfig."""

    def __init__(self, config: EngineConfig, device: str, verbose: bool) -> None:
        self.config = config
        self.device = device
        self.verbose = verbose
        self.info: EngineInfo | None = None
        self._engine: Any = None
        self._tokenizer: Any = None
        self._pids: list[int] = []
        self._ipc_folder: Path | None = None
        self._sampling_params: Any = None
        self._delta: Any = None
        self._vllm_dead_error: type[BaseException] = RuntimeError
        self._plan: memory.MemoryPlan | None = None
        self._free: list[memory.FreeMemory] = []
        embedded = config.dtype == "auto" and config.model == EMBEDDED_MODEL
        self._dtype = embedded_dtype(device) if embedded else config.dtype  # what vLLM is asked for

    async def start(self, progress: Progress) -> EngineInfo:
        logs.route_vllm_logs(self.verbose)
        # Forking a kernel (ZMQ and IOPub threads, held locks) is unsafe; vLLM forces spawn only
        # once CUDA is initialised, which the kernel process deliberately never does.
        os.environ.setdefault("VLLM_WORKER_MULTIPROC_METHOD", "spawn")
        path = await asyncio.to_thread(
            resolve_model, self.config.model, allow_download=self.config.allow_download, progress=progress
        )
        # Before vLLM is imported: a budget that cannot fit fails in a second, with the numbers.
        progress("sizing memory")
        self._plan = await asyncio.to_thread(self._memory_plan, path)
        if self._plan is not None:
            memory.check_fits(self._plan, self._free)
        # The forkserver imports vLLM while this thread does: the EngineCore is forked from it
        # with vLLM loaded, instead of a spawn that imports it again (spawning.py).
        spawning.start_forkserver(None if self.verbose else logs.log_file())
        progress("importing vLLM")
        import torch
        import vllm
        from transformers import AutoTokenizer
        from vllm import SamplingParams
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.sampling_params import RequestOutputKind
        from vllm.v1.engine.async_llm import AsyncLLM
        from vllm.v1.engine.exceptions import EngineDeadError as VllmEngineDeadError

        logs.route_vllm_logs(self.verbose)  # vLLM configured its loggers on import
        self._sampling_params, self._delta = SamplingParams, RequestOutputKind.DELTA
        self._vllm_dead_error = VllmEngineDeadError
        self._tokenizer = AutoTokenizer.from_pretrained(path)

        kwargs = self._engine_kwargs(path)
        plain_kwargs = dict(kwargs)
        if isinstance(kwargs.get("structured_outputs_config"), dict):
            from vllm.config import StructuredOutputsConfig

            kwargs["structured_outputs_config"] = StructuredOutputsConfig(**kwargs["structured_outputs_config"])
        args = AsyncEngineArgs(**kwargs)
        progress(f"starting the engine ({'eager' if self.config.enforce_eager else 'compiling, CUDA graphs'})")
        before = _child_pids()
        self._ipc_folder = ipc_folder.create()
        try:
            with (
                ipc_folder.sockets_in(self._ipc_folder),
                spawning.engine_children(None if self.verbose else logs.log_file()),
                self._own_cores(),
                _model_runner_for(kwargs),
            ):
                self._engine = AsyncLLM.from_engine_args(args)
        except Exception as exc:
            self._release_cores()
            raise EngineStartError(_start_failure(exc)) from exc
        finally:
            self._pids = sorted(_child_pids() - before)
        if self._binds_cores():
            cpu_cores.record(self._pids)

        vllm_config = self._engine.vllm_config
        cache = vllm_config.cache_config
        blocks = cache.num_gpu_blocks
        plan = self._plan
        self.info = EngineInfo(
            model=self.config.model,
            model_path=path,
            device=self.device,
            device_name=_device_name(self.device),
            mode="eager" if self.config.enforce_eager else ("CUDA graphs" if self.device == "cuda" else "compiled"),
            max_model_len=vllm_config.model_config.max_model_len,
            # What requests can use: vLLM keeps one block back (its null block).
            kv_cache_tokens=(blocks - 1) * cache.block_size if blocks else None,
            backend="vLLM AsyncLLM (in-process)",
            vllm_version=vllm.__version__,
            torch_version=torch.__version__,
            tensor_parallel_size=self.config.tensor_parallel_size,
            pipeline_parallel_size=self.config.pipeline_parallel_size,
            weight_bytes=plan.weight_bytes if plan else None,
            kv_cache_bytes=plan.kv_bytes if plan else None,
            can_sleep=self._sleep_mode,
            engine_args=plain_kwargs,
        )
        progress("warming up")
        await self._warm_up()
        return self.info

    def _memory_plan(self, path: str) -> memory.MemoryPlan | None:
        """Weights + KV for this model, from its config; None when vLLM's share is asked for."""
        c, extra = self.config, dict(self.config.engine_args)
        kv_memory = c.kv_cache_memory or extra.get("kv_cache_memory_bytes")
        if c.gpu_memory_utilization is not None and kv_memory is None and c.kv_cache_tokens is None:
            return None
        dummy = extra.get("load_format") == "dummy"
        if (Path(path) / "config.json").is_file():
            shape = memory.ModelShape.from_checkpoint(path, dtype=self._dtype, dummy=dummy)
        else:  # a hub id vLLM will download (allow_download=True)
            from transformers import AutoConfig

            shape = memory.ModelShape.from_config(AutoConfig.from_pretrained(path).to_dict(), dtype=self._dtype)
        devices = c.tensor_parallel_size * c.pipeline_parallel_size
        self._free = memory.free_memory(self.device, devices)
        if self.device == "cuda" and self._free and len(self._free) < devices:
            raise EngineStartError(
                f"tensor_parallel_size={c.tensor_parallel_size} x pipeline_parallel_size="
                f"{c.pipeline_parallel_size} needs {devices} GPUs, and {len(self._free)} "
                f"{'is' if len(self._free) == 1 else 'are'} visible ({', '.join(f.where for f in self._free)})"
            )
        return memory.plan(
            shape,
            device=self.device,
            kv_cache_tokens=c.kv_cache_tokens,
            kv_cache_memory=int(kv_memory) if kv_memory is not None else None,
            max_model_len=c.max_model_len,
            max_num_seqs=c.max_num_seqs or memory.DEFAULT_MAX_NUM_SEQS,
            tensor_parallel=c.tensor_parallel_size,
            pipeline_parallel=c.pipeline_parallel_size,
            cuda_graphs=not c.enforce_eager and self.device == "cuda",
        )

    def _binds_cores(self) -> bool:
        """vLLM binds a CPU worker to cores; with several ranks its binding string has a list per
        rank, which vLLM's own choice handles better than one picked here."""
        return self.device == "cpu" and self.config.tensor_parallel_size * self.config.pipeline_parallel_size == 1

    def _own_cores(self) -> contextlib.AbstractContextManager[None]:
        return cpu_cores.claimed() if self._binds_cores() else contextlib.nullcontext()

    def _release_cores(self) -> None:
        if self._binds_cores():
            cpu_cores.release()

    def _engine_kwargs(self, path: str) -> dict[str, Any]:
        c, plan = self.config, self._plan
        kwargs: dict[str, Any] = {
            "model": path,
            "tokenizer": path,
            "served_model_name": c.model,
            "dtype": self._dtype,
            "enforce_eager": c.enforce_eager,
            "tensor_parallel_size": c.tensor_parallel_size,
            "pipeline_parallel_size": c.pipeline_parallel_size,
            "max_num_seqs": c.max_num_seqs or memory.DEFAULT_MAX_NUM_SEQS,
            "seed": c.seed,
            "disable_log_stats": True,
            # Sleep mode (weights to host memory, KV dropped, when idle) exists on CUDA only.
            "enable_sleep_mode": self._sleep_mode,
            # JSON without free whitespace: vLLM's default grammar lets a sampled answer loop on
            # newlines until max_tokens (4 of 64 schema answers at temperature 0.7 here; 0 of 64
            # with this). vLLM's "auto" backend refuses the setting, so xgrammar is named.
            "structured_outputs_config": {"backend": "xgrammar", "disable_any_whitespace": True},
        }
        if c.gpu_memory_utilization is not None:
            kwargs["gpu_memory_utilization"] = c.gpu_memory_utilization
        if plan is not None:
            kwargs["kv_cache_memory_bytes"] = plan.kv_bytes
            kwargs["max_model_len"] = plan.max_model_len
            share = memory.gpu_share(plan, self._free)
            if share is not None and c.gpu_memory_utilization is None:
                kwargs["gpu_memory_utilization"] = share
        if c.max_model_len is not None:
            kwargs["max_model_len"] = c.max_model_len
        kwargs.update(dict(c.engine_args))
        return kwargs

    @property
    def _sleep_mode(self) -> bool:
        return self.device == "cuda" and bool(dict(self.config.engine_args).get("enable_sleep_mode", True))

    # --- sleep (CUDA) ---------------------------------------------------------------------------

    def sleep_unavailable(self) -> str | None:
        """Why this engine cannot sleep, or None if it can."""
        if self.device != "cuda":
            return (
                "sleep mode needs a GPU: vLLM's CPU backend has none, so the engine stays awake "
                "and keeps its memory (host.shutdown() frees it)"
            )
        if not self._sleep_mode:
            return "this engine was started with enable_sleep_mode=False"
        return None

    async def sleep(self) -> None:
        # Level 1: weights to host memory, KV cache dropped. Level 2 discards the weights, and
        # greedy text after waking differed on an H200 (vLLM 0.26), so it is never used here.
        await self._engine.sleep(level=1)

    async def wake(self) -> None:
        await self._engine.wake_up()

    async def _warm_up(self) -> None:
        # The first request pays one-off costs (allocations, kernel selection) that would
        # otherwise land in the user's first TTFT.
        ids = self._tokenizer("Hello", add_special_tokens=False)["input_ids"]
        stream = Stream("vstream-warmup", "Hello", ids, {"max_tokens": 4, "temperature": 0.0})
        await self.run(stream, RenderedPrompt("Hello", ids), {"max_tokens": 4, "temperature": 0.0})
        if stream.error is not None:
            raise EngineStartError(f"the engine started but failed its first request: {stream.error}")

    def render_many(self, specs: Sequence[PromptSpec]) -> list[RenderedPrompt]:
        # Each distinct prompt is rendered once (``-n 8`` and compare columns repeat one), and one
        # tokenizer call per kind encodes them all: 64 prompts took ~2x longer one by one, and
        # chat templates already carry their special tokens.
        distinct = {_spec_key(spec): spec for spec in specs}
        rendered = dict(zip(distinct, self._render_distinct(list(distinct.values())), strict=True))
        return [rendered[_spec_key(spec)] for spec in specs]

    def _render_distinct(self, specs: Sequence[PromptSpec]) -> list[RenderedPrompt]:
        tokenizer = self._tokenizer
        texts = [spec.prompt if spec.is_plain else self._apply_template(spec) for spec in specs]
        ids: list[list[int] | None] = [None] * len(specs)
        for plain in (True, False):
            where = [i for i, spec in enumerate(specs) if spec.is_plain is plain]
            if where:
                encoded = tokenizer([texts[i] for i in where], add_special_tokens=plain)["input_ids"]
                for i, token_ids in zip(where, encoded, strict=True):
                    ids[i] = token_ids
        return [RenderedPrompt(text, token_ids or []) for text, token_ids in zip(texts, ids, strict=True)]

    def _apply_template(self, spec: PromptSpec) -> str:
        if getattr(self._tokenizer, "chat_template", None) is None:
            raise ValueError(f"model {self.config.model!r} has no chat template; pass a plain prompt instead")
        return self._tokenizer.apply_chat_template(spec.messages(), tokenize=False, add_generation_prompt=True)

    async def run(self, stream: Stream, prompt: RenderedPrompt, sampling: dict[str, Any]) -> None:
        collector = None
        try:
            self._split_reasoning(stream, prompt, sampling.get("reasoning"))
            # Inside the try: vLLM's own checks (SamplingParams.__post_init__) end the stream too.
            params = self._params(sampling)
            # Token ids, not text: the prompt was tokenized once already, to check it fits.
            engine_prompt = {"prompt_token_ids": prompt.token_ids}
            collector = await self._engine.add_request(stream.request_id, engine_prompt, params)
            await feeding.attach(collector, stream, logprobs=sampling.get("logprobs") is not None)
        except asyncio.CancelledError:
            try:
                if not stream.done:  # abort it in the engine, by vLLM's own id once it has one
                    internal = collector is not None
                    await self._engine.abort(collector.request_id if internal else stream.request_id, internal=internal)
            finally:
                stream._finish(CANCELLED)
        except self._vllm_dead_error:
            reason = self.dead_reason() or "see %vstream logs"
            died = EngineDeadError(f"the engine died during request {stream.request_id}: {reason}")
            stream._finish(ERROR, error=died)
        except Exception as exc:
            stream._finish(ERROR, error=exc)
        finally:
            if not stream.done:
                stream._finish(ERROR, error=EngineDeadError("the engine ended the request without finishing it"))

    @functools.cached_property
    def thinking_model(self) -> bool:
        """``reasoning=None`` (auto) turns the split on for this model: its tokenizer has the
        ``<think>`` markers as tokens, or its chat template writes them."""
        template = getattr(self._tokenizer, "chat_template", None)
        return self.marker_tokens or reasoning.is_thinking_model(None, str(template) if template else None)

    @functools.cached_property
    def marker_tokens(self) -> bool:
        """The vocabulary has ``<think>`` and ``</think>`` as tokens: vLLM's parser can split."""
        return reasoning.has_marker_tokens(self._tokenizer.get_vocab())

    def _split_reasoning(self, stream: Stream, prompt: RenderedPrompt, wanted: bool | None) -> None:
        """Turn the split on (auto: for thinking models), with vLLM's reasoning parser where the
        tokenizer has the marker tokens and the text-level splitter otherwise."""
        if wanted is False or (wanted is None and not self.thinking_model):
            return
        inside = reasoning.starts_inside(prompt.text)
        parser = reasoning.vllm_parser(self._tokenizer, inside=inside) if self.marker_tokens else None
        stream._think(inside=inside, parser=parser)

    def _params(self, sampling: dict[str, Any]) -> Any:
        """vLLM's SamplingParams for checked settings (each option's keyword from its row)."""
        kwargs = options.engine_arguments(sampling)
        structured = kwargs.pop("structured_outputs", None)
        if structured:
            kwargs.update(_structured_outputs(self._sampling_params, structured))
        return self._sampling_params(**kwargs, output_kind=self._delta)

    @property
    def async_llm(self) -> Any:
        return self._engine

    def unfinished_requests(self) -> int:
        if self._engine is None:
            return 0
        # AsyncLLM gained this method after 0.26; its output processor has it in both lines.
        return int(self._engine.output_processor.get_num_unfinished_requests())

    def dead_reason(self) -> str | None:
        engine = self._engine
        if engine is None:
            return None
        try:
            dead = bool(engine.errored)
        except Exception:
            dead = True
        if not dead:
            return None
        gone = [pid for pid in self._pids if not psutil.pid_exists(pid)]
        if gone:
            return f"the EngineCore process (pid {', '.join(map(str, gone))}) exited"
        return "the engine stopped responding"

    def process_ids(self) -> list[int]:
        return list(self._pids)

    async def shutdown(self) -> None:
        # First, while it is sure to run: at kernel exit the rest may be cut short (engine.py).
        # The engine's processes are connected already; the socket names are not needed anymore.
        ipc_folder.remove(self._ipc_folder)
        self._ipc_folder = None
        engine, self._engine = self._engine, None
        if engine is not None:
            engine.shutdown()
            # Collect it now: left to interpreter exit, AsyncLLM.__del__ runs against torn-down
            # modules and prints "Exception ignored ... TypeError".
            del engine
            gc.collect()
        _reap(self._pids)
        self._release_cores()


V2_RUNNER = "VLLM_USE_V2_MODEL_RUNNER"


@contextlib.contextmanager
def _model_runner_for(engine_kwargs: dict[str, Any]) -> Any:
    """An engine with a ``reasoning_config`` (it exists for ``thinking_token_budget``) gets vLLM's
    V1 model runner: vLLM 0.26's V2 runner, its default on CUDA for most models, refuses every
    request that sets a budget. vLLM reads the switch while AsyncLLM is built (the kernel's input
    processor keeps it) and in the EngineCore, which takes the environment at its start. A
    ``VLLM_USE_V2_MODEL_RUNNER`` set by the user is left as it is."""
    if engine_kwargs.get("reasoning_config") is None or V2_RUNNER in os.environ:
        yield
        return
    os.environ[V2_RUNNER] = "0"
    try:
        yield
    finally:
        os.environ.pop(V2_RUNNER, None)


def _structured_outputs(sampling_params: type, constraint: dict[str, Any]) -> dict[str, Any]:
    """``structured_outputs=StructuredOutputsParams(...)`` (vLLM 0.12 and later: both lines in
    use, 0.26 and 0.32, spell it so), or the ``guided_decoding`` of older versions; found by
    the fields SamplingParams (a msgspec Struct) declares, not by version numbers."""
    from vllm import sampling_params as module

    accepts = getattr(sampling_params, "__struct_fields__", ())
    if "structured_outputs" in accepts and hasattr(module, "StructuredOutputsParams"):
        return {"structured_outputs": module.StructuredOutputsParams(**constraint)}
    if "guided_decoding" in accepts and hasattr(module, "GuidedDecodingParams"):
        return {"guided_decoding": module.GuidedDecodingParams(**constraint)}
    raise SamplingError(f"this vLLM ({module.__name__}) has no structured outputs: upgrade vLLM to use them")


def _spec_key(spec: PromptSpec) -> tuple[Any, ...]:
    """A hashable identity for a prompt (chat messages are dicts, validated to hold strings)."""
    if isinstance(spec.prompt, str):
        return (spec.prompt, spec.chat, spec.system)
    return (tuple((m["role"], m["content"]) for m in spec.prompt), spec.chat, spec.system)


def _child_pids() -> set[int]:
    # multiprocessing's resource tracker and forkserver are shared by everything in the process
    # and live as long as it does (the forkserver serves the next engine): not ours to reap. The
    # forkserver is known by its pid: the engine it forks starts with the same command line.
    children = psutil.Process().children(recursive=True)
    server = spawning.forkserver_pid()
    return {p.pid for p in children if p.pid != server and not _is_resource_tracker(p)}


def _is_resource_tracker(process: psutil.Process) -> bool:
    try:
        return any("resource_tracker" in part for part in process.cmdline())
    except psutil.Error:
        return False


def _reap(pids: list[int], timeout: float = 10.0) -> None:
    procs = []
    for pid in pids:
        try:
            procs.append(psutil.Process(pid))
        except psutil.NoSuchProcess:
            continue
    _gone, alive = psutil.wait_procs(procs, timeout=timeout)
    for proc in alive:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=5)


def _device_name(device: str) -> str:
    if device != "cuda":
        return f"CPU ({cpu_model()}, {os.cpu_count()} cores)"
    try:
        from vllm.platforms import current_platform

        return str(current_platform.get_device_name(0))
    except Exception:
        return "CUDA GPU"


def _start_failure(exc: BaseException) -> str:
    tail = logs.tail(200)
    cause = logs.root_cause(tail)
    text = f"{type(exc).__name__}: {exc}"
    lowered = (text + " " + (cause or "")).lower()
    if "memory" in lowered or "kv cache" in lowered:
        hint = " Lower kv_cache_memory, kv_cache_tokens or max_model_len, or free memory held by another engine."
    else:
        hint = " Run `%vstream logs` (or vstream.engine().logs()) for the engine's full log."
    detail = f" Root cause: {cause}." if cause and cause not in text else ""
    return f"the engine failed to start: {text}.{detail}{hint}"
