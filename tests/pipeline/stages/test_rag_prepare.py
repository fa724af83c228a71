"""rag_prepare: token budget, truncation strategies, output modes, citations, templates, validation."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from siftline.pipeline.candidates import Candidate
from siftline.pipeline.context import ExecutionContext
from siftline.pipeline.plan import validate_params
from siftline.pipeline.stages.rag_prepare import RagPrepare, RagPrepareParams, count_tokens, truncate


def ctx() -> ExecutionContext:
    return ExecutionContext(storage=None, embedder=None, collections=[])  # type: ignore[arg-type]


def words(n: int, w: str = "word") -> str:
    return " ".join([w] * n)


def docs(*sizes: int) -> list[Candidate]:
    return [
        Candidate(f"d{i + 1}", "c", 1.0 - i / 10, {"content": words(n), "title": f"T{i + 1}"})
        for i, n in enumerate(sizes)
    ]


def run(cands: list[Candidate], c: ExecutionContext | None = None, **kw: Any) -> tuple[list[Candidate], dict]:
    c = c or ctx()
    return RagPrepare("rag", RagPrepareParams(**kw)).run(c, cands), c.metadata


def test_token_counting_and_truncation() -> None:
    assert count_tokens("") == 0
    assert count_tokens("a b c d e f g h i j") == 13  # 10 words * 1.3
    assert count_tokens("x" * 40) == 10  # one long word: chars / 4
    assert truncate("alpha beta gamma delta", 3) == "alpha beta"  # 2 words: 2.6 → 3 tokens
    assert truncate("x" * 40, 2) == "x" * 8


def test_single_context_with_numbered_citations() -> None:
    out, meta = run(docs(3, 2), separator="\n\n")
    assert len(out) == 1 and out[0].document_id == "rag_context" and out[0].score == 1.0
    assert out[0].fields["rag_context"] == "[1] word word word\n\n[2] word word"
    cits = out[0].fields["citations"]
    assert [(c["index"], c["marker"], c["document_id"], c["title"]) for c in cits] == [
        (1, "[1]", "d1", "T1"),
        (2, "[2]", "d2", "T2"),
    ]
    # pieces: "[1] word word word" = 4 words → 6 tokens; "[2] word word" → 4; separator 1 token
    assert meta["tokens_used"] == 11 and meta["documents_used"] == 2 and meta["truncated"] is False


def test_priority_truncate_cuts_the_last_and_stops() -> None:
    out, meta = run(docs(50, 100, 10), max_tokens=100)
    first, second = out[0].fields["rag_context"].split("\n")
    assert first == "[1] " + words(50)  # 51 words → 67 tokens
    assert second.startswith("[2] word") and count_tokens(second) <= 100 - 67 - 1
    assert meta["documents_used"] == 2 and meta["documents_truncated"] == 1 and meta["truncated"] is True
    assert out[0].fields["citations"][1]["truncated"] is True and meta["tokens_used"] <= 100


def test_drop_last_keeps_whole_documents() -> None:
    out, meta = run(docs(50, 100, 10), max_tokens=100, truncation_strategy="drop_last")
    assert out[0].fields["rag_context"] == "[1] " + words(50)
    assert meta["documents_used"] == 1 and meta["documents_dropped"] == 2 and meta["documents_truncated"] == 0


def test_proportional_shares_the_budget() -> None:
    out, meta = run(
        docs(200, 5, 200), max_tokens=150, truncation_strategy="proportional", output_mode="formatted_list"
    )
    assert [c.document_id for c in out] == ["d1", "d2", "d3"]
    assert all(count_tokens(c.fields["formatted_content"]) <= 49 for c in out)  # (150 - 2) // 3
    assert out[1].fields["formatted_content"] == "[2] " + words(5)
    assert out[0].fields["citations"][0]["truncated"] and not out[1].fields["citations"][0]["truncated"]
    assert out[0].fields["content"] == words(200) and meta["documents_truncated"] == 2


def test_template_styles_and_url() -> None:
    cands = [Candidate("a", "c", 0.3, {"body": "hello", "metadata": {"url": "http://x", "title": "MT"}})]
    template = "{{ CONTEXT.CITATION }}{{ CONTEXT.INDEX }}: {{ DOC.body | upper }} ({{ DOC.document_id }})"
    out, _ = run(cands, document_template=template, citation={"style": "footnote", "include_url": True})
    assert out[0].fields["rag_context"] == "¹1: HELLO (a)"
    assert out[0].fields["citations"][0] == {
        "index": 1, "marker": "¹", "document_id": "a", "collection_id": "c", "score": 0.3,
        "truncated": False, "title": "MT", "url": "http://x",
    }  # fmt: skip
    out, _ = run(cands, content_field="body", citation={"style": "bracketed", "include_title": False})
    assert out[0].fields["rag_context"] == "[a] hello" and "title" not in out[0].fields["citations"][0]


def test_empty_input_gives_an_empty_context() -> None:
    out, meta = run([])
    assert out[0].fields["rag_context"] == "" and out[0].fields["citations"] == []
    assert meta["documents_used"] == 0 and meta["tokens_used"] == 0


def test_runner_leaves_document_template_for_run() -> None:
    raw = {"document_template": "{{ DOC.content }}", "max_tokens": "{{ INPUT.budget }}"}
    params = validate_params(RagPrepare, raw, {"INPUT": {"budget": 500}}, ["parameters"])
    assert isinstance(params, RagPrepareParams)
    assert params.document_template == "{{ DOC.content }}" and params.max_tokens == 500


@pytest.mark.parametrize(
    "params",
    [
        {"max_tokens": 50},
        {"max_tokens": 200000},
        {"truncation_strategy": "random"},
        {"output_mode": "stream"},
        {"citation": {"style": "apa"}},
        {"document_template": "{{ DOC.x "},
        {"context_field": ""},
    ],
)
def test_bad_params(params: dict[str, Any]) -> None:
    with pytest.raises(pydantic.ValidationError):
        RagPrepareParams(**params)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(min_value=0, max_value=300), max_size=12),
    st.integers(min_value=100, max_value=600),
    st.sampled_from(["priority_truncate", "proportional", "drop_last"]),
)
def test_budget_is_never_exceeded(sizes: list[int], budget: int, strategy: str) -> None:
    out, meta = run(docs(*sizes), max_tokens=budget, truncation_strategy=strategy)
    context = out[0].fields["rag_context"]
    pieces = context.split("\n") if meta["documents_used"] else []
    assert meta["tokens_used"] == sum(map(count_tokens, pieces)) + max(len(pieces) - 1, 0)
    assert meta["tokens_used"] <= budget
    assert [c["document_id"] for c in out[0].fields["citations"]] == [f"d{i + 1}" for i in range(len(pieces))]
    if sum(count_tokens("[10] " + words(n)) + 1 for n in sizes) <= budget and strategy != "proportional":
        assert meta["documents_used"] == len(sizes) and not meta["truncated"]
