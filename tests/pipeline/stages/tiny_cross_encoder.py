"""Tiny ONNX models for the rerank tests, built in a temporary folder with ``onnx.helper``.

The "cross-encoder" has BERT's inputs and an easily predicted logit: how many times one token id
occurs in the passage part of the pair, i.e. ``sum(input_ids == token) * token_type_ids *
attention_mask`` over the sequence. Query tokens (segment 0) and padding never count, so a test
knows each score exactly. The folder gets the installed MiniLM ``tokenizer.json``, whose pair
template gives the passage segment id 1. Nothing is downloaded.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import onnx
from onnx import TensorProto, helper

from siftline.features.embedder import model_files

Head = Literal["column", "vector", "pair"]
Dim = int | str
OPSET = 17
IR_VERSION = 8  # what every supported onnxruntime reads


def copy_tokenizer(folder: Path) -> Path:
    """Put the installed MiniLM tokenizer.json into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(model_files()[1], folder / "tokenizer.json"))


def _save(graph: onnx.GraphProto, path: Path) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def build_counting_cross_encoder(
    folder: Path,
    token_id: int,
    *,
    head: Head = "column",
    with_token_type_ids: bool = True,
    batch: Dim = "batch",
    sequence: Dim = "sequence",
    tokenizer: bool = True,
) -> Path:
    """A cross-encoder whose logit counts ``token_id`` in the passage; returns the folder.

    ``head`` shapes the output: ``column`` [batch, 1], ``vector`` [batch], ``pair`` [batch, 2] as
    ``(-count, count)`` (so the two-logit reading ``l1 - l0`` is ``2 * count``). Without
    ``token_type_ids`` (an XLM-R style model) every occurrence in the pair counts, query included.
    """
    names = ["input_ids", "attention_mask"] + (["token_type_ids"] if with_token_type_ids else [])
    inputs = [helper.make_tensor_value_info(n, TensorProto.INT64, [batch, sequence]) for n in names]
    nodes = [
        helper.make_node(
            "Constant", [], ["token"], value=helper.make_tensor("t", TensorProto.INT64, [], [token_id])
        ),
        helper.make_node(
            "Constant", [], ["axes"], value=helper.make_tensor("a", TensorProto.INT64, [1], [1])
        ),
        helper.make_node("Equal", ["input_ids", "token"], ["hit"]),
        helper.make_node("Cast", ["hit"], ["hit_f"], to=TensorProto.FLOAT),
        helper.make_node("Cast", ["attention_mask"], ["mask_f"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["hit_f", "mask_f"], ["counted"]),
    ]
    if with_token_type_ids:
        nodes += [
            helper.make_node("Cast", ["token_type_ids"], ["segment_f"], to=TensorProto.FLOAT),
            helper.make_node("Mul", ["counted", "segment_f"], ["passage_hits"]),
        ]
    else:
        nodes.append(helper.make_node("Identity", ["counted"], ["passage_hits"]))
    if head == "vector":
        nodes.append(helper.make_node("ReduceSum", ["passage_hits", "axes"], ["logits"], keepdims=0))
        out_shape: list[Dim] = [batch]
    elif head == "column":
        nodes.append(helper.make_node("ReduceSum", ["passage_hits", "axes"], ["logits"], keepdims=1))
        out_shape = [batch, 1]
    else:
        nodes += [
            helper.make_node("ReduceSum", ["passage_hits", "axes"], ["count"], keepdims=1),
            helper.make_node("Neg", ["count"], ["not_count"]),
            helper.make_node("Concat", ["not_count", "count"], ["logits"], axis=1),
        ]
        out_shape = [batch, 2]
    output = helper.make_tensor_value_info("logits", TensorProto.FLOAT, out_shape)
    _save(helper.make_graph(nodes, "counting_cross_encoder", inputs, [output]), folder / "model.onnx")
    if tokenizer:
        copy_tokenizer(folder)
    return folder


def build_image_model(folder: Path) -> Path:
    """Not a cross-encoder: one float input ``pixel_values`` [batch, 3] (wrong inputs)."""
    x = helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, ["batch", 3])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 3])
    graph = helper.make_graph([helper.make_node("Identity", ["pixel_values"], ["logits"])], "image", [x], [y])
    _save(graph, folder / "model.onnx")
    copy_tokenizer(folder)
    return folder


def build_token_embedder(folder: Path, names: Sequence[str] = ("input_ids", "attention_mask")) -> Path:
    """Not a cross-encoder: BERT inputs but a per-token output [batch, sequence, 1], like a bi-encoder."""
    inputs = [helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "sequence"]) for n in names]
    nodes = [
        helper.make_node(
            "Constant", [], ["axes"], value=helper.make_tensor("a", TensorProto.INT64, [1], [2])
        ),
        helper.make_node("Cast", ["input_ids"], ["ids_f"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["ids_f", "axes"], ["hidden"]),
    ]
    output = helper.make_tensor_value_info("hidden", TensorProto.FLOAT, ["batch", "sequence", 1])
    _save(helper.make_graph(nodes, "token_embedder", inputs, [output]), folder / "model.onnx")
    copy_tokenizer(folder)
    return folder
