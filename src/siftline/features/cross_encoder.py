"""Cross-encoder rerankers the user brings: an ONNX model and its ``tokenizer.json`` in a local folder.

A cross-encoder reads the query and a passage together (``[CLS] query [SEP] passage [SEP]``) and
returns one relevance logit, which is more accurate than comparing two separately computed
embeddings. Nothing is downloaded: the folder is one the user exported or copied (for instance a
Hugging Face cross-encoder repository with its ONNX export), holding

* ``model.onnx`` (or ``onnx/model.onnx``, the Hugging Face layout), with BERT-style inputs:
  ``input_ids`` and ``attention_mask``, optionally ``token_type_ids`` (int64 or int32,
  ``[batch, sequence]``), and a float first output shaped ``[batch]``, ``[batch, 1]`` or
  ``[batch, 2]``;
* ``tokenizer.json`` (a Hugging Face ``tokenizers`` file); pairs are encoded with its own pair
  template, so segment ids are whatever the model was trained with.

Scores: a one-logit head gives that logit; a two-logit head (a softmax classifier over
"not relevant, relevant") gives ``l1 - l0``, because ``sigmoid(l1 - l0)`` is exactly the softmax
probability of "relevant" (the raw last column alone would ignore the other class). ``score``
then applies a sigmoid by default, mapping the logit to a (0, 1) relevance probability: ranking is
unchanged (the sigmoid is monotonic) but scores become comparable across queries and usable
with thresholds and score fusion.

Models load lazily (on first use), once per process and folder (``get_cross_encoder`` caches
them; a model or tokenizer file changed on disk loads again), and are safe to share between
threads: onnxruntime sessions run concurrently, and tokenizer reconfiguration is locked.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

MODEL_FILES = ("model.onnx", "onnx/model.onnx")
TOKENIZER_FILE = "tokenizer.json"
REQUIRED_INPUTS = ("input_ids", "attention_mask")
OPTIONAL_INPUTS = ("token_type_ids",)
_INT_TYPES: dict[str, type[np.integer[Any]]] = {"tensor(int64)": np.int64, "tensor(int32)": np.int32}
_FLOAT_TYPES = ("tensor(float)", "tensor(float16)", "tensor(double)")


class CrossEncoderError(ValueError):
    """The folder or its model is not a usable cross-encoder; the message says what to fix."""


@dataclass(frozen=True)
class ModelFolder:
    """The files of a cross-encoder folder and their identity on disk (size, mtime)."""

    folder: Path
    model: Path
    tokenizer: Path

    def fingerprint(self) -> tuple[int, int, int, int]:
        m, t = self.model.stat(), self.tokenizer.stat()
        return (m.st_size, m.st_mtime_ns, t.st_size, t.st_mtime_ns)


def locate(path: str | Path) -> ModelFolder:
    """Find the model and tokenizer files of a cross-encoder folder, or say which one is missing."""
    folder = Path(path).expanduser()
    if not folder.exists():
        raise CrossEncoderError(
            f"no folder at '{path}'; give a local folder holding model.onnx and tokenizer.json"
        )
    if not folder.is_dir():
        raise CrossEncoderError(
            f"'{path}' is a file, not a folder; give the folder holding model.onnx and tokenizer.json"
        )
    folder = folder.resolve()
    model = next((folder / name for name in MODEL_FILES if (folder / name).is_file()), None)
    if model is None:
        raise CrossEncoderError(
            f"the folder '{path}' has no model.onnx (looked for {', '.join(MODEL_FILES)})"
        )
    tokenizer = folder / TOKENIZER_FILE
    if not tokenizer.is_file():
        raise CrossEncoderError(
            f"the folder '{path}' has no tokenizer.json (the Hugging Face tokenizers file of the model)"
        )
    return ModelFolder(folder, model, tokenizer)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """A logistic function that neither overflows nor warns for large negative logits."""
    return np.exp(-np.logaddexp(0.0, -np.asarray(x, dtype=np.float64)))


class CrossEncoder:
    """One cross-encoder folder: lazily loaded ONNX session and tokenizer, scoring (query, passage) pairs."""

    def __init__(self, path: str | Path, threads: int = 0) -> None:
        self.files = locate(path)
        self.fingerprint = self.files.fingerprint()
        self.threads = threads
        self.name = str(self.files.folder)
        self._lock = threading.Lock()  # loading
        self._tokenize_lock = threading.Lock()  # the tokenizer's truncation/padding are shared state
        self._session: Any = None
        self._tokenizer: Any = None
        self._error: CrossEncoderError | None = None
        self._inputs: dict[str, type[np.integer[Any]]] = {}
        self._output = ""
        self._fixed_batch: int | None = None
        self._fixed_length: int | None = None
        self._pad: dict[str, Any] = {}
        self._configured: tuple[int, int | None] | None = None

    @property
    def loaded(self) -> bool:
        return self._session is not None

    @property
    def input_names(self) -> list[str]:
        self.load()
        return list(self._inputs)

    def load(self) -> None:
        """Load and check the model once; a model that failed its check keeps failing without reloading."""
        if self._session is not None:
            return
        with self._lock:
            if self._session is not None:
                return
            if self._error is not None:
                raise self._error
            try:
                self._load_locked()
            except CrossEncoderError as exc:
                self._error = exc
                raise

    def _load_locked(self) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        try:
            tokenizer = Tokenizer.from_file(str(self.files.tokenizer))
        except Exception as exc:
            raise CrossEncoderError(
                f"'{self.files.tokenizer}' is not a readable tokenizers file: {exc}"
            ) from exc
        options = ort.SessionOptions()
        if self.threads:
            options.intra_op_num_threads = self.threads
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # pool threads spin during a call and stop when it returns (see embedder.py)
        options.add_session_config_entry("session.force_spinning_stop", "1")
        options.enable_cpu_mem_arena = False  # batches of varying length: give memory back (see embedder.py)
        try:
            session = ort.InferenceSession(str(self.files.model), options, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise CrossEncoderError(f"onnxruntime cannot load '{self.files.model}': {exc}") from exc
        self._check_signature(session)
        self._pad = _pad_config(tokenizer)
        tokenizer.no_padding()
        tokenizer.no_truncation()
        self._tokenizer = tokenizer
        self._session = session

    def _check_signature(self, session: Any) -> None:
        """Accept only BERT-style cross-encoders: token inputs we know how to fill and a score output."""
        inputs = {i.name: i for i in session.get_inputs()}
        expected = (
            "inputs input_ids and attention_mask (and optionally token_type_ids), int64 [batch, sequence]"
        )
        declared = ", ".join(f"{i.name} {i.type} {list(i.shape)}" for i in inputs.values())
        missing = [n for n in REQUIRED_INPUTS if n not in inputs]
        unknown = [n for n in inputs if n not in REQUIRED_INPUTS + OPTIONAL_INPUTS]
        if missing or unknown:
            raise CrossEncoderError(
                f"'{self.files.model}' does not look like a cross-encoder: it should take {expected}, "
                f"but it declares {declared or 'no inputs'}"
            )
        for arg in inputs.values():
            if arg.type not in _INT_TYPES or len(arg.shape) != 2:
                raise CrossEncoderError(
                    f"'{self.files.model}' does not look like a cross-encoder: input {arg.name} is "
                    f"{arg.type} {list(arg.shape)}; it should be an integer tensor [batch, sequence]"
                )
            self._inputs[arg.name] = _INT_TYPES[arg.type]
        batch, length = inputs["input_ids"].shape
        self._fixed_batch = batch if isinstance(batch, int) and batch > 0 else None
        self._fixed_length = length if isinstance(length, int) and length > 0 else None
        output = session.get_outputs()[0]
        shape = list(output.shape)
        fits = len(shape) == 1 or (len(shape) == 2 and (not isinstance(shape[1], int) or shape[1] in (1, 2)))
        if output.type not in _FLOAT_TYPES or not fits:
            raise CrossEncoderError(
                f"'{self.files.model}' does not look like a cross-encoder: its first output "
                f"{output.name} is {output.type} {shape}; a cross-encoder returns one relevance "
                "logit per pair, shaped [batch], [batch, 1] or [batch, 2] (a bi-encoder returns "
                "token or sentence embeddings instead)"
            )
        self._output = output.name

    def logits(
        self, query: str, passages: Sequence[str], *, max_length: int = 512, batch_size: int = 32
    ) -> np.ndarray:
        """One relevance logit per passage (float64), pairs truncated to ``max_length`` tokens."""
        self.load()
        out = np.empty(len(passages), dtype=np.float64)
        if not passages:
            return out
        if self._fixed_length is not None:
            max_length = min(max_length, self._fixed_length)
        size = self._fixed_batch or batch_size
        # Similar lengths in one batch pad less; the order is restored at the end.
        order = sorted(range(len(passages)), key=lambda i: len(passages[i]))
        for start in range(0, len(order), size):
            idx = order[start : start + size]
            out[idx] = self._batch(query, [passages[i] for i in idx], max_length)
        return out

    def score(
        self,
        query: str,
        passages: Sequence[str],
        *,
        max_length: int = 512,
        batch_size: int = 32,
        apply_sigmoid: bool = True,
    ) -> np.ndarray:
        """Relevance of each passage to ``query``: the sigmoid of the logit, or the raw logit."""
        raw = self.logits(query, passages, max_length=max_length, batch_size=batch_size)
        return sigmoid(raw) if apply_sigmoid else raw

    def _batch(self, query: str, passages: list[str], max_length: int) -> np.ndarray:
        n = len(passages)
        if self._fixed_batch is not None and n < self._fixed_batch:
            passages = passages + [passages[-1]] * (self._fixed_batch - n)  # filler rows, dropped below
        encodings = self._encode([(query, p) for p in passages], max_length)
        columns = {
            "input_ids": [e.ids for e in encodings],
            "attention_mask": [e.attention_mask for e in encodings],
            "token_type_ids": [e.type_ids for e in encodings],
        }
        feeds = {name: np.array(columns[name], dtype=dtype) for name, dtype in self._inputs.items()}
        try:
            raw = self._session.run([self._output], feeds)[0]
        except Exception as exc:
            raise CrossEncoderError(
                f"the cross-encoder '{self.files.folder}' failed on a batch ({exc}); if the message "
                "mentions an index out of range, lower max_length to the model's maximum"
            ) from exc
        return _logit_column(np.asarray(raw, dtype=np.float64), len(passages), self.name)[:n]

    def _encode(self, pairs: list[tuple[str, str]], max_length: int) -> list[Any]:
        with self._tokenize_lock:
            wanted = (max_length, self._fixed_length)
            if self._configured != wanted:
                # longest_first trims the longer of query and passage first, as Hugging Face does by default.
                self._tokenizer.enable_truncation(max_length=max_length, strategy="longest_first")
                self._tokenizer.enable_padding(length=self._fixed_length, **self._pad)
                self._configured = wanted
            return list(self._tokenizer.encode_batch(pairs))


def _pad_config(tokenizer: Any) -> dict[str, Any]:
    """The tokenizer's own pad token (BERT ``[PAD]`` 0, XLM-R ``<pad>`` 1), whatever length it padded to."""
    own = tokenizer.padding or {}
    if own.get("pad_token") is not None:
        return {
            "pad_id": own["pad_id"],
            "pad_token": own["pad_token"],
            "pad_type_id": own.get("pad_type_id", 0),
        }
    for token in ("[PAD]", "<pad>"):
        token_id = tokenizer.token_to_id(token)
        if token_id is not None:
            return {"pad_id": token_id, "pad_token": token, "pad_type_id": 0}
    return {"pad_id": 0, "pad_token": "[PAD]", "pad_type_id": 0}


def _logit_column(raw: np.ndarray, rows: int, name: str) -> np.ndarray:
    if raw.ndim == 1 and raw.shape[0] == rows:
        return raw
    if raw.ndim == 2 and raw.shape[0] == rows and raw.shape[1] == 1:
        return raw[:, 0]
    if raw.ndim == 2 and raw.shape[0] == rows and raw.shape[1] == 2:
        return raw[:, 1] - raw[:, 0]  # softmax classifier: log-odds of "relevant"
    raise CrossEncoderError(
        f"the cross-encoder '{name}' returned shape {list(raw.shape)} for {rows} pairs; "
        "expected [batch], [batch, 1] or [batch, 2]"
    )


_CACHE: dict[Path, CrossEncoder] = {}
_CACHE_LOCK = threading.Lock()


def get_cross_encoder(path: str | Path) -> CrossEncoder:
    """The process-wide cross-encoder of a folder: created once, reloaded only when its files change."""
    files = locate(path)
    current = files.fingerprint()
    with _CACHE_LOCK:
        cached = _CACHE.get(files.folder)
        if cached is None or cached.fingerprint != current:
            cached = CrossEncoder(files.folder)
            _CACHE[files.folder] = cached
        return cached
