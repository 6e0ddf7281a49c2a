"""Contestant (d) of the evaluate bench: DuckDB over the export itself.

Run by benches/evaluate.rs (with the Python of a venv under target/ that has `duckdb`), not by
hand: `python thirty_steps.py CSV NOW FROM UNTIL REPEATS`. Prints one JSON object: DuckDB's
version and threads, the wall time of each repeat of the bare scan (`SELECT count(*)` over
`read_csv`) and of the thirty-step query (`thirty_steps.sql`), and the query's sends per step.

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

SCAN = "SELECT count(*) FROM read_csv($csv, header = true, auto_detect = true)"


def timed(con, sql, params):
    started = time.perf_counter()
    rows = con.execute(sql, params).fetchall()
    return time.perf_counter() - started, rows


def main():
    csv, now, since, until, repeats = sys.argv[1:6]
    query = (pathlib.Path(__file__).parent / "thirty_steps.sql").read_text(encoding="utf-8")
    con = duckdb.connect()
    params = {"csv": csv, "now": now, "from": since, "until": until}
    scans, queries = [], []
    rows = patients = None
    for _ in range(int(repeats)):
        wall, counted = timed(con, SCAN, {"csv": csv})
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
