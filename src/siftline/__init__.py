"""Siftline: a self-hosted retrieval engine speaking Mixpeek's retriever protocol."""

__version__ = "0.1.0"
__all__ = ["__version__"]
