"""How rankgate talks to a model: one small protocol every backend implements.

Backends speak OpenAI shapes in and out (request payload dicts, ``chat.completion`` /
``text_completion`` bodies, stream chunks), because both llama.cpp and every hosted API already
do; the gateway then only normalises ids and usage. Failures are raised as ``BackendError``
subclasses that carry the honest HTTP status, so no layer above has to guess.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from rankgate.panel import ModelSpec

Kind = Literal["chat", "text"]  # /v1/chat/completions or /v1/completions


@dataclass
class Usage:
    input_tokens: int | None = None
    output_tokens: int | None = None
    estimated: bool = False  # counted by rankgate because the backend did not say


@dataclass
class Result:
    """A finished non-streamed completion."""

    body: dict[str, Any]  # OpenAI response object as the backend produced it
    usage: Usage
    compute_s: float  # seconds the backend spent on it (local models: inside the model lock)
    ttft_s: float | None = None  # compute start → first token, where the backend knows it


@dataclass
class StreamStats:
    """Filled in by a backend while its stream is consumed; final once the stream ends."""

    usage: Usage = field(default_factory=Usage)
    compute_s: float = 0.0


class BackendStream(Protocol):
    stats: StreamStats

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do, so callers ask instead of checking its class.

    The gateway refuses a request needing a capability the chosen model lacks (400 naming
    both), ``auto`` routes only among models that have what the request needs, and the
    evaluation runner asks for logprobs only where they exist.
    """

    streaming: bool = True
    logprobs: bool = False  # token logprobs on request
    tools: bool = False  # returns real ``tool_calls`` when offered ``tools``
    images: bool = False  # image content parts
    audio: bool = False  # input_audio content parts
    files: bool = False  # file content parts
    #: serves ``/v1/embeddings`` (the backend then has ``async embed(payload) -> Result``)
    embeddings: bool = False
    #: requests it serves at once; None = as many as it is sent (an HTTP server queues them)
    max_concurrency: int | None = None
    #: priced by measured compute seconds x the machine's $/hour, not by tokens
    compute_priced: bool = False


@dataclass(frozen=True)
class BackendStatus:
    """Readiness as ``/healthz`` and ``rankgate panel list`` show it."""

    ready: bool | None  # None: not known without a call (a remote server)
    loaded: bool  # weights in memory / nothing to load
    location: str  # file or URL
    size: int | None = None  # bytes of local weights
    note: str | None = None  # why it is not ready, or what was not checked


class Backend(Protocol):
    """A model the gateway can call: one file under ``backends/`` plus one line in
    ``backends/registry.py``. Implementations: ``llamacpp``, ``openai_http``, ``faulty``.

    Lifecycle: built cheaply (nothing loaded or connected), ``load()`` to warm up (local
    weights), ``status()`` at any time without I/O to the model, ``aclose()`` once at the end.
    """

    spec: ModelSpec
    capabilities: Capabilities
    context_window: int | None  # tokens (prompt + completion); None: unknown

    async def load(self) -> None:
        """Make the first request fast (load weights); a no-op for remote models."""
        ...

    def status(self, thorough: bool = False) -> BackendStatus:
        """Readiness without calling the model; ``thorough`` may do slower local checks."""
        ...

    async def complete(self, kind: Kind, payload: dict[str, Any]) -> Result:
        """Run one request to completion. ``payload`` is the client's body minus ``model``."""
        ...

    async def stream(self, kind: Kind, payload: dict[str, Any]) -> BackendStream:
        """Start a streamed request. Errors before the first chunk raise here (so the gateway
        can still answer with an HTTP error status); later ones raise from iteration."""
        ...

    async def aclose(self) -> None: ...


class BackendError(Exception):
    """A request the backend could not serve; ``status`` is the HTTP status to answer with."""

    status = 502
    type = "upstream_error"
    code = "upstream_error"

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


class BackendUnreachable(BackendError):
    code = "upstream_unreachable"


class BackendNotInstalled(BackendError):
    """The package that runs this backend is not installed (a base install without the
    ``local`` extra asked for a llama.cpp model); the message names the extra."""

    status = 503
    code = "backend_not_installed"


class BackendTimeout(BackendError):
    status = 504
    code = "upstream_timeout"


class BadRequest(BackendError):
    """The request itself is wrong for this model (the upstream said 4xx, or we know)."""

    status = 400
    type = "invalid_request_error"
    code = "invalid_request"

    def __init__(self, message: str, *, param: str | None = None, status: int = 400,
                 code: str | None = None) -> None:
        super().__init__(message, param=param)
        self.status = status
        if code:
            self.code = code


class ContextOverflow(BadRequest):
    def __init__(self, prompt_tokens: int, context_window: int, model: str) -> None:
        super().__init__(
            f"This model's maximum context length is {context_window} tokens, but the prompt "
            f"has {prompt_tokens} tokens ({model}). Shorten the prompt.",
            param="messages",
            code="context_length_exceeded",
        )
        self.prompt_tokens = prompt_tokens
        self.context_window = context_window
