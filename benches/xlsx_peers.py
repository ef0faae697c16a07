#!/usr/bin/env python3
"""Time reading one xlsx workbook: ledgerline (validating it) against what a
user would otherwise reach for to *read* it — polars `read_excel` (calamine
engine, through fastexcel) and pandas `read_excel` (openpyxl engine).

The peers only read the sheet into a data frame; ledgerline reads it and
does all of SPEC §3–§7. Every tool must see the same number of data rows.

    python3 benches/xlsx_peers.py --xlsx target/bench-data/invoices-1000000-s42.xlsx \
        --rows 1000000 --ledgerline target/release/ledgerline --runs 3

The workbook is the one `cargo xtask bench --formats xlsx` (or `cargo xtask
gen --rows N --out F.csv --xlsx F.xlsx`) writes. Peers run in the Python of
`$PEERS_VENV` (default `/tmp/ledgerline-peers-venv`, the venv that
`../shared/bench-peers/run_peers.sh` creates) with `fastexcel` and `openpyxl`
added: `$PEERS_VENV/bin/pip install fastexcel openpyxl`.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

POLARS = """
import sys, polars as pl
df = pl.read_excel(sys.argv[1], engine="calamine")
print(df.height)
"""

PANDAS = """
import sys, pandas as pd
df = pd.read_excel(sys.argv[1], engine="openpyxl")
print(len(df))
"""


def timed(cmd):
    """Runs cmd; returns (wall seconds, cpu seconds, peak RSS MiB, stdout)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        code = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if code not in (0, 1):
            sys.exit(f"{cmd[0]} failed ({code}): {err.read()[-2000:].decode(errors='replace')}")
        cpu = usage.ru_utime + usage.ru_stime
        return wall, cpu, usage.ru_maxrss / 1024, out.read().decode()


def rows_of(tool, out):
    if tool.startswith("ledgerline"):
        report = json.loads(out)
        return report["rows"]["total"] + report["rows"]["blank"]
    return int(out.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--xlsx", required=True)
    ap.add_argument("--rows", type=int, required=True)
    ap.add_argument("--ledgerline", required=True)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--peers", default="polars,pandas")
    ap.add_argument("--extra", action="append", default=[],
                    help="NAME=ARGS: another ledgerline run with these process arguments")
    args = ap.parse_args()
    venv = os.environ.get("PEERS_VENV", "/tmp/ledgerline-peers-venv")
    python = os.path.join(venv, "bin", "python")
    tools = [("ledgerline", [args.ledgerline, "process", args.xlsx, "--json"])]
    for extra in args.extra:
        name, _, rest = extra.partition("=")
        tools.append((name, [args.ledgerline, "process", args.xlsx, "--json", *rest.split()]))
    peers = {"polars": POLARS, "pandas": PANDAS}
    for peer in args.peers.split(","):
        if peer:
            tools.append((f"peer:{peer}", [python, "-c", peers[peer], args.xlsx]))
    size = os.path.getsize(args.xlsx) / 1e6
    results = {}
    # Interleaved: one run of each tool per round.
    for _ in range(args.runs):
        for name, cmd in tools:
            wall, cpu, rss, out = timed(cmd)
            seen = rows_of(name, out)
            if seen != args.rows:
                sys.exit(f"{name} saw {seen} data rows, not {args.rows}")
            results.setdefault(name, []).append((wall, cpu, rss))
    base = statistics.median(w for w, _, _ in results["ledgerline"])
    print(f"xlsx {args.rows} rows, {size:.1f} MB, {args.runs} runs each, interleaved")
    print("| tool | wall median s (min..max) | cpu s | rows/s | peak RSS MiB | × ledgerline time |")
    print("|---|---|---:|---:|---:|---:|")
    for name, runs in results.items():
        walls = [w for w, _, _ in runs]
        med = statistics.median(walls)
        cpu = statistics.median(c for _, c, _ in runs)
        rss = max(r for _, _, r in runs)
        print(f"| {name} | {med:.3f} ({min(walls):.3f}..{max(walls):.3f}) | {cpu:.2f} | "
              f"{args.rows / med / 1e3:.1f} K | {rss:.0f} | {med / base:.2f} |")


if __name__ == "__main__":
    main()
