"""Lays FreeIPA's own tree over the test server's fresh 389-ds instance, the way
ipa-server-install's directory steps do, then adds the project's role and seed.

  bootstrap.py tree    FreeIPA's LDIF templates (bootstrap, ACIs, delegation, DNA,
                       memberOf, managed entries ...), as Directory Manager (LDAPI autobind)
  bootstrap.py update  FreeIPA's install/updates/*.update files (those that need no C
                       plugin of FreeIPA's), then its managed permissions (the ACIs behind
                       every privilege)
  bootstrap.py seed    the role of the delegated mattersync account, the accounts and the
                       RAS-like groups, all made through FreeIPA's own commands
                       (scripts/freeipa/seed.json)

The instance must be running, with FreeIPA's schema files and the FAS schema installed.
"""

import json
import logging
import os
import subprocess
import sys
import tempfile

import ipa_env

logging.basicConfig(level=logging.INFO, format="%(asctime)s bootstrap: %(message)s")
log = logging.getLogger("bootstrap")

SHARE = os.path.join(ipa_env.TREE, "install", "share")
UPDATES = os.path.join(ipa_env.TREE, "install", "updates")
LDAPI = os.environ["IPA_LDAPI"]

# In the order ipa-server-install's DsInstance/KrbInstance apply them.
TEMPLATES = [
    "memberof-conf.ldif",
    "unique-attributes.ldif",
    "bootstrap-template.ldif",
    "referint-conf.ldif",
    "dna.ldif",
    "master-entry.ldif",
    "domainlevel.ldif",
    "repoint-managed-entries.ldif",
    "managed-entries.ldif",
    "user_private_groups.ldif",
    "default-aci.ldif",
    "delegation.ldif",
    "entryusn.ldif",
]

# Update files left out, and why: each configures a C plugin of FreeIPA's that nothing
# builds here (389-ds would refuse to start with it), or runs updater plugins that need a
# full server (CA, replication, Kerberos).
SKIPPED_UPDATES = {
    "05-pre_upgrade_plugins.update": "updater plugins of a full server",
    "90-post_upgrade_plugins.update": "updater plugins of a full server",
    "50-nis.update": "slapi-nis plugin",
    "80-schema_compat.update": "slapi-nis schema-compat plugin",
    "10-ipapwd.update": "ipa-pwd-extop C plugin",
    "10-enable-betxn.update": "FreeIPA's C plugins",
    "20-replication.update": "topology C plugin",
    "40-dns.update": "ipa-dns C plugin",
    "40-otp.update": "ipa-otp C plugins",
    "62-ranges.update": "ipa-range-check C plugin",
    "73-winsync.update": "ipa-winsync C plugin",
}


def sub_dict():
    from ipaserver.install import ldapupdate
    from ipapython.dn import DN

    env = ipa_env_api().env
    d = ldapupdate.get_sub_dict(
        realm=env.realm,
        domain=env.domain,
        suffix=DN(env.basedn),
        fqdn=env.server,
        idstart=1466400000,
        idmax=1466599999,
    )
    d.update(
        DOMAIN_LEVEL=1,
        SERVERID=os.environ["IPA_INSTANCE"],
        USER="dirsrv",
        GROUP="dirsrv",
    )
    return d


_api = None


def ipa_env_api(context="updates"):
    global _api
    if _api is None:
        _api = ipa_env.bootstrap(context)
    return _api


def ldapmodify(path):
    """Applies an LDIF file as Directory Manager (root's LDAPI autobind); existing
    entries are left as they are (-c)."""
    proc = subprocess.run(
        ["ldapmodify", "-Q", "-Y", "EXTERNAL", "-H", LDAPI, "-c", "-a", "-f", path],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    errors = [
        l for l in proc.stderr.splitlines()
        if l.strip() and "Already exists" not in l and "(68)" not in l
    ]
    if proc.returncode not in (0, 68) and errors:
        log.info("%s: %s", os.path.basename(path), " | ".join(errors[:4]))


def cmd_tree():
    from ipapython import ipautil

    d = sub_dict()
    for name in TEMPLATES:
        text = ipautil.template_file(os.path.join(SHARE, name), d)
        with tempfile.NamedTemporaryFile("w", suffix=".ldif", delete=False) as f:
            f.write(text)
        try:
            ldapmodify(f.name)
        finally:
            os.unlink(f.name)
        log.info("template %s applied", name)


def connect_dm(api):
    # Root over LDAPI: 389-ds maps the EXTERNAL autobind to Directory Manager.
    if not api.Backend.ldap2.isconnected():
        api.Backend.ldap2.connect()


def cmd_update():
    from ipaserver.install import ldapupdate

    api = ipa_env_api("updates")
    d = sub_dict()
    work = tempfile.mkdtemp()
    files = []
    for name in sorted(os.listdir(UPDATES)):
        if not name.endswith(".update") or name in SKIPPED_UPDATES:
            continue
        with open(os.path.join(UPDATES, name)) as src:
            lines = [l for l in src if not l.startswith("plugin:")]
        path = os.path.join(work, name)
        with open(path, "w") as dst:
            dst.writelines(lines)
        files.append(path)
    # LDAPUpdate builds an API of its own from /etc/ipa with the realm's LDAPI socket:
    # point both at this server's.
    from ipapython import ipaldap
    from ipaplatform.paths import paths

    ipaldap.realm_to_ldapi_uri = lambda realm: LDAPI
    paths.ETC_IPA = ipa_env.CONFDIR
    updater = ldapupdate.LDAPUpdate(sub_dict=d, api=api)
    updater.update(files)
    log.info("%d update files applied (%d skipped)", len(files), len(SKIPPED_UPDATES))
    connect_dm(api)
    managed_permissions(api)
    log.info("%d ipaUniqueIDs generated", ipa_env.fix_autogenerated(api))


def managed_permissions(api):
    """FreeIPA's managed permissions and their ACIs. Those whose container does not exist
    here (trusts, CA, ...) are skipped, one by one."""
    from ipaserver.install.plugins.update_managed_permissions import (
        update_managed_permissions,
    )

    up = update_managed_permissions(api)
    ldap = api.Backend.ldap2
    anonymous = up.get_anonymous_read_aci(ldap)
    done = skipped = 0
    for name, template, obj in up.get_templates():
        try:
            up.update_permission(ldap, obj, str(name), template, anonymous)
            done += 1
        except Exception as e:
            skipped += 1
            log.debug("permission %s skipped: %s", name, e)
    if anonymous:
        up.remove_anonymous_read_aci(ldap, anonymous)
    log.info("managed permissions: %d made, %d skipped", done, skipped)


def cmd_seed():
    import seed as seeding

    api = ipa_env_api("server")
    connect_dm(api)
    with open(os.path.join(ipa_env.HERE, "seed.json")) as f:
        seed = json.load(f)
    seeding.apply(api, seed, seeding.read_passwords())


if __name__ == "__main__":
    {"tree": cmd_tree, "update": cmd_update, "seed": cmd_seed}[sys.argv[1]]()
