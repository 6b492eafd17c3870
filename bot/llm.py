"""The one module that names LLM providers: llama-index clients behind a two-method protocol with a hard deadline."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

from index.errors import NewsbotError, first_line

log = logging.getLogger(__name__)

PROVIDERS = ("none", "ollama", "openai", "openai-compatible")
DEFAULT_MODELS = {"ollama": "llama3.2", "openai": "gpt-4o-mini"}
DEFAULT_URLS = {"ollama": "http://127.0.0.1:11434", "openai": "https://api.openai.com/v1"}
NO_KEY = "no-key"  # sent when an OpenAI-compatible server needs none; an empty key would make the client read env
MAX_OUTPUT_TOKENS = 1024
TEMPERATURE = 0.1
OLLAMA_CONTEXT = 8192  # num_ctx: room for the sources; a model's full window (often 128k) would waste memory


@dataclass(frozen=True)
class Message:
    """One chat message: role is "system", "user" or "assistant"."""

    role: str
    content: str


class LLMError(NewsbotError):
    """The language model failed (unreachable, timeout, HTTP error, bad reply); the message is one user-safe line."""


class ChatModel(Protocol):
    """What newsbot needs from a language model; ``deadline`` is a ``time.monotonic()`` instant."""

    name: str

    def chat(self, messages: Sequence[Message], *, deadline: float) -> str:
        """The whole reply, or LLMError (at the latest at ``deadline``)."""
        ...

    def stream(self, messages: Sequence[Message], *, deadline: float) -> Iterator[str]:
        """Text deltas as they arrive; raises LLMError on failure or once ``deadline`` has passed."""
        ...


_DATA, _END, _ERROR = "data", "end", "error"


class LlamaIndexChat:
    """A llama-index LLM run on a worker thread, so that no server can hold the caller past its deadline."""

    def __init__(self, llm: Any, name: str, *, where: str, secrets: Iterable[str] = ()) -> None:
        self._llm = llm
        self.name = name
        self._where = where
        self._secrets = tuple(s for s in secrets if s)

    def chat(self, messages: Sequence[Message], *, deadline: float) -> str:
        msgs = _to_llama(messages)

        def produce() -> Iterator[str]:
            yield self._llm.chat(msgs).message.content or ""

        return "".join(self._pump(produce, deadline))

    def stream(self, messages: Sequence[Message], *, deadline: float) -> Iterator[str]:
        msgs = _to_llama(messages)

        def produce() -> Iterator[str]:
            for chunk in self._llm.stream_chat(msgs):
                if chunk.delta:
                    yield chunk.delta

        return self._pump(produce, deadline)

    def _pump(self, produce: Callable[[], Iterator[str]], deadline: float) -> Iterator[str]:
        """Run ``produce`` on a daemon thread; hand its items over until it ends, fails or the deadline passes."""
        items: queue.Queue[tuple[str, Any]] = queue.Queue()
        stop = threading.Event()
        budget = max(0.0, deadline - time.monotonic())

        def work() -> None:
            it = produce()
            try:
                for piece in it:
                    if stop.is_set():
                        break
                    items.put((_DATA, piece))
                items.put((_END, None))
            except BaseException as exc:  # handed to the caller's thread, which translates it
                items.put((_ERROR, exc))
            finally:
                close = getattr(it, "close", None)
                if close is not None:
                    try:
                        close()
                    except Exception:  # closing an abandoned HTTP stream may fail; nothing to do about it
                        pass

        threading.Thread(target=work, name="newsbot-llm", daemon=True).start()
        try:
            while True:
                remaining = deadline - time.monotonic()
                try:
                    if remaining <= 0:
                        raise queue.Empty
                    kind, value = items.get(timeout=remaining)
                except queue.Empty:
                    log.info("LLM %s at %s: no complete reply within %.1f s", self.name, self._where, budget)
                    raise LLMError(f"the language model ({self.name}) did not finish within {budget:.3g} s "
                                   "(NEWSBOT_LLM_TIMEOUT_S)") from None
                if kind == _END:
                    return
                if kind == _ERROR:
                    raise self._translate(value) from None
                yield value
        finally:
            stop.set()

    def _translate(self, exc: BaseException) -> LLMError:
        """A one-line, secret-free description of a client exception."""
        detail = self._scrub(str(exc))[:300]
        log.info("LLM %s at %s failed: %s: %s", self.name, self._where, type(exc).__name__, detail)
        status = _status_code(exc)
        kind = type(exc).__name__.lower()
        if status == 429:
            return LLMError(f"the language model server at {self._where} is rate-limiting requests (HTTP 429)")
        if status in (401, 403):
            return LLMError(f"the language model server at {self._where} refused the request (HTTP {status}): "
                            "check NEWSBOT_LLM_API_KEY")
        if status == 404:
            return LLMError(f"the language model server at {self._where} answered HTTP 404: check "
                            f"NEWSBOT_LLM_MODEL ({self.name}) and NEWSBOT_LLM_BASE_URL")
        if status is not None:
            return LLMError(f"the language model server at {self._where} failed (HTTP {status})")
        if "timeout" in kind:
            return LLMError(f"the language model server at {self._where} timed out (NEWSBOT_LLM_TIMEOUT_S)")
        if any(word in kind for word in ("remoteprotocol", "incomplete", "readerror")):
            return LLMError(f"the language model server at {self._where} dropped the connection mid-reply")
        if "connect" in kind or isinstance(exc, ConnectionError):
            return LLMError(f"the language model server at {self._where} is unreachable")
        if any(word in kind for word in ("protocol", "decode", "json", "validation")):
            return LLMError(f"the language model server at {self._where} sent a malformed reply")
        return LLMError(f"the language model at {self._where} failed ({type(exc).__name__})")

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text


def _status_code(exc: BaseException) -> int | None:
    for candidate in (exc, exc.__cause__, exc.__context__):
        code = getattr(candidate, "status_code", None)
        if isinstance(code, int) and code >= 400:
            return code
        response = getattr(candidate, "response", None)
        code = getattr(response, "status_code", None)
        if isinstance(code, int) and code >= 400:
            return code
    return None


def _to_llama(messages: Sequence[Message]) -> list[Any]:
    from llama_index.core.llms import ChatMessage

    return [ChatMessage(role=m.role, content=m.content) for m in messages]


def where(url: str) -> str:
    """``host:port`` of a server URL, without any credentials or path, for messages."""
    parts = urlsplit(url)
    host = parts.hostname or url
    return f"{host}:{parts.port}" if parts.port else host


def build_chat_model(provider: str, *, model: str = "", base_url: str = "", api_key: str = "",
                     timeout_s: float = 30.0) -> ChatModel | None:
    """The chat model for a provider name, or None for "none"; every credential is passed explicitly."""
    if provider == "none":
        return None
    if provider not in PROVIDERS:
        raise NewsbotError(f"NEWSBOT_LLM_PROVIDER={provider!r} is not one of {', '.join(PROVIDERS)}")
    name = model or DEFAULT_MODELS.get(provider, "")
    url = (base_url or DEFAULT_URLS.get(provider, "")).rstrip("/")
    if not name:
        raise NewsbotError(f"NEWSBOT_LLM_PROVIDER={provider} needs NEWSBOT_LLM_MODEL (the model's name on the server)")
    if not url:
        raise NewsbotError(f"NEWSBOT_LLM_PROVIDER={provider} needs NEWSBOT_LLM_BASE_URL, e.g. http://127.0.0.1:8080/v1")
    if provider == "openai" and not api_key:
        raise NewsbotError("NEWSBOT_LLM_PROVIDER=openai needs NEWSBOT_LLM_API_KEY (OPENAI_API_KEY is not read)")
    if provider == "ollama":
        try:
            from llama_index.llms.ollama import Ollama
        except ImportError:
            raise NewsbotError("NEWSBOT_LLM_PROVIDER=ollama needs the ollama extra: "
                               "pip install -e '.[ollama]'") from None
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else None
        llm: Any = Ollama(model=name, base_url=url, request_timeout=timeout_s, temperature=TEMPERATURE,
                          headers=headers, additional_kwargs={"num_predict": MAX_OUTPUT_TOKENS},
                          context_window=OLLAMA_CONTEXT, is_function_calling_model=False)
    else:
        try:
            if provider == "openai":
                from llama_index.llms.openai import OpenAI as Client
            else:
                from llama_index.llms.openai_like import OpenAILike as Client
        except ImportError:
            raise NewsbotError(f"NEWSBOT_LLM_PROVIDER={provider} needs the openai extra: "
                               "pip install -e '.[openai]'") from None
        extra: dict[str, Any] = {"is_chat_model": True} if provider == "openai-compatible" else {}
        try:
            llm = Client(model=name, api_key=api_key or NO_KEY, api_base=url, timeout=timeout_s, max_retries=0,
                         max_tokens=MAX_OUTPUT_TOKENS, temperature=TEMPERATURE, **extra)
        except ValueError as err:  # e.g. a model only the Responses API serves
            raise NewsbotError(f"NEWSBOT_LLM_MODEL={name}: not usable with NEWSBOT_LLM_PROVIDER={provider} "
                               f"({first_line(err, 160)})") from None
    return LlamaIndexChat(llm, name, where=where(url), secrets=(api_key,))
