"""Rollout batches: `1 50% 100%` = one host, then up to half, then all.

Each term is a cumulative target (a host count or a percentage of the stage, rounded
up); a spec that stops short of the whole stage gets a final batch with the rest.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from debops_ci.deploy.errors import DeployConfigError

__all__ = ["parse_batch_spec", "split_batches"]


def parse_batch_spec(spec: str) -> tuple[str, ...]:
    """Validate a batch spec (`1 50% 100%`) and return its terms."""
    terms = tuple(spec.split())
    if not terms:
        raise DeployConfigError("batch: empty; write e.g. `batch = 1 50% 100%`")
    for term in terms:
        number = term[:-1] if term.endswith("%") else term
        if not number.isdigit() or int(number) == 0:
            raise DeployConfigError(
                f"batch: {term!r} is not a host count or a percentage (e.g. 1, 50%)"
            )
        if term.endswith("%") and int(number) > 100:
            raise DeployConfigError(f"batch: {term!r} is above 100%")
    return terms


def split_batches(hosts: Sequence[str], terms: Sequence[str]) -> list[list[str]]:
    """Cut `hosts` (in order) into the batches the terms describe; no empty batch."""
    total = len(hosts)
    batches: list[list[str]] = []
    done = 0
    for term in terms:
        target = math.ceil(total * int(term[:-1]) / 100) if term.endswith("%") else int(term)
        target = min(max(target, done), total)
        if target > done:
            batches.append(list(hosts[done:target]))
            done = target
    if done < total:
        batches.append(list(hosts[done:]))
    return batches
