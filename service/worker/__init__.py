"""The worker runtime: claims queued sweeps and trains them on Ray Tune.

    loop.py         Worker: the claim loop, and a driver process per sweep beyond the first
    execute.py      execute_sweep: trials planned from what is stored until every run has an outcome
    buffer.py       ResultBuffer: what the trials report, written in batches
    planning.py     plan_trials: one trial per (cell, chunk of seeds)
    runner.py       the TrialRunner and TrialSink protocols; where a trial fits
    tune_runner.py  TuneRunner: the only service module that imports Ray
    guards.py       one worker per SQLite database; a worker never outlives its `serve`
    embedded.py     `clipsweep serve`'s worker process, restarted when it dies
    processes.py    stopping child processes
"""
