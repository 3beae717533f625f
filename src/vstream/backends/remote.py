"""An OpenAI-compatible vLLM server (``vllm serve``) as the source of tokens.

Same shape as ``local.py``: ``start``/``run``/``shutdown`` run on the EngineHost's loop thread
(one ``httpx.AsyncClient`` lives there), ``render`` runs in the caller's thread with a sync
client. Nothing here imports vLLM.

* Prompts are rendered by the server itself (``POST /tokenize`` with ``messages``, then
  ``/detokenize``), so the chat template is exactly the one the server applies, and requests
  send token ids to ``/v1/completions`` with ``stream: true``.
* Cancel closes the HTTP response; vLLM aborts a streaming request whose client went away.
* A server that is down is a per-request error, not a dead engine: the next request after it
  comes back works without a restart (``dead_reason`` is always None; see ``dead_reason``).
* The API key lives in request headers only; no repr, message or EngineInfo carries it.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import httpx

from .. import options, reasoning
from ..config import EngineConfig
from ..errors import EngineStartError, VStreamError
from ..streaming import CANCELLED, ERROR, Stream, TokenLogprob
from .base import EngineInfo, Progress, PromptSpec, RenderedPrompt

# connect() passes this as the model when none is named: use the server's (first) model.
AUTO_MODEL = "auto"

CONNECT_TIMEOUT_S = 10.0
# Longest silence between two chunks of a stream (a busy classroom server queues requests).
READ_TIMEOUT_S = 300.0


class ServerError(VStreamError, RuntimeError):
    """The server answered a request with an error (``status`` is its HTTP status, if any)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ServerRequestError(ServerError, ValueError):
    """The server rejected the request (HTTP 4xx): a setting it does not accept."""


class ServerUnavailableError(ServerError, ConnectionError):
    """The server could not be reached, stopped answering, or dropped the connection."""


def split_base_url(base_url: str) -> tuple[str, str]:
    """``(root, host:port)`` for ``http://host:port[/v1]``; the root has no trailing ``/v1``."""
    url = base_url.strip().rstrip("/")
    if "://" not in url:
        url = "http://" + url
    if url.endswith("/v1"):
        url = url[: -len("/v1")]
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise EngineStartError(f"base_url must look like http://host:port, got {base_url!r}")
    if parts.username or parts.password:
        raise EngineStartError(
            "base_url must not carry credentials: pass api_key= or set VSTREAM_API_KEY"
        )
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return url, f"{parts.hostname}:{port}"


class RemoteBackend:
    """Streams from ``vllm serve`` over HTTP; one per EngineHost launch."""

    def __init__(self, config: EngineConfig, api_key: str | None = None) -> None:
        assert config.base_url, "RemoteBackend needs config.base_url"
        self.config = config
        self.root, self.address = split_base_url(config.base_url)
        options = dict(config.engine_args)
        self._timeout = httpx.Timeout(
            float(options.get("timeout", READ_TIMEOUT_S)),
            connect=float(options.get("connect_timeout", CONNECT_TIMEOUT_S)),
        )
        # Headers hold the key; httpx's reprs and ours never show headers.
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.info: EngineInfo | None = None
        self.model: str | None = None
        self._client: httpx.AsyncClient | None = None
        self._sync: httpx.Client | None = None
        self._in_flight: set[str] = set()

    def __repr__(self) -> str:
        return f"<RemoteBackend {self.root} model={self.model!r}>"

    # --- lifecycle (loop thread) ------------------------------------------------------------------

    async def start(self, progress: Progress) -> EngineInfo:
        progress(f"connecting to {self.root}")
        # Many streams per kernel in a classroom: keep a connection per stream, not a queue.
        limits = httpx.Limits(max_connections=256, max_keepalive_connections=32)
        self._client = httpx.AsyncClient(
            base_url=self.root, headers=self._headers, timeout=self._timeout, limits=limits
        )
        self._sync = httpx.Client(base_url=self.root, headers=self._headers, timeout=self._timeout)
        try:
            health = await self._client.get("/health")
        except httpx.HTTPError as exc:
            raise EngineStartError(_unreachable(self.root, exc)) from None
        if health.status_code != 200:
            raise EngineStartError(
                f"the vLLM server at {self.root} is not healthy (GET /health answered {health.status_code}): "
                "it may still be starting or its engine died; check the server's log"
            )
        progress("reading the server's models")
        try:
            response = await self._client.get("/v1/models")
        except httpx.HTTPError as exc:
            raise EngineStartError(_unreachable(self.root, exc)) from None
        if response.status_code != 200:
            raise EngineStartError(
                _http_error(self.root, "GET /v1/models", response.status_code, response.content)
            )
        models = response.json().get("data") or []
        if not models:
            raise EngineStartError(f"the server at {self.root} serves no model")
        entry = self._pick_model(models)
        self.model = entry["id"]
        version = "unknown"
        try:
            answer = await self._client.get("/version")
            if answer.status_code == 200:
                version = str(answer.json().get("version", version))
        except (httpx.HTTPError, ValueError):
            pass
        self.info = EngineInfo(
            model=self.model,
            model_path=str(entry.get("root") or self.model),
            device="remote",
            device_name=self.address,
            mode="remote",
            max_model_len=int(entry.get("max_model_len") or 2048),
            kv_cache_tokens=None,
            backend=f"OpenAI-compatible server at {self.root}",
            vllm_version=version,
            torch_version="n/a (remote)",
        )
        return self.info

    def _pick_model(self, models: list[dict[str, Any]]) -> dict[str, Any]:
        wanted = self.config.model
        if wanted == AUTO_MODEL:
            return models[0]
        for entry in models:
            if wanted in (entry.get("id"), entry.get("root")):
                return entry
        names = ", ".join(repr(m.get("id")) for m in models)
        raise EngineStartError(
            f"the server at {self.root} does not serve {wanted!r}; it serves {names}. "
            f"Connect with model=None (the server's model) or one of these names."
        )

    async def shutdown(self) -> None:
        client, self._client = self._client, None
        sync, self._sync = self._sync, None
        if client is not None:
            await client.aclose()
        if sync is not None:
            sync.close()

    # --- prompts (caller's thread) -------------------------------------------------------------------

    def render_many(self, specs: Sequence[PromptSpec]) -> list[RenderedPrompt]:
        # The server's /tokenize takes one prompt: a batch of the same text prompt asks once
        # (chat messages are lists, not hashable, and are rendered each time).
        known: dict[PromptSpec, RenderedPrompt] = {}
        out = []
        for spec in specs:
            if not isinstance(spec.prompt, str):
                out.append(self._render(spec))
                continue
            if spec not in known:
                known[spec] = self._render(spec)
            out.append(known[spec])
        return out

    def _render(self, spec: PromptSpec) -> RenderedPrompt:
        if spec.is_plain:
            body = {"model": self.model, "prompt": spec.prompt, "add_special_tokens": True}
            return RenderedPrompt(str(spec.prompt), list(self._post_sync("/tokenize", body)["tokens"]))
        body = {"model": self.model, "messages": spec.messages(), "add_generation_prompt": True}
        ids = list(self._post_sync("/tokenize", body)["tokens"])
        text = self._post_sync("/detokenize", {"model": self.model, "tokens": ids})["prompt"]
        return RenderedPrompt(text, ids)

    def _post_sync(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        client = self._sync
        if client is None:
            raise ServerUnavailableError(f"not connected to {self.root}")
        try:
            response = client.post(path, json=body)
        except httpx.TimeoutException:
            raise ServerUnavailableError(
                f"the server at {self.root} did not answer POST {path} in time"
            ) from None
        except httpx.HTTPError as exc:
            raise ServerUnavailableError(_unreachable(self.root, exc)) from None
        if response.status_code != 200:
            raise _error_for(self.root, f"POST {path}", response.status_code, response.content)
        return response.json()  # type: ignore[no-any-return]

    # --- requests (loop thread) -----------------------------------------------------------------

    def _body(self, prompt: RenderedPrompt, sampling: dict[str, Any]) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "prompt": prompt.token_ids,
            "stream": True,
            "stream_options": {"include_usage": True},
            "return_token_ids": True,
        }
        # Each option's server field comes from its row (vLLM's extensions included: top_k, min_p,
        # min_tokens, repetition_penalty, ignore_eos, structured_outputs).
        body.update(options.server_body(sampling))
        return body

    async def run(self, stream: Stream, prompt: RenderedPrompt, sampling: dict[str, Any]) -> None:
        client = self._client
        want_logprobs = sampling.get("logprobs") is not None
        self._in_flight.add(stream.request_id)
        finish: tuple[str, Any] | None = None
        try:
            if client is None:
                raise ServerUnavailableError(f"not connected to {self.root}")
            if sampling.get("reasoning") is None and await self._thinking_model(client):
                stream._think(inside=reasoning.starts_inside(prompt.text))
            # The request id travels as a header vLLM logs, so a teacher can match it to a student.
            headers = {"X-Request-Id": stream.request_id}
            async with client.stream(
                "POST", "/v1/completions", json=self._body(prompt, sampling), headers=headers
            ) as response:
                if response.status_code != 200:
                    raise _error_for(
                        self.root,
                        "POST /v1/completions",
                        response.status_code,
                        await response.aread(),
                    )
                async for line in response.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        break
                    chunk = json.loads(data)
                    if "error" in chunk:
                        error = chunk["error"] or {}
                        raise _error_for(
                            self.root,
                            "the stream",
                            int(error.get("code") or 500),
                            json.dumps(chunk).encode(),
                        )
                    for choice in chunk.get("choices") or ():
                        text = choice.get("text") or ""
                        lp = _token_logprobs(choice.get("logprobs")) if want_logprobs else None
                        ids = choice.get("token_ids")
                        if ids is None:  # a server without return_token_ids: count what it sent
                            ids = [-1] * (len(lp) if lp else (1 if text else 0))
                        stream._feed(text, list(ids), lp)
                        if choice.get("finish_reason") is not None and finish is None:
                            finish = (choice["finish_reason"], choice.get("stop_reason"))
                            # The server is done with it: the UI ends now, while the usage
                            # chunk and [DONE] are read to keep the connection reusable.
                            self._in_flight.discard(stream.request_id)
                            stream._finish(finish[0], stop_reason=finish[1])
            if finish is None:
                raise ServerUnavailableError(
                    f"the server at {self.root} ended the stream before the request finished "
                    f"(after {stream.metrics.tokens} tokens)"
                )
        except asyncio.CancelledError:
            # Leaving `async with` closed the response: the server sees the disconnect and aborts.
            stream._finish(CANCELLED)
        except ServerError as exc:
            stream._finish(ERROR, error=exc)
        except httpx.TimeoutException:
            stream._finish(
                ERROR,
                error=ServerUnavailableError(
                    f"the server at {self.root} sent nothing for {self._timeout.read:.0f} s "
                    f"(after {stream.metrics.tokens} tokens); it may be overloaded or stuck"
                ),
            )
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            stream._finish(ERROR, error=ServerUnavailableError(_unreachable(self.root, exc)))
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
            stream._finish(
                ERROR,
                error=ServerUnavailableError(
                    f"lost the connection to the server at {self.root} mid-stream after "
                    f"{stream.metrics.tokens} tokens ({type(exc).__name__}): was it stopped? "
                    "The text so far is kept; the next request reconnects"
                ),
            )
        except Exception as exc:
            stream._finish(
                ERROR,
                error=ServerError(
                    f"unexpected answer from {self.root}: {type(exc).__name__}: {exc}"
                ),
            )
        finally:
            self._in_flight.discard(stream.request_id)
            if not stream.done:
                stream._finish(ERROR, error=ServerError("the request ended without finishing"))

    async def _thinking_model(self, client: httpx.AsyncClient) -> bool:
        """``reasoning=None`` (auto): the server's tokenizer has both ``<think>`` markers as single
        tokens (asked once, with /tokenize; a server that cannot say counts as no)."""
        known = getattr(self, "_thinks", None)
        if known is None:
            known = True
            for marker in (reasoning.START, reasoning.END):
                try:
                    answer = await client.post(
                        "/tokenize", json={"model": self.model, "prompt": marker, "add_special_tokens": False}
                    )
                    known = known and answer.status_code == 200 and len(answer.json().get("tokens", ())) == 1
                except (httpx.HTTPError, ValueError):
                    known = False
            self._thinks = known
        return known

    # --- introspection --------------------------------------------------------------------------

    def unfinished_requests(self) -> int:
        """Streams this kernel has open to the server (the server's own count: its /metrics)."""
        return len(self._in_flight)

    def dead_reason(self) -> str | None:
        # Called on every submit and status repaint, so it must not touch the network; and a
        # server that is down (or restarting) is reported per request, so the host stays ready
        # and the first request after the server is back simply works.
        return None

    def process_ids(self) -> list[int]:
        return []  # the server's processes belong to whoever ran `vllm serve`

    def server_metrics(self) -> dict[str, float]:
        """The server's Prometheus gauges and counters named ``vllm:*`` (summed over labels)."""
        client = self._sync
        if client is None:
            raise ServerUnavailableError(f"not connected to {self.root}")
        try:
            text = client.get("/metrics").text
        except httpx.HTTPError as exc:
            raise ServerUnavailableError(_unreachable(self.root, exc)) from None
        return parse_metrics(text)


def parse_metrics(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line.startswith("vllm:"):
            continue
        name_labels, _, value = line.rpartition(" ")
        name = name_labels.split("{", 1)[0]
        try:
            number = float(value)
        except ValueError:
            continue
        out[name] = out.get(name, 0.0) + number
    return out


def _token_logprobs(logprobs: dict[str, Any] | None) -> list[TokenLogprob] | None:
    """Completions logprobs (tokens, token_logprobs, top_logprobs) as TokenLogprob entries."""
    if not logprobs:
        return None
    tokens = logprobs.get("tokens") or []
    values = logprobs.get("token_logprobs") or []
    tops = logprobs.get("top_logprobs") or [None] * len(tokens)
    out = []
    for token, value, top in zip(tokens, values, tops, strict=False):
        ranked = sorted((top or {}).items(), key=lambda item: -_finite(item[1]))
        out.append(TokenLogprob(token, _finite(value), tuple((t, _finite(v)) for t, v in ranked)))
    return out


def _finite(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return -math.inf
    return number


def _unreachable(root: str, exc: BaseException) -> str:
    if isinstance(exc, httpx.TimeoutException):
        why = "no answer in time"
    elif _refused(exc):
        why = "connection refused"
    else:
        why = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return f"could not reach the vLLM server at {root}: {why} — is `vllm serve` running there?"


def _refused(exc: BaseException | None) -> bool:
    seen = 0
    while exc is not None and seen < 8:  # httpx wraps the OSError a few levels down
        if isinstance(exc, ConnectionRefusedError) or "refused" in str(exc).lower():
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def _server_message(content: bytes) -> str:
    try:
        body = json.loads(content)
    except ValueError:
        return content.decode("utf-8", "replace").strip()[:300]
    error = body.get("error", body) if isinstance(body, dict) else body
    if isinstance(error, dict):
        return str(error.get("message") or error.get("detail") or error)
    return str(error)


def _http_error(root: str, what: str, status: int, content: bytes) -> str:
    if status == 401:
        return (
            f"the server at {root} refused the API key (401 on {what}): pass api_key=... to "
            "vstream.connect or set VSTREAM_API_KEY (or OPENAI_API_KEY)"
        )
    return f"the server at {root} answered {status} to {what}: {_server_message(content)}"


def _error_for(root: str, what: str, status: int, content: bytes) -> ServerError:
    message = _http_error(root, what, status, content)
    if 400 <= status < 500:
        return ServerRequestError(message, status)
    return ServerError(message, status)
