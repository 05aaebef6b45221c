"""Stand-in (see pki/__init__.py)."""
from pki import _unavailable

PKIConnection = KRAClient = AccountClient = KeyClient = _unavailable
