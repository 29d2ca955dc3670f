"""``dupe-scanner run``: the folder-watching service (see ``app`` for how the parts fit).

The stages, one module each, wired by ``app``:

- ``intake``: the main loop, hints to rows; the reconcile walk
- ``queue_worker``: pending rows through the indexer
- ``scan_job``: debounced and scheduled scans that write the reports
- ``health``: the heartbeat (health checks, WATCHDOG, STATUS, the status file)
- ``live_settings``: settings edits and SIGHUP, applied to every stage
- ``app``: the life cycle (build, start, run, stop) and the wiring

Their parts:

- ``notify``: sd_notify (READY, STATUS, WATCHDOG, RELOADING, STOPPING)
- ``mounts``: which folders sit on network or FUSE filesystems
- ``watching``: watchdog observers per folder; events become hints
- ``stability``: when a file has stopped changing
- ``config_reload``: settings.toml edits and SIGHUP
- ``decision_inbox``: decisions files dropped into the reports folder
- ``scan_progress``: a running scan's progress, for STATUS= and the log
- ``status``: the status file, the state's counts, and ``dupe-scanner status``'s lines about the service
- ``processes``: the processes the service started
- ``jobs``: the scheduler's triggers and coalesced jobs
- ``memory``: giving memory back after a scan or a walk
"""
