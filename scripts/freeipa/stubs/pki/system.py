"""Stand-in (see pki/__init__.py)."""
from pki import _unavailable

SecurityDomainClient = _unavailable
