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
    # one read of the OS's random source; 62 letters and digits, each drawn without bias (bytes of 248
    # and above are dropped: 248 = 4 x 62), so the id keeps log2(62) bits a character
    chars: list[str] = []
    while len(chars) < length:
        chars += [_ALPHABET[b % 62] for b in secrets.token_bytes(2 * length) if b < 248]
    return f"{prefix}_" + "".join(chars[:length])


def has_prefix(value: str, prefix: str) -> bool:
    return value.startswith(f"{prefix}_")
