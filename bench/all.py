"""Run every benchmark in ``bench/`` and record their figures; compare two such records.

Each benchmark prints one JSON line at the end (``api_connectors.py`` one per connector). This
script runs them one after another as subprocesses, with arguments chosen to be quick but still
meaningful (the table ``BENCHES``; ``--full`` uses each script's own defaults), and writes one
JSON file::

    {"rev", "checkout", "python", "started", "finished", "loadavg_start", "loadavg_end",
     "benches": {name: {"script", "args", "json", "wall_s", "returncode",
                        "loadavg_before", "loadavg_after", "stderr_tail"}}}

The file is rewritten after every benchmark, so an interrupted run keeps what it measured.
Progress (each benchmark's own stderr, prefixed with its name) goes to stderr.

What is measured is a checkout: this one by default, ``--checkout DIR`` another one, or
``--rev REV`` a temporary ``git worktree`` of that revision (removed afterwards). A checkout
without a ``.venv`` of its own runs with this interpreter and ``PYTHONPATH=<checkout>/src``, which
comes before the editable install of this checkout on ``sys.path`` (``--new-venv`` runs ``make
venv`` in the temporary worktree instead: slower, but right when the dependencies differ).

``--compare A.json B.json`` prints every numeric figure of both, the change in %, and flags a
change for the worse beyond ``--threshold`` (5 %). Whether higher or lower is better is decided
per key by ``DIRECTIONS`` (first matching pattern wins); keys no pattern knows are shown but not
judged.

``--ab REV`` measures a change on a machine whose speed drifts: REV (A, a temporary worktree) and
this checkout (B) take turns, ``--rounds`` (3) runs each, the first of each round alternating, and
the medians are compared, with each side's range over the rounds beside them. Each run is an
ordinary record (``<prefix>-a1.json``, ``<prefix>-b1.json``, …; ``-o`` gives the prefix), so
any two can still go to ``--compare``. A single before/after pair measured minutes apart
misleads on a shared machine: the same code's backlog rate moved by a third from one hour to
the next here (issue 21).

    .venv/bin/python bench/all.py [--only a,b] [--skip fleet] [--rev REV | --checkout DIR] [-o FILE]
    .venv/bin/python bench/all.py --compare before.json after.json
    .venv/bin/python bench/all.py --ab REV [--rounds 3] --only ingest_backlog [-o var/ab]
"""

from __future__ import annotations

import argparse
import datetime as dt
import fnmatch
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


@dataclass(frozen=True)
class Bench:
    """One run of one script: ``quick`` are the arguments ``all.py`` uses, ``full`` with ``--full``."""

    script: str
    quick: tuple[str, ...] = ()
    full: tuple[str, ...] = ()
    timeout_s: float = 1800.0


# The order puts the short, CPU-bound figures first and the long multi-process ones last.
BENCHES: dict[str, Bench] = {
    "parse": Bench("parse.py", ("--messages", "5000", "--repeat", "2")),
    "bounce_check": Bench("bounce_check.py", ("--messages", "2000", "--repeat", "3")),
    "contacts": Bench("contacts.py", ("--messages", "20000", "--repeat", "3")),
    "detect": Bench("detect.py"),
    "oauth_tokens": Bench("oauth_tokens.py"),
    "assignment": Bench("assignment.py"),
    "imap_fetch": Bench("imap_fetch.py", ("--messages", "10000", "--repeat", "3")),
    "imap_idle_memory": Bench("imap_idle_memory.py", ("--connections", "1000")),
    "compare": Bench("compare.py", ("--messages", "10000", "--repeat", "3", "--connections", "1000")),
    "ingest_latency": Bench("ingest_latency.py", ("--messages", "200")),
    "ingest_backlog": Bench("ingest_backlog.py", ("--messages", "10000", "--mailboxes", "10")),
    "ingest_backlog_1mailbox": Bench(
        "ingest_backlog.py", ("--messages", "10000", "--mailboxes", "1"), ("--mailboxes", "1")
    ),
    # serve with MAILPORT_DELIVERY_PROCESS=true: webhook delivery in a child process
    "ingest_latency_split": Bench(
        "ingest_latency.py", ("--messages", "200", "--delivery-process"), ("--delivery-process",)
    ),
    "ingest_backlog_split": Bench(
        "ingest_backlog.py",
        ("--messages", "10000", "--mailboxes", "10", "--delivery-process"),
        ("--delivery-process",),
    ),
    "ingest_backlog_pop3": Bench(
        "ingest_backlog.py",
        ("--messages", "5000", "--mailboxes", "10", "--connector", "pop3", "--only", "sqlite"),
        ("--connector", "pop3"),
    ),
    "delivery_throughput": Bench("delivery_throughput.py"),
    # the dispatcher on uvloop, as in a delivery-only worker (serve's delivery child)
    "delivery_throughput_uvloop": Bench(
        "delivery_throughput.py", ("--event-loop", "uvloop"), ("--event-loop", "uvloop")
    ),
    "send": Bench("send.py", ("--messages", "500")),
    "host_apps": Bench("host_apps.py", ("--quick",)),
    "mailbox_api": Bench(
        "mailbox_api.py",
        ("--messages", "3000", "--rounds", "100", "--bursts", "3", "--latency-messages", "10"),
    ),
    "api_connectors": Bench("api_connectors.py", ("--sync-messages", "3000", "--messages", "50")),
    "watchers": Bench("watchers.py", ("--mailboxes", "1000")),
    "fleet": Bench("fleet.py", ("--mailboxes", "10000"), timeout_s=3600.0),
}

# Whether a figure is better higher or lower: (pattern on "bench.key.path", "higher"|"lower"|"info").
# First match wins; the specific patterns come before the generic suffixes.
# "ref": a reference measured beside mailport (stdlib, imaplib, a raw reader, imapflow, the server's
# own delay): shown, never flagged, but its change tells how much of mailport's change is the machine.
DIRECTIONS: list[tuple[str, str]] = [
    ("*stdlib*", "ref"),
    ("*.imaplib", "ref"),
    ("*.raw", "ref"),
    ("*.imapflow", "ref"),
    ("*imap_notify*", "ref"),
    ("*fake_delivery*", "ref"),
    ("*goal*", "info"),
    ("*bytes*", "info"),
    ("*_timed", "info"),
    ("*multipart_share", "info"),
    ("*.contacts", "info"),
    ("*excluded*", "info"),
    ("*domains", "info"),
    ("*_runs", "info"),
    ("*report_messages", "info"),
    ("*.messages", "info"),
    ("*.connections", "info"),
    ("*.mailboxes", "info"),
    ("*.workers", "info"),
    ("*.count", "info"),
    ("*.alive", "info"),
    ("*loadavg*", "info"),
    ("*.repeat", "info"),
    ("*.rate", "info"),
    ("*rolling_lost*", "lower"),
    ("*rolling_duplicated*", "lower"),
    ("*lost*", "lower"),
    ("*duplicat*", "lower"),
    ("*errors*", "lower"),
    ("*failed*", "lower"),
    ("*others*", "lower"),
    ("*.503", "lower"),
    ("*.other", "lower"),
    ("compare.ratios.idle_*", "lower"),  # mailport's KiB / the other's
    ("compare.ratios.*cpu*", "lower"),  # mailport's CPU seconds / the other's
    ("*ratio*", "higher"),
    ("*speedup*", "higher"),
    ("*per_s*", "higher"),
    ("*_per_s", "higher"),
    ("*msg_s*", "higher"),
    ("*mb_s*", "higher"),
    ("*throughput*", "higher"),
    ("imap_fetch.dovecot.*", "higher"),
    ("imap_fetch.replay.*", "higher"),
    ("compare.fetch_*_cpu_s.*", "lower"),
    ("compare.fetch_*.*", "higher"),
    ("*requests_per_message*", "lower"),
    ("*calls_per*", "lower"),
    ("*_kib*", "lower"),
    ("*_mib*", "lower"),
    ("*rss*", "lower"),
    ("*_ms", "lower"),
    ("*_ms_*", "lower"),
    ("*_us", "lower"),
    ("*_us_*", "lower"),
    ("*cpu*", "lower"),
    ("*_s", "lower"),
    ("*seconds*", "lower"),
    ("*share*", "lower"),
    ("*percent*", "lower"),
]


def loadavg() -> list[float]:
    """The 1, 5 and 15 minute load averages (the machine is shared: every figure carries them)."""
    return [round(x, 2) for x in os.getloadavg()]


def direction(key: str) -> str:
    for pattern, way in DIRECTIONS:
        if fnmatch.fnmatchcase(key, pattern):
            return way
    return "info"  # not known: shown, not judged (add a pattern above)


# --------------------------------------------------------------------------- running


def git(checkout: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(checkout), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


def json_lines(stdout: str) -> list[dict[str, object]]:
    out = []
    for line in stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict):
                out.append(value)
    return out


def run_one(
    name: str, bench: Bench, args: tuple[str, ...], checkout: Path, python: str, env: dict[str, str]
) -> dict[str, object]:
    """Run one benchmark to completion (or its timeout), echoing its stderr with a prefix.

    A script the checkout lacks (a benchmark newer than the revision) runs from this checkout,
    still with the measured checkout's ``src`` on ``PYTHONPATH``: the new benchmark, the old code.
    """
    script = checkout / "bench" / bench.script
    if not script.exists():
        script = HERE / bench.script
    command = [python, str(script), *args]
    print(f"[all] {name}: {' '.join(command[1:])}  (load {loadavg()})", file=sys.stderr, flush=True)
    before = loadavg()
    started = time.monotonic()
    process = subprocess.Popen(
        command,
        cwd=checkout,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its servers and workers form one group, stopped together on timeout
    )
    tail: list[str] = []
    stdout_parts: list[str] = []

    def pump_err() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            sys.stderr.write(f"[{name}] {line}")
            tail.append(line.rstrip("\n"))
            del tail[:-40]

    def pump_out() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            stdout_parts.append(line)
            if not line.lstrip().startswith("{"):
                sys.stderr.write(f"[{name}] {line}")

    threads = [threading.Thread(target=pump_err, daemon=True), threading.Thread(target=pump_out, daemon=True)]
    for thread in threads:
        thread.start()
    timed_out = False
    try:
        process.wait(timeout=bench.timeout_s)
    except subprocess.TimeoutExpired:
        timed_out = True
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    for thread in threads:
        thread.join(timeout=10)
    wall = time.monotonic() - started
    lines = json_lines("".join(stdout_parts))
    result: dict[str, object] = {
        "script": bench.script,
        "args": list(args),
        "json": lines,
        "wall_s": round(wall, 1),
        "returncode": process.returncode,
        "timed_out": timed_out,
        "loadavg_before": before,
        "loadavg_after": loadavg(),
    }
    if process.returncode != 0 or not lines:
        result["stderr_tail"] = tail[-20:]
    print(
        f"[all] {name}: rc={process.returncode} in {wall:.0f} s (load {loadavg()}) "
        f"{json.dumps(lines[-1]) if lines else 'no JSON'}",
        file=sys.stderr,
        flush=True,
    )
    return result


def run_all(
    checkout: Path,
    python: str,
    env: dict[str, str],
    names: list[str],
    full: bool,
    output: Path,
    *,
    update: bool,
) -> None:
    record: dict[str, object] = {
        "rev": git(checkout, "rev-parse", "HEAD"),
        "dirty": bool(git(checkout, "status", "--porcelain", "--untracked-files=no")),
        "checkout": str(checkout),
        "python": python,
        "pythonpath": env.get("PYTHONPATH", ""),
        "full": full,
        "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "loadavg_start": loadavg(),
        "benches": {},
    }
    if update and output.exists():
        # Adding benchmarks to a record: its own start stays; each bench keeps its own load figures.
        previous = json.loads(output.read_text())
        previous.setdefault("updates", []).append({k: v for k, v in record.items() if k != "benches"})
        record = previous
    benches: dict[str, object] = record["benches"]  # type: ignore[assignment]
    for name in names:
        bench = BENCHES[name]
        own = (checkout / "bench" / bench.script).exists()
        if not own and not (HERE / bench.script).exists():
            print(f"[all] {name}: bench/{bench.script} not in this checkout, skipped", file=sys.stderr)
            benches[name] = {"script": bench.script, "missing": True}
            continue
        benches[name] = run_one(name, bench, bench.full if full else bench.quick, checkout, python, env)
        if not own:
            benches[name]["script_from"] = str(HERE)  # type: ignore[index]
        record["loadavg_end"] = loadavg()
        record["finished"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        output.write_text(json.dumps(record, indent=1) + "\n")
    record["loadavg_end"] = loadavg()
    record["finished"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    output.write_text(json.dumps(record, indent=1) + "\n")
    print(f"[all] wrote {output}", file=sys.stderr)
    for name, entry in benches.items():
        if isinstance(entry, dict) and "wall_s" in entry:
            print(f"[all]   {name:26} {entry['wall_s']:7.0f} s  rc={entry['returncode']}", file=sys.stderr)


def environment(checkout: Path, python: str) -> dict[str, str]:
    env = dict(os.environ)
    if Path(os.path.abspath(python)).parent.parent.parent != checkout.resolve():
        # Not the checkout's own venv: its sources before the editable install of another checkout.
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(checkout / "src"), env.get("PYTHONPATH")]))
    return env


def selected(only: str | None, skip: str | None) -> list[str]:
    names = list(BENCHES)
    if only:
        wanted = [n.strip() for n in only.split(",") if n.strip()]
        unknown = [n for n in wanted if n not in BENCHES]
        if unknown:
            raise SystemExit(f"unknown benchmark(s) {unknown}; known: {', '.join(BENCHES)}")
        names = [n for n in names if n in wanted]
    if skip:
        dropped = {n.strip() for n in skip.split(",")}
        names = [n for n in names if n not in dropped]
    return names


# --------------------------------------------------------------------------- comparing


def flatten(value: object, prefix: str) -> Iterator[tuple[str, float]]:
    if isinstance(value, bool):
        return
    if isinstance(value, int | float):
        yield prefix, float(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from flatten(item, f"{prefix}.{key}")


def figures(record: dict[str, object]) -> dict[str, float]:
    """Every numeric figure of a record as ``bench.key.path`` -> value (plus each bench's wall time)."""
    out: dict[str, float] = {}
    benches = record.get("benches", {})
    assert isinstance(benches, dict)
    for name, entry in benches.items():
        lines = entry.get("json") or []
        if len(lines) > 1 and all("connector" in line for line in lines):
            for line in lines:
                out.update(
                    flatten(
                        {k: v for k, v in line.items() if k != "connector"}, f"{name}.{line['connector']}"
                    )
                )
        elif lines:
            out.update(flatten(lines[-1], name))
        if "wall_s" in entry:
            out[f"{name}.(wall_s)"] = float(entry["wall_s"])  # how long it took, never judged
    return out


def compare(a_path: Path, b_path: Path, threshold: float) -> int:
    a, b = json.loads(a_path.read_text()), json.loads(b_path.read_text())
    print(f"A: {a_path} rev {a.get('rev', '?')[:10]} load {a.get('loadavg_start')} -> {a.get('loadavg_end')}")
    print(f"B: {b_path} rev {b.get('rev', '?')[:10]} load {b.get('loadavg_start')} -> {b.get('loadavg_end')}")
    return judge(figures(a), figures(b), threshold)


def judge(
    fa: dict[str, float],
    fb: dict[str, float],
    threshold: float,
    spread: dict[str, tuple[str, str]] | None = None,
) -> int:
    """Print every figure of A and B with the change in % and its verdict; the number of
    regressions. ``spread``: per figure, each side's range over rounds (``--ab``)."""
    width = max((len(k) for k in fa.keys() | fb.keys()), default=10)
    extra = f"  {'A range':>17}  {'B range':>17}" if spread is not None else ""
    print(f"{'figure':{width}}  {'A':>12}  {'B':>12}  {'change':>8}{extra}  better  flag")
    regressions = 0
    for key in sorted(fa.keys() | fb.keys(), key=lambda k: (k.split(".")[0], k)):
        va, vb = fa.get(key), fb.get(key)
        way = "info" if key.endswith(".(wall_s)") else direction(key)
        change = ""
        flag = ""
        if va is not None and vb is not None and va != 0:
            pct = (vb - va) / abs(va) * 100
            change = f"{pct:+.1f}%"
            worse = (way == "higher" and pct < -threshold) or (way == "lower" and pct > threshold)
            better = (way == "higher" and pct > threshold) or (way == "lower" and pct < -threshold)
            if worse:
                flag = "REGRESSION"
                regressions += 1
            elif better:
                flag = "better"
        elif va is None or vb is None:
            flag = "only in " + ("B" if va is None else "A")
        shown_a = "" if va is None else f"{va:.6g}"
        shown_b = "" if vb is None else f"{vb:.6g}"
        ranges = ""
        if spread is not None:
            range_a, range_b = spread.get(key, ("", ""))
            ranges = f"  {range_a:>17}  {range_b:>17}"
        print(f"{key:{width}}  {shown_a:>12}  {shown_b:>12}  {change:>8}{ranges}  {way:6}  {flag}")
    print(f"{regressions} regression(s) beyond {threshold:g} % (noisy machine: rerun a flagged bench A/B)")
    return 1 if regressions else 0


def medians(records: list[dict[str, float]]) -> tuple[dict[str, float], dict[str, str]]:
    """Per figure, its median over the rounds that have it, and its range (``min-max``)."""
    values: dict[str, list[float]] = {}
    for record in records:
        for key, value in record.items():
            values.setdefault(key, []).append(value)
    middle = {key: statistics.median(found) for key, found in values.items()}
    ranges = {key: f"{min(found):.6g}-{max(found):.6g}" for key, found in values.items()}
    return middle, ranges


def compare_rounds(a_paths: list[Path], b_paths: list[Path], threshold: float) -> int:
    """:func:`compare` of the medians of interleaved rounds (``--ab``)."""
    a_records = [json.loads(p.read_text()) for p in a_paths]
    b_records = [json.loads(p.read_text()) for p in b_paths]
    for label, records in (("A", a_records), ("B", b_records)):
        loads = [r.get("loadavg_start", [None])[0] for r in records]
        rev = records[0].get("rev", "?")[:10]
        if records[0].get("dirty"):
            rev += " with uncommitted changes"
        print(f"{label}: rev {rev}, {len(records)} rounds, 1-min load at each start {loads}")
    fa, range_a = medians([figures(r) for r in a_records])
    fb, range_b = medians([figures(r) for r in b_records])
    spread = {key: (range_a.get(key, ""), range_b.get(key, "")) for key in fa.keys() | fb.keys()}
    print("medians of the rounds; the ranges are each side's lowest-highest")
    return judge(fa, fb, threshold, spread)


# --------------------------------------------------------------------------- main


def side(checkout: Path, forced: str | None) -> tuple[str, dict[str, str]]:
    """The interpreter and environment that run ``checkout``'s benchmarks."""
    own = checkout / ".venv" / "bin" / "python"
    python = forced or (str(own) if own.exists() else sys.executable)
    return python, environment(checkout, python)


def run_ab(a: Path, b: Path, args: argparse.Namespace, names: list[str]) -> int:
    """``--ab``: A and B in turn, ``--rounds`` times, the first of each round alternating (a
    machine that drifts, faster or slower, weighs on both alike); then :func:`compare_rounds`.
    Each run is an ordinary record (``<prefix>-a1.json``, ``<prefix>-b1.json``, …)."""
    revs = {key: git(path, "rev-parse", "--short=10", "HEAD") for key, path in (("a", a), ("b", b))}
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    prefix = args.output or REPO / "var" / f"ab-{revs['a']}-{revs['b']}-{stamp}"
    prefix.parent.mkdir(parents=True, exist_ok=True)
    paths: dict[str, list[Path]] = {"a": [], "b": []}
    for number in range(1, args.rounds + 1):
        order = ("a", "b") if number % 2 else ("b", "a")
        for key in order:
            checkout = a if key == "a" else b
            python, env = side(checkout, args.python)
            output = prefix.with_name(f"{prefix.name}-{key}{number}.json")
            print(f"[all] round {number} of {args.rounds}: {key.upper()} ({revs[key]})", file=sys.stderr)
            run_all(checkout, python, env, names, args.full, output, update=False)
            paths[key].append(output)
    return compare_rounds(paths["a"], paths["b"], args.threshold)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", help="comma-separated benchmark names (default: all)")
    parser.add_argument("--skip", help="comma-separated benchmark names to leave out")
    parser.add_argument("--full", action="store_true", help="each script's own default arguments")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and their arguments")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--checkout", type=Path, help="run the benchmarks of this checkout")
    where.add_argument("--rev", help="run the benchmarks of this git revision (a temporary worktree)")
    where.add_argument(
        "--ab",
        metavar="REV",
        help="interleave REV (A, a temporary worktree) and this checkout (B), --rounds times each, "
        "alternating which goes first, and compare their medians",
    )
    parser.add_argument("--rounds", type=int, default=3, help="with --ab: rounds per side")
    parser.add_argument("--new-venv", action="store_true", help="with --rev: `make venv` in the worktree")
    parser.add_argument("--python", help="interpreter (default: the checkout's .venv, else this one)")
    parser.add_argument(
        "-o", "--output", type=Path, help="the JSON file (default var/bench-<rev>-<time>.json)"
    )
    parser.add_argument("--update", action="store_true", help="add to (replace in) an existing --output")
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("A", "B"), help="compare two records")
    parser.add_argument("--threshold", type=float, default=5.0, help="percent change flagged")
    args = parser.parse_args()
    if args.compare:
        raise SystemExit(compare(args.compare[0], args.compare[1], args.threshold))
    names = selected(args.only, args.skip)
    if args.list:
        for name in names:
            bench = BENCHES[name]
            print(f"{name:26} bench/{bench.script} {' '.join(bench.full if args.full else bench.quick)}")
        return
    if args.ab and args.rounds < 1:
        parser.error("--rounds is at least 1")
    worktree: Path | None = None
    checkout = (args.checkout or REPO).resolve()
    if args.rev or args.ab:
        worktree = Path(tempfile.mkdtemp(prefix="mailport-bench-rev-"))
        subprocess.run(
            ["git", "-C", str(REPO), "worktree", "add", "--detach", str(worktree), args.rev or args.ab],
            check=True,
        )
        if args.rev:
            checkout = worktree
        if args.new_venv:
            subprocess.run(["make", "venv"], cwd=worktree, check=True)
    try:
        if args.ab:
            assert worktree is not None
            raise SystemExit(run_ab(worktree, checkout, args, names))
        python, env = side(checkout, args.python)
        rev = git(checkout, "rev-parse", "--short=10", "HEAD")
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
        output = args.output or REPO / "var" / f"bench-{rev}-{stamp}.json"
        output.parent.mkdir(parents=True, exist_ok=True)
        run_all(checkout, python, env, names, args.full, output, update=args.update)
    finally:
        if worktree is not None:
            subprocess.run(
                ["git", "-C", str(REPO), "worktree", "remove", "--force", str(worktree)], check=False
            )


if __name__ == "__main__":
    main()
