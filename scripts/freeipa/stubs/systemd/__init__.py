"""Stand-in for python-systemd on a machine without journald (see journal.py)."""
