"""The same imports on two revisions of the code, taken in turns in one run: did a change (a
refactoring, say) make the import slower?

    .venv/bin/python bench/revisions_bench.py BEFORE AFTER [--rows 500000] [--rounds 2]
        [--only sqlite|postgresql]

Each revision is checked out into a git worktree under BENCH_DIR (default /tmp/pi-bench) and run
as the real server (`product-importer serve`, with PYTHONPATH on that worktree's `src`). Per
round and revision: the sample-data file into an empty catalogue, then the same rows with every
name changed (every row an update), timed from the start of the upload to `completed`
(`bench/import_bench.py`). The revisions alternate within each round, so a machine that slows
down during the run slows both. Prints the median per revision and the ratio AFTER / BEFORE.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.import_bench import (
    PG_ADMIN,
    ROOT,
    WORK,
    Server,
    fresh_postgres_database,
    generate,
    import_through_api,
    prepared,
    psql,
)

CASES = ("empty catalogue", "every row an update")


def worktree(revision: str) -> Path:
    """A checkout of `revision` (a commit, branch or tag) of this repository."""
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--verify", f"{revision}^{{commit}}"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    path = WORK / f"revision-{commit[:12]}"
    if not (path / "src").is_dir():
        shutil.rmtree(path, ignore_errors=True)
        subprocess.run(["git", "-C", str(ROOT), "worktree", "prune"], check=True)
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", "-f", str(path), commit],
            check=True,
            capture_output=True,
        )
    return path


def run_revision(source: Path, dialect: str, base: Path, changed: Path) -> dict[str, float]:
    label = f"revision-{source.name}-{dialect}"
    url = fresh_postgres_database(label.replace("-", "_")) if dialect == "postgresql" else None
    env, token = prepared_with(url, label, source)
    try:
        with Server(env) as server:
            empty = import_through_api(server, token, base)
            updates = import_through_api(server, token, changed)
    finally:
        if url:
            psql(PG_ADMIN, f'DROP DATABASE IF EXISTS "{label.replace("-", "_")}" WITH (FORCE)')
    return {CASES[0]: empty["seconds"], CASES[1]: updates["seconds"]}


def prepared_with(url: str | None, label: str, source: Path) -> tuple[dict[str, str], str]:
    """`import_bench.prepared` (which copies this process's environment), with the revision's
    code first on the path, for the migration and the server alike."""
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = str(source / "src")
    try:
        return prepared(url, label)
    finally:
        if saved is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--only", choices=["sqlite", "postgresql"])
    args = parser.parse_args()
    sources = {"before": worktree(args.before), "after": worktree(args.after)}
    base, changed = generate(args.rows)
    dialects = [args.only] if args.only else ["sqlite", "postgresql"]
    report = [
        f"{args.rows:,} rows; before = {args.before} ({sources['before'].name}), "
        f"after = {args.after} ({sources['after'].name}); {args.rounds} rounds",
        "",
        "| database | case | before s | after s | after / before | runs |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for dialect in dialects:
        times: dict[str, dict[str, list[float]]] = {
            name: {case: [] for case in CASES} for name in sources
        }
        for round_ in range(args.rounds):
            order = list(sources) if round_ % 2 == 0 else list(reversed(sources))
            for name in order:
                result = run_revision(sources[name], dialect, base, changed)
                for case, seconds in result.items():
                    times[name][case].append(seconds)
                print(f"  [{dialect}] round {round_ + 1} {name}: {result}", flush=True)
        for case in CASES:
            before = statistics.median(times["before"][case])
            after = statistics.median(times["after"][case])
            report.append(
                f"| {dialect} | {case} | {before:.1f} | {after:.1f} | {after / before:.2f}x "
                f"| {args.rounds} |"
            )
    print("\n".join(report))


if __name__ == "__main__":
    main()
