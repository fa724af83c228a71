"""Prefixed random identifiers: ``ns_``, ``col_``, ``doc_``, ``ret_``, ``exec_``, ``int_``, ``key_``, ``ds_``, ``eval_``."""

from __future__ import annotations

import secrets
import string

_ALPHABET = string.ascii_letters + string.digits
PREFIXES = ("ns", "col", "doc", "ret", "exec", "int", "key", "ds", "eval")


def new_id(prefix: str, length: int = 16) -> str:
    """A new id such as ``doc_3fK9a…``; ``prefix`` is one of :data:`PREFIXES`."""
    if prefix not in PREFIXES:
        raise ValueError(f"unknown id prefix {prefix!r}")
    return f"{prefix}_" + "".join(secrets.choice(_ALPHABET) for _ in range(length))


def has_prefix(value: str, prefix: str) -> bool:
    return value.startswith(f"{prefix}_")
