"""The ``rerank`` stage: bi-encoder re-scoring with the real MiniLM model, and a tiny ONNX cross-encoder.

The cross-encoder is built by ``tiny_cross_encoder`` in each test's temporary folder: its logit is
the number of times the token "cat" occurs in the passage part of the pair, so every score and
the whole ranking are known in advance.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any, cast

import numpy as np
import onnxruntime
import pydantic
import pytest
from tiny_cross_encoder import (
    build_counting_cross_encoder,
    build_image_model,
    build_token_embedder,
    copy_tokenizer,
)

from siftline.errors import BadRequestError, ValidationError
from siftline.features import cross_encoder
from siftline.features.cross_encoder import get_cross_encoder, sigmoid
from siftline.features.embedder import TextEmbedder, model_files
from siftline.pipeline.candidates import Candidate
from siftline.pipeline.context import ExecutionContext
from siftline.pipeline.stages.base import PlanContext
from siftline.pipeline.stages.rerank import Rerank, RerankParams

CAT = 4937  # "cat" in the MiniLM WordPiece vocabulary
LOC: list[str | int] = ["stages", 0, "config", "parameters"]

UNRELATED = [
    "Quarterly earnings rose on strong bond trading revenue.",
    "The forecast calls for heavy rain and gusty winds tomorrow.",
    "Preheat the oven and whisk the eggs with the flour.",
    "The parliament passed the budget after a long debate.",
]
CAT_TEXT = "A small cat is sleeping on a carpet."


@pytest.fixture(scope="module")
def bi_encoder() -> TextEmbedder:
    """The real built-in model, loaded once for this module."""
    model = TextEmbedder()
    model.warm_up()
    return model


def make_ctx(embedder: Any = None, **inputs: Any) -> ExecutionContext:
    return ExecutionContext(storage=cast(Any, None), embedder=embedder, collections=[], inputs=dict(inputs))


def docs(*texts: str | None, field: str = "text") -> list[Candidate]:
    """Candidates doc_0, doc_1, … with decreasing incoming scores; ``None`` means no text field."""
    return [
        Candidate(f"doc_{i}", "col_a", 10.0 - i, {} if t is None else {field: t, "n": i})
        for i, t in enumerate(texts)
    ]


def make_stage(**params: Any) -> Rerank:
    return Rerank("rerank", RerankParams.model_validate(params))


def ids(candidates: list[Candidate]) -> list[str]:
    return [c.document_id for c in candidates]


# --- the built-in bi-encoder -------------------------------------------------------------------------


def test_bi_encoder_moves_the_cat_document_from_last_to_first(bi_encoder: TextEmbedder) -> None:
    ctx = make_ctx(bi_encoder)
    incoming = docs(*UNRELATED, CAT_TEXT)
    out = make_stage(query="a kitten on a rug", max_candidates=None).run(ctx, incoming)

    assert ids(out)[0] == "doc_4" and sorted(ids(out)) == ids(incoming)
    scores = [c.score for c in out]
    assert scores == sorted(scores, reverse=True) and all(-1.0 <= s <= 1.0 for s in scores)
    assert scores[0] > scores[1] + 0.2  # the cat text is clearly the closest, not a near tie
    cat = out[0]
    assert cat.scores["pre_rerank"] == 6.0 and cat.scores["rerank"] == cat.score
    expected = float(bi_encoder.embed([CAT_TEXT])[0] @ bi_encoder.embed_one("a kitten on a rug"))
    assert cat.score == pytest.approx(expected, abs=1e-5)
    assert incoming[4].score == 6.0 and "pre_rerank" not in incoming[4].scores  # inputs untouched
    meta = ctx.metadata
    assert meta["model"] == bi_encoder.name and meta["model_type"] == "bi_encoder"
    assert meta["documents_reranked"] == 5 and meta["documents_scored"] == 5
    assert meta["documents_without_text"] == 0 and meta["documents_after_window"] == 0
    assert meta["model_ms"] > 0 and ctx.warnings == []


def test_candidates_beyond_the_window_keep_their_order_and_scores(bi_encoder: TextEmbedder) -> None:
    ctx = make_ctx(bi_encoder)
    # The window is the first 3 incoming documents; a cat text past it is not promoted.
    incoming = docs(UNRELATED[0], UNRELATED[1], CAT_TEXT, "A kitten lies on a rug.", UNRELATED[2])
    out = make_stage(query="a kitten on a rug", max_candidates=3).run(ctx, incoming)

    assert ids(out)[0] == "doc_2" and set(ids(out)[:3]) == {"doc_0", "doc_1", "doc_2"}
    assert ids(out)[3:] == ["doc_3", "doc_4"]
    assert [c.score for c in out[3:]] == [7.0, 6.0] and all("pre_rerank" not in c.scores for c in out[3:])
    assert ctx.metadata["documents_reranked"] == 3 and ctx.metadata["documents_after_window"] == 2


def test_default_window_is_ten_documents(bi_encoder: TextEmbedder) -> None:
    incoming = docs(*(UNRELATED * 3), CAT_TEXT)  # the cat is the 13th document
    out = make_stage(query="a kitten on a rug").run(make_ctx(bi_encoder), incoming)
    assert ids(out)[10:] == ["doc_10", "doc_11", "doc_12"]


def test_top_k_cuts_the_reranked_list(bi_encoder: TextEmbedder) -> None:
    out = make_stage(query="a kitten on a rug", max_candidates=None, top_k=2).run(
        make_ctx(bi_encoder), docs(*UNRELATED, CAT_TEXT)
    )
    assert len(out) == 2 and out[0].document_id == "doc_4"
    # top_k applies to the whole list, window and the rest alike
    out = make_stage(query="a kitten on a rug", max_candidates=2, top_k=3).run(
        make_ctx(bi_encoder), docs(*UNRELATED, CAT_TEXT)
    )
    assert len(out) == 3 and ids(out)[2] == "doc_2"


def test_query_defaults_to_the_query_input(bi_encoder: TextEmbedder) -> None:
    out = make_stage(max_candidates=None).run(
        make_ctx(bi_encoder, query="a kitten on a rug"), docs(*UNRELATED, CAT_TEXT)
    )
    assert out[0].document_id == "doc_4"


def test_empty_query_keeps_the_order_with_a_warning(bi_encoder: TextEmbedder) -> None:
    ctx = make_ctx(bi_encoder)
    incoming = docs(*UNRELATED, CAT_TEXT)
    out = make_stage(query="  ", top_k=3).run(ctx, incoming)
    assert ids(out) == ids(incoming)[:3] and [c.score for c in out] == [10.0, 9.0, 8.0]
    assert ctx.metadata["skipped"] == "empty query" and "empty query" in ctx.warnings[0]


def test_documents_without_text_rank_last_in_the_window(bi_encoder: TextEmbedder) -> None:
    ctx = make_ctx(bi_encoder)
    incoming = docs(None, UNRELATED[0], "", CAT_TEXT, UNRELATED[1])
    out = make_stage(query="a kitten on a rug", max_candidates=4).run(ctx, incoming)

    assert ids(out)[0] == "doc_3"
    assert ids(out)[2:4] == ["doc_0", "doc_2"]  # no text: lowest score, ties by document id
    assert [c.score for c in out[2:4]] == [-1.0, -1.0] and out[4].document_id == "doc_4"
    assert ctx.metadata["documents_without_text"] == 2 and ctx.metadata["documents_scored"] == 2
    assert ctx.metadata["documents_without_text_ids"] == ["doc_0", "doc_2"]
    assert "no text at 'text'" in ctx.metadata["note"]


def test_every_document_without_text_warns_about_document_field(bi_encoder: TextEmbedder) -> None:
    ctx = make_ctx(bi_encoder)
    out = make_stage(query="cats", document_field="content").run(ctx, docs("a", "b"))
    assert ids(out) == ["doc_0", "doc_1"] and ctx.metadata["documents_scored"] == 0
    assert "document_field" in ctx.warnings[0]


def test_nested_and_joined_document_fields(bi_encoder: TextEmbedder) -> None:
    incoming = [
        Candidate("doc_a", "col_a", 2.0, {"meta": {"title": "Markets"}, "tags": ["bonds", "rates"]}),
        Candidate("doc_b", "col_a", 1.0, {"meta": {"title": "Pets"}, "tags": ["kitten", "rug", 7]}),
    ]
    ctx = make_ctx(bi_encoder)
    out = make_stage(query="a kitten on a rug", document_field=["meta.title", "tags"]).run(ctx, incoming)
    assert ids(out) == ["doc_b", "doc_a"] and ctx.metadata["documents_without_text"] == 0


def test_score_field_into_a_document_field_copies_the_fields(bi_encoder: TextEmbedder) -> None:
    incoming = [Candidate("doc_a", "col_a", 1.0, {"text": CAT_TEXT, "meta": {"lang": "en"}})]
    out = make_stage(query="a kitten", score_field="meta.rerank_score").run(make_ctx(bi_encoder), incoming)
    assert out[0].fields["meta"] == {"lang": "en", "rerank_score": out[0].score}
    assert incoming[0].fields["meta"] == {"lang": "en"} and "rerank" not in out[0].scores


def test_empty_candidates(bi_encoder: TextEmbedder) -> None:
    ctx = make_ctx(bi_encoder)
    assert make_stage(query="x").run(ctx, []) == []
    assert ctx.metadata["documents_reranked"] == 0


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"query": "x", "rerank_model": "bge"}, "rerank_model"),  # unknown parameters are errors
        ({"document_field": "a..b"}, "document_field"),
        ({"document_field": []}, "document_field"),
        ({"max_candidates": 0}, "max_candidates"),
        ({"top_k": 0}, "top_k"),
        ({"score_field": "score"}, "score_field"),
        ({"score_field": "_internal.x"}, "score_field"),
        ({"max_length": 4}, "max_length"),
        ({"model_path": " "}, "model_path"),
    ],
)
def test_bad_parameters_are_rejected_naming_the_field(params: dict[str, Any], field: str) -> None:
    with pytest.raises(pydantic.ValidationError) as err:
        Rerank.Params.model_validate(params)
    assert err.value.errors()[0]["loc"][0] == field


def test_sdk_field_names_are_accepted() -> None:
    params = RerankParams.model_validate(
        {
            "query": "q",
            "document_field": "content",
            "top_k": 5,
            "max_candidates": None,
            "score_field": "scores.rerank",
            "batch_size": 32,
            "max_document_chars": 2000,
        }
    )
    assert params.max_candidates is None and Rerank.stage_id == "rerank" and Rerank.category == "sort"
    assert "model_path" in Rerank.schema()["properties"]


# --- a cross-encoder from a local folder ----------------------------------------------------------------

# (document id, passage, number of "cat" tokens): the predicted order is by count, ties by id.
PASSAGES = [
    ("doc_0", "dog dog", 0),
    ("doc_1", "a cat", 1),
    ("doc_2", "cat cat cat and a dog", 3),
    ("doc_3", "the cat sat with another cat", 2),
    ("doc_4", "one cat only", 1),
    ("doc_5", "no felines here", 0),
    ("doc_6", "cat " * 5, 5),
]
PREDICTED = ["doc_6", "doc_2", "doc_3", "doc_1", "doc_4", "doc_0", "doc_5"]


def passages() -> list[Candidate]:
    return [Candidate(doc_id, "col_a", 1.0, {"body": text}) for doc_id, text, _ in PASSAGES]


def cross_stage(folder: Path, **params: Any) -> Rerank:
    base = {"query": "cat", "model_path": str(folder), "document_field": "body", "max_candidates": None}
    return make_stage(**{**base, **params})


def test_cross_encoder_ranks_by_the_model_logit(tmp_path: Path) -> None:
    folder = build_counting_cross_encoder(tmp_path / "ce", CAT)
    Rerank.check(RerankParams.model_validate({"model_path": str(folder)}), PlanContext([]), LOC)
    ctx = make_ctx()  # no embedder: the cross-encoder path never touches it
    out = cross_stage(folder, normalize=False).run(ctx, passages())

    assert ids(out) == PREDICTED
    counts = dict((d, float(n)) for d, _, n in PASSAGES)
    assert [c.score for c in out] == [counts[d] for d in PREDICTED]  # the query's own "cat" never counts
    assert all(c.scores["pre_rerank"] == 1.0 for c in out)
    meta = ctx.metadata
    assert meta["model"] == str(folder) and meta["model_type"] == "cross_encoder"
    assert meta["documents_reranked"] == 7 and meta["model_ms"] > 0


def test_cross_encoder_scores_are_sigmoid_probabilities_by_default(tmp_path: Path) -> None:
    folder = build_counting_cross_encoder(tmp_path / "ce", CAT)
    out = cross_stage(folder).run(make_ctx(), passages())
    counts = dict((d, n) for d, _, n in PASSAGES)
    assert ids(out) == PREDICTED
    np.testing.assert_allclose(
        [c.score for c in out], 1 / (1 + np.exp(-np.array([counts[d] for d in PREDICTED])))
    )
    assert sigmoid(np.array([-1000.0, 0.0, 1000.0])).tolist() == [0.0, 0.5, 1.0]


@pytest.mark.parametrize(("head", "scale"), [("column", 1.0), ("vector", 1.0), ("pair", 2.0)])
def test_output_heads(tmp_path: Path, head: str, scale: float) -> None:
    """[batch, 1] and [batch] give the logit; [batch, 2] gives l1 - l0 (here 2 * count)."""
    folder = build_counting_cross_encoder(tmp_path / head, CAT, head=head)  # type: ignore[arg-type]
    scores = get_cross_encoder(folder).score("cat", ["cat cat", "dog", "cat"], apply_sigmoid=False)
    assert scores.tolist() == [2 * scale, 0.0, 1 * scale]


def test_batch_and_single_scoring_agree(tmp_path: Path) -> None:
    model = get_cross_encoder(build_counting_cross_encoder(tmp_path / "ce", CAT))
    texts = [text for _, text, _ in PASSAGES] + ["cat " * 40, ""]
    batched = model.logits("cat", texts, batch_size=3)
    single = np.array([model.logits("cat", [t], batch_size=1)[0] for t in texts])
    np.testing.assert_array_equal(batched, single)
    assert batched.tolist() == [n for _, _, n in PASSAGES] + [40, 0]
    assert model.logits("cat", []).shape == (0,)


def test_pairs_are_truncated_to_max_length(tmp_path: Path) -> None:
    model = get_cross_encoder(build_counting_cross_encoder(tmp_path / "ce", CAT))
    text = "dog dog dog dog dog dog cat"
    # [CLS] cat [SEP] + 4 passage tokens + [SEP] = 8: the passage's "cat" is cut off
    assert model.logits("cat", [text], max_length=8).tolist() == [0.0]
    assert model.logits("cat", [text], max_length=16).tolist() == [1.0]
    # the stage's max_length reaches the model, and max_document_chars cuts the text first
    out = cross_stage(tmp_path / "ce", max_length=8, normalize=False).run(
        make_ctx(), [Candidate("d", "c", 0.0, {"body": text})]
    )
    assert out[0].score == 0.0
    long_text = "dog " * 30 + "cat"
    out = cross_stage(tmp_path / "ce", max_document_chars=100, normalize=False).run(
        make_ctx(), [Candidate("d", "c", 0.0, {"body": long_text})]
    )
    assert out[0].score == 0.0


def test_model_without_token_type_ids_gets_only_its_inputs(tmp_path: Path) -> None:
    """An XLM-R style model (no segment input): every "cat" of the pair counts, the query's too."""
    model = get_cross_encoder(build_counting_cross_encoder(tmp_path / "ce", CAT, with_token_type_ids=False))
    assert model.input_names == ["input_ids", "attention_mask"]
    assert model.logits("cat", ["cat cat", "dog"]).tolist() == [3.0, 1.0]


def test_fixed_shape_model_is_padded_to_its_shape(tmp_path: Path) -> None:
    """A model exported with batch 1 and 16 tokens: one pair per call, padded to 16, truncated at 16."""
    fixed = get_cross_encoder(build_counting_cross_encoder(tmp_path / "fixed", CAT, batch=1, sequence=16))
    texts = ["cat cat dog", "dog", "cat", "cat " * 20]
    assert fixed.logits("cat", texts, batch_size=8).tolist() == [2.0, 0.0, 1.0, 12.0]


def test_documents_without_text_get_the_lowest_score(tmp_path: Path) -> None:
    folder = build_counting_cross_encoder(tmp_path / "ce", CAT)
    incoming = [*passages()[:3], Candidate("doc_x", "col_a", 1.0, {"body": None})]
    ctx = make_ctx()
    out = cross_stage(folder).run(ctx, incoming)
    assert ids(out)[-1] == "doc_x" and out[-1].score == 0.0  # the sigmoid's floor
    assert ctx.metadata["documents_without_text"] == 1
    out = cross_stage(folder, normalize=False).run(make_ctx(), incoming)
    assert ids(out)[-1] == "doc_x" and out[-1].score == -1.0  # one below the lowest logit (0)


def test_the_model_loads_once_per_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = onnxruntime.InferenceSession
    loads: list[str] = []

    def counting(path: str, *args: Any, **kwargs: Any) -> Any:
        loads.append(path)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(onnxruntime, "InferenceSession", counting)
    folder = build_counting_cross_encoder(tmp_path / "ce", CAT)
    model = get_cross_encoder(folder)
    assert not model.loaded  # lazily: nothing loads until the model is needed

    Rerank.check(RerankParams.model_validate({"model_path": str(folder)}), PlanContext([]), LOC)
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def execute() -> None:
        try:
            results.append(ids(cross_stage(folder).run(make_ctx(), passages())))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=execute) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and results == [PREDICTED] * 8
    assert len(loads) == 1 and get_cross_encoder(str(folder) + "/") is model
    # a different folder is a different model
    get_cross_encoder(build_counting_cross_encoder(tmp_path / "other", CAT)).load()
    assert len(loads) == 2


def test_concurrent_first_use_loads_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = onnxruntime.InferenceSession
    loads: list[str] = []

    def counting(path: str, *args: Any, **kwargs: Any) -> Any:
        loads.append(path)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(onnxruntime, "InferenceSession", counting)
    folder = build_counting_cross_encoder(tmp_path / "ce", CAT)
    barrier = threading.Barrier(6)

    def first_use() -> None:
        barrier.wait()
        get_cross_encoder(folder).score("cat", ["cat"])

    threads = [threading.Thread(target=first_use) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(loads) == 1


def test_a_changed_model_file_loads_again(tmp_path: Path) -> None:
    folder = build_counting_cross_encoder(tmp_path / "ce", CAT)
    first = get_cross_encoder(folder)
    assert first.logits("cat", ["cat dog"]).tolist() == [1.0]
    build_counting_cross_encoder(folder, 3899, tokenizer=False)  # now counts "dog"
    stat = (folder / "model.onnx").stat()
    os.utime(folder / "model.onnx", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # coarse clocks
    second = get_cross_encoder(folder)
    assert second is not first and second.logits("cat", ["cat dog dog"]).tolist() == [2.0]


# --- validation of model_path ------------------------------------------------------------------------


def validation_message(params: dict[str, Any]) -> str:
    with pytest.raises(pydantic.ValidationError) as err:
        Rerank.Params.model_validate(params)
    error = err.value.errors()[0]
    assert error["loc"] == ("model_path",)
    return str(error["msg"])


def test_missing_folder_fails_validation(tmp_path: Path) -> None:
    msg = validation_message({"model_path": str(tmp_path / "nowhere")})
    assert "model_path" in msg and "no folder" in msg and "nowhere" in msg


def test_a_file_instead_of_a_folder_fails_validation(tmp_path: Path) -> None:
    folder = build_counting_cross_encoder(tmp_path / "ce", CAT)
    msg = validation_message({"model_path": str(folder / "model.onnx")})
    assert "model_path" in msg and "not a folder" in msg


def test_missing_model_file_fails_validation(tmp_path: Path) -> None:
    copy_tokenizer(tmp_path / "only_tokenizer")
    msg = validation_message({"model_path": str(tmp_path / "only_tokenizer")})
    assert "model_path" in msg and "no model.onnx" in msg


def test_missing_tokenizer_fails_validation(tmp_path: Path) -> None:
    folder = build_counting_cross_encoder(tmp_path / "ce", CAT, tokenizer=False)
    msg = validation_message({"model_path": str(folder)})
    assert "model_path" in msg and "no tokenizer.json" in msg


def test_hugging_face_layout_is_found(tmp_path: Path) -> None:
    folder = tmp_path / "hf"
    build_counting_cross_encoder(folder / "onnx", CAT, tokenizer=False)  # onnx/model.onnx
    copy_tokenizer(folder)
    params = RerankParams.model_validate({"model_path": str(folder)})
    Rerank.check(params, PlanContext([]), LOC)
    assert get_cross_encoder(folder).logits("cat", ["cat"]).tolist() == [1.0]


def check_error(folder: Path) -> ValidationError:
    params = RerankParams.model_validate({"model_path": str(folder)})  # the files exist
    with pytest.raises(ValidationError) as err:
        Rerank.check(params, PlanContext([]), LOC)
    assert err.value.errors[0]["loc"] == [*LOC, "model_path"]
    assert "stages.0.config.parameters.model_path" in err.value.message
    return err.value


def test_a_model_with_other_inputs_is_not_a_cross_encoder(tmp_path: Path) -> None:
    err = check_error(build_image_model(tmp_path / "image"))
    assert "does not look like a cross-encoder" in err.message and "pixel_values" in err.message


def test_a_token_embedding_model_is_not_a_cross_encoder(tmp_path: Path) -> None:
    err = check_error(build_token_embedder(tmp_path / "emb"))
    assert (
        "does not look like a cross-encoder" in err.message
        and "[batch], [batch, 1] or [batch, 2]" in err.message
    )


def test_the_built_in_bi_encoder_is_not_a_cross_encoder(tmp_path: Path) -> None:
    folder = tmp_path / "minilm"
    copy_tokenizer(folder)
    (folder / "model.onnx").symlink_to(model_files()[0])
    err = check_error(folder)
    assert "last_hidden_state" in err.message


def test_an_unreadable_model_file_fails_validation(tmp_path: Path) -> None:
    folder = tmp_path / "broken"
    copy_tokenizer(folder)
    (folder / "model.onnx").write_bytes(b"not a model")
    err = check_error(folder)
    assert "onnxruntime cannot load" in err.message
    check_error(folder)  # the failure is remembered: it is reported again, not reloaded


def test_templated_model_path_is_checked_at_execution(tmp_path: Path) -> None:
    params = RerankParams.model_validate({"model_path": "{{INPUT.model}}"})
    Rerank.check(params, PlanContext([]), LOC)  # not rendered yet: nothing to check
    # a model broken after creation fails the execution with a clear message
    folder = tmp_path / "broken"
    copy_tokenizer(folder)
    (folder / "model.onnx").write_bytes(b"not a model")
    with pytest.raises(BadRequestError, match="model_path: onnxruntime cannot load"):
        cross_stage(folder).run(make_ctx(), passages())


def test_cache_is_keyed_by_resolved_folder(tmp_path: Path) -> None:
    folder = build_counting_cross_encoder(tmp_path / "ce", CAT)
    link = tmp_path / "link"
    link.symlink_to(folder)
    assert get_cross_encoder(link) is get_cross_encoder(folder)
    assert folder.resolve() in cross_encoder._CACHE
