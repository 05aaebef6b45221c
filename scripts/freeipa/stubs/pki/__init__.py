"""Stand-in for Dogtag's `pki` Python package, which Debian does not ship.

FreeIPA's server plugins import a few of its names at load time (`ipaserver/plugins/dogtag.py`,
`vault.py`). The test server has no CA and no KRA: any use of these names is an error.
"""


class PKIException(Exception):
    pass


def _unavailable(*_args, **_kwargs):
    raise PKIException("no Dogtag on the mattersync test server")
