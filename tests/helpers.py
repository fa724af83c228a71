"""Small helpers for tests (importable as `helpers`: pytest puts tests/ on sys.path)."""

from __future__ import annotations

ADMIN_KEY = "sk_test_admin_0123456789abcdefghijklmnop"


def bearer(secret: str, namespace: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {secret}"}
    if namespace is not None:
        headers["X-Namespace"] = namespace
    return headers


TEXT_COLLECTION = {
    "collection_name": "papers",
    "feature_extractor": {
        "feature_extractor_name": "text_extractor",
        "version": "v1",
        "input_mappings": {"text": ["title", "text"]},
    },
    "vector_configs": [{"name": "emb", "dimension": 4, "metric": "cosine"}],
    "payload_indexes": [{"field_name": "category", "type": "keyword"}],
}
