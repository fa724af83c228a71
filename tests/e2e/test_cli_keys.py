"""`siftline keys create --rate … --burst … --expires …` stores the limits with the key; `keys list` shows them;
bad values stop with a message before anything is stored."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from siftline.testing.server import siftline


def _created_key(done: object) -> str:
    assert done.returncode == 0, done.stderr  # type: ignore[attr-defined]
    return done.stdout.strip().splitlines()[-1]  # type: ignore[attr-defined]


def test_keys_create_with_a_rate_and_an_expiry_then_list_shows_both(tmp_path: Path) -> None:
    data_dir = str(tmp_path / "data")
    before = datetime.now(UTC)
    created = siftline(
        "keys", "create", "--data-dir", data_dir, "--name", "ci", "--rate", "5/s", "--expires", "30d"
    )
    secret = _created_key(created)
    assert secret.startswith("sk_live_")
    assert "rate: 5/s (burst 5)" in created.stdout and "expires 20" in created.stdout
    _created_key(siftline("keys", "create", "--data-dir", data_dir, "--name", "plain"))
    _created_key(
        siftline("keys", "create", "--data-dir", data_dir, "--name", "bulk", "--rate", "600/m", "--burst", "50",
                 "--expires", "2099-01-31T00:00:00Z")
    )  # fmt: skip
    _created_key(siftline("keys", "create", "--data-dir", data_dir, "--name", "admin", "--rate", "unlimited"))

    listed = siftline("keys", "list", "--data-dir", data_dir)
    assert listed.returncode == 0, listed.stderr
    rows = {line.split("\t")[2]: line.split("\t") for line in listed.stdout.strip().splitlines()}
    assert secret not in listed.stdout
    ci = rows["ci"]
    assert ci[1] == f"{secret[:12]}…" and ci[4] == "active" and ci[6] == "rate: 5/s (burst 5)"
    expires = datetime.fromisoformat(ci[7].removeprefix("expires ").replace("Z", "+00:00"))
    assert (
        before + timedelta(days=30) - timedelta(seconds=5)
        <= expires
        <= datetime.now(UTC) + timedelta(days=30)
    )
    assert rows["plain"][6:] == ["rate: server default", "never expires"]
    assert rows["bulk"][6:] == ["rate: 10/s (burst 50)", "expires 2099-01-31T00:00:00Z"]
    assert rows["admin"][6:] == ["rate: unlimited", "never expires"]


def test_bad_limits_stop_with_a_message_and_store_nothing(tmp_path: Path) -> None:
    data_dir = str(tmp_path / "data")
    for args, message in [
        (["--rate", "fast"], "is not a rate"),
        (["--burst", "5"], "--burst needs --rate"),
        (["--rate", "5/s", "--burst", "0"], "--burst"),
        (["--expires", "2020-01-01T00:00:00Z"], "is not in the future"),
        (["--expires", "soon"], "neither a time"),
    ]:
        done = siftline("keys", "create", "--data-dir", data_dir, *args)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert message in done.stderr.replace("\n", " "), (args, done.stderr)
    listed = siftline("keys", "list", "--data-dir", data_dir)
    assert listed.returncode == 0 and listed.stdout.strip() == ""


def test_keys_create_help_documents_the_limits() -> None:
    shown = siftline("keys", "create", "--help")
    assert shown.returncode == 0
    text = " ".join(shown.stdout.split())
    for needle in ("--rate", "--burst", "--expires", "Retry-After", "30d", "SIFTLINE_RATE_LIMIT"):
        assert needle in text, needle
