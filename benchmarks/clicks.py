"""Simulated users for ``benchmarks/learned_fusion.py``: which results of a page someone clicks.

Two click models over binary relevance (every SciFact judgement is grade 1), each at three named noise
levels. The probabilities are the binary-relevance instantiation used across online learning to rank
(Hofmann, Whiteson & de Rijke 2011 and 2013; Schuth et al. 2016; Oosterhuis & de Rijke 2018), after the
click models of Chuklin, Markov & de Rijke, *Click Models for Web Search* (2015):

==============  =====================  =================  ===========================  =======================
noise level     P(click | not rel.)    P(click | rel.)    P(stop | click, not rel.)    P(stop | click, rel.)
==============  =====================  =================  ===========================  =======================
perfect         0.0                    1.0                0.0                          1.0
navigational    0.05                   0.95               0.2                          0.9
informational   0.4                    0.9                0.1                          0.5
==============  =====================  =================  ===========================  =======================

"perfect" clicks exactly the relevant results and, in the cascade, stops at the first click (the classic
cascade of Craswell et al. 2008; the OLTR papers' "perfect" user reads on, stop 0.0 — here, as asked, it
does not). "navigational" users look for one answer: they rarely click a wrong one and usually stop once
they found it. "informational" users click much, wrong results too, and read on.

* ``cascade`` (the dependent click model as Hofmann et al. simulate it): the user reads the page top-down;
  at each result clicks with P(click | relevance); after a click stops with P(stop | relevance), else reads
  on; after the last result stops.
* ``pbm`` (position-based model; Richardson et al. 2007, Joachims et al. 2017): the result at 1-based rank
  ``k`` is examined with probability ``(1 / k) ** ETA`` (``ETA`` = 1), independently of the others, and an
  examined result is clicked with P(click | relevance). Nothing stops the user; the stop probabilities
  are not used.

Clicks are returned as 0-based positions in the order the user made them (top-down in both models).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

ETA = 1.0  # the position-based model's examination decay: P(examine rank k) = (1 / k) ** ETA
MODELS = ("cascade", "pbm")


@dataclass(frozen=True)
class Noise:
    name: str
    click: tuple[float, float]  # P(click | not relevant), P(click | relevant)
    stop: tuple[float, float]  # P(stop after a click | not relevant), P(stop after a click | relevant)


NOISE = {
    n.name: n
    for n in (
        Noise("perfect", (0.0, 1.0), (0.0, 1.0)),
        Noise("navigational", (0.05, 0.95), (0.2, 0.9)),
        Noise("informational", (0.4, 0.9), (0.1, 0.5)),
    )
}


def examination(rank: int) -> float:
    """The position-based model's P(examine) of the 0-based position ``rank``."""
    return float((1.0 / (rank + 1)) ** ETA)


def simulate(model: str, noise: Noise, relevant: Sequence[bool], rng: np.random.Generator) -> list[int]:
    """The positions one simulated user clicks on a page whose results are ``relevant`` or not."""
    clicks: list[int] = []
    for position, rel in enumerate(relevant):
        grade = int(bool(rel))
        if model == "pbm":
            if rng.random() < examination(position) and rng.random() < noise.click[grade]:
                clicks.append(position)
            continue
        if model != "cascade":
            raise ValueError(f"unknown click model {model!r}; expected one of {', '.join(MODELS)}")
        if rng.random() < noise.click[grade]:
            clicks.append(position)
            if rng.random() < noise.stop[grade]:
                break
    return clicks


def table() -> str:
    """The noise levels as a Markdown table (for the report)."""
    rows = [f"| {n.name} | {n.click[0]} | {n.click[1]} | {n.stop[0]} | {n.stop[1]} |" for n in NOISE.values()]
    return (
        "| noise | P(click \\| not relevant) | P(click \\| relevant) | P(stop \\| click, not relevant) "
        "| P(stop \\| click, relevant) |\n|---|---|---|---|---|\n" + "\n".join(rows) + "\n"
    )
