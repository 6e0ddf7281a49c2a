"""Contestant (d) of the evaluate bench: DuckDB over the export itself.

Run by benches/evaluate.rs (with the Python of a venv under target/ that has `duckdb`), not by
hand: `python thirty_steps.py FILE NOW FROM UNTIL REPEATS [csv|jsonl]`. Prints one JSON object:
DuckDB's version and threads, the wall time of each repeat of the bare scan (`SELECT count(*)`
over the file) and of the thirty-step query (`thirty_steps.sql`), and the query's sends per
step. With `jsonl` the file is the JSONL copy of the export, read with `read_json` (one object a
line, the same column types); the query is otherwise the same, so it finds the same sends.

The clock runs around each query alone (executing it and fetching its rows): the interpreter's
start, `import duckdb` and opening the in-memory database are outside it. Each query reads and
parses the file again (DuckDB keeps no CSV between queries); the file is in the page cache
after the first.
"""

import json
import pathlib
import sys
import time

import duckdb

SCANS = {
    "csv": "SELECT count(*) FROM read_csv($csv, header = true, auto_detect = true)",
    "jsonl": "SELECT count(*) FROM read_json($csv, format = 'newline_delimited')",
}

# The query's source as thirty_steps.sql writes it, and the same columns read from JSONL.
CSV_SOURCE = "read_csv($csv, header = true, auto_detect = true, types = {"
JSONL_SOURCE = "read_json($csv, format = 'newline_delimited', columns = {"


def timed(con, sql, params):
    started = time.perf_counter()
    rows = con.execute(sql, params).fetchall()
    return time.perf_counter() - started, rows


def main():
    csv, now, since, until, repeats = sys.argv[1:6]
    kind = sys.argv[6] if len(sys.argv) > 6 else "csv"
    query = (pathlib.Path(__file__).parent / "thirty_steps.sql").read_text(encoding="utf-8")
    if query.count(CSV_SOURCE) != 1:
        sys.exit("thirty_steps.sql no longer reads the export as this script expects")
    if kind == "jsonl":
        query = query.replace(CSV_SOURCE, JSONL_SOURCE)
    scan = SCANS[kind]
    con = duckdb.connect()
    if kind == "jsonl":
        # The JSON extension set up outside the clock, as the interpreter and import are.
        con.execute("LOAD json")
    params = {"csv": csv, "now": now, "from": since, "until": until}
    scans, queries = [], []
    rows = patients = None
    for _ in range(int(repeats)):
        wall, counted = timed(con, scan, {"csv": csv})
        scans.append(wall)
        patients = counted[0][0]
        wall, rows = timed(con, query, params)
        queries.append(wall)
    threads = con.execute("SELECT current_setting('threads')").fetchone()[0]
    print(json.dumps({
        "version": duckdb.__version__,
        "threads": threads,
        "patients": patients,
        "scan": scans,
        "query": queries,
        "per_step": {str(step): sends for step, sends in rows},
    }))


if __name__ == "__main__":
    main()
