"""``dupe-scanner run``: the folder-watching service (see ``app`` for how the parts fit).

- ``notify``: sd_notify (READY, STATUS, WATCHDOG, RELOADING, STOPPING)
- ``mounts``: which folders sit on network or FUSE filesystems
- ``watching``: watchdog observers per folder; events become hints
- ``stability``: when a file has stopped changing
- ``config_reload``: settings.toml edits and SIGHUP
- ``status``: the status file, and ``dupe-scanner status``'s lines about the service
- ``processes``: the processes the service started
- ``app``: the composition root and the service itself
"""
