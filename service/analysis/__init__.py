"""What a sweep's runs say, computed from loaded rows with no database and no I/O.

    statistics.py   the statistics themselves: pure functions, tested with literal numbers
    summary.py      summarize(rows): one CellSummary per cell; stability_frontier per arm
    headline.py     the answer in one sentence
    export.py       rows as CSV or Parquet, streamed
"""
