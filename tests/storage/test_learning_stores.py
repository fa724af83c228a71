"""The interaction, fusion and evaluation store contracts on the SQLite backend."""

from __future__ import annotations

from siftline.testing.learning_contract import (
    EvaluationStoreContract,
    FusionStoreContract,
    InteractionStoreContract,
)


class TestSQLiteInteractionStore(InteractionStoreContract):
    pass


class TestSQLiteFusionStore(FusionStoreContract):
    pass


class TestSQLiteEvaluationStore(EvaluationStoreContract):
    pass
