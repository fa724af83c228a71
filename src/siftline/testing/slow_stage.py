"""A stage that only waits: makes executions slow enough to watch in flight (tests only).

Never in the registry of a normal server: ``register()`` adds it to ``STAGES`` of the calling process
(the in-process test servers and ``python -m siftline.testing.slow_stage serve …``).
"""

from __future__ import annotations

import sys
import time
from typing import ClassVar

from pydantic import Field

from siftline.pipeline.candidates import Candidate
from siftline.pipeline.context import ExecutionContext
from siftline.pipeline.stages import STAGES
from siftline.pipeline.stages.base import Stage, StageParams


class SleepParams(StageParams):
    seconds: float = Field(0.2, ge=0, le=30)


class Sleep(Stage[SleepParams]):
    stage_id: ClassVar[str] = "test_sleep"
    category: ClassVar[str] = "apply"
    description: ClassVar[str] = "Test only: waits, then passes its input on unchanged."
    Params: ClassVar[type[SleepParams]] = SleepParams

    def run(self, ctx: ExecutionContext, candidates: list[Candidate]) -> list[Candidate]:
        time.sleep(self.params.seconds)
        ctx.metadata["slept_s"] = self.params.seconds
        return candidates


def register() -> None:
    STAGES.setdefault(Sleep.stage_id, Sleep)


if __name__ == "__main__":  # `python -m siftline.testing.slow_stage serve --data-dir … --port …`
    register()
    from siftline.cli import app

    sys.argv[0] = "siftline"
    app()
