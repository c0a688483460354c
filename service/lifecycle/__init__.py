"""The sweep lifecycle: every change of a sweep's or a run's state, in one place.

    submit.py   a sweep, its cells and its pending runs are stored (queued)
    queue.py    sweep state: claimed (running), heartbeat, released (queued), cancelled, finished
    lease.py    SweepLease: one worker's hold on one claimed sweep, and every step it may take
    runs.py     run state: pending → an outcome (stored results, failed), attempts
    report.py   RunReport: the typed result of one seed, checked where it enters the service
"""
