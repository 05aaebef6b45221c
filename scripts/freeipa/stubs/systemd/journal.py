"""Stand-in for `systemd.journal`: FreeIPA 4.12 writes an audit line per command to the
journal; here there is no journald, so the line goes to the server's own log."""
import logging

LOG_NOTICE = 5
_log = logging.getLogger("ipa.audit")


def send(message, **_fields):
    _log.info("%s", message)
