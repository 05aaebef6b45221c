"""The FreeIPA test server's seed (seed.json), made through FreeIPA's own commands as
Directory Manager, and its reset.

  seed.py reset   delete every user and group that neither FreeIPA's bootstrap nor the
                  seed made (the tests' own), then apply the seed again

Applying is idempotent: what exists is left as it is.
"""

import json
import logging
import os
import sys

log = logging.getLogger("seed")


def _dn(api, *rdns):
    from ipapython.dn import DN

    return DN(*rdns, api.env.basedn)


def read_passwords():
    """The accounts' passwords, from the state directory's <account>.password files
    (written by scripts/freeipa.sh, 0600)."""
    import ipa_env

    out = {}
    for name in os.listdir(ipa_env.STATE):
        if name.endswith(".password"):
            with open(os.path.join(ipa_env.STATE, name)) as f:
                out[name[: -len(".password")]] = f.read()
    return out


def _password(passwords, uid):
    return passwords.get(uid) or passwords["member"]


def _set_password(ldap, dn, password):
    # As Directory Manager; 389-ds hashes it. (A full server's ipa-pwd-extop would also
    # write Kerberos keys; logins here are LDAP binds.)
    entry = ldap.get_entry(dn, ["userPassword"])
    entry["userPassword"] = [password]
    try:
        ldap.update_entry(entry)
    except Exception as e:  # EmptyModlist: already so
        if type(e).__name__ != "EmptyModlist":
            raise


def _builtin_path():
    import ipa_env

    return os.path.join(ipa_env.STATE, "builtin.json")


def _names(api, ldap, container, attr):
    base = _dn(api, *container)
    entries, _ = ldap.find_entries(
        filter="(objectclass=*)", attrs_list=[attr], base_dn=base, scope=ldap.SCOPE_ONELEVEL
    )
    return sorted(e.single_value[attr] for e in entries)


def apply(api, seed, passwords):
    from ipalib import errors

    cmd = api.Command
    ldap = api.Backend.ldap2
    users_c = ("cn", "users"), ("cn", "accounts")
    groups_c = ("cn", "groups"), ("cn", "accounts")
    if not os.path.exists(_builtin_path()):
        with open(_builtin_path(), "w") as f:
            json.dump(
                {
                    "users": _names(api, ldap, users_c, "uid"),
                    "groups": _names(api, ldap, groups_c, "cn"),
                },
                f,
            )

    def once(fn, *args, **kw):
        try:
            return fn(*args, **kw)
        except (errors.DuplicateEntry, errors.EmptyModlist, errors.AlreadyGroupMember,
                errors.AlreadyInactive):
            return None

    for u in seed["users"]:
        uid = u["uid"]
        made = once(cmd.user_add, uid, givenname=u["first"], sn=u["last"],
                    mail="%s@rockylinux.org" % uid)
        if made and u.get("fas"):
            # user_add sets the object classes from FreeIPA's configuration; add FAS's after.
            attrs = ["objectclass=fasuser"]
            if u.get("private"):
                attrs.append("fasIsPrivate=TRUE")
            cmd.user_mod(uid, addattr=attrs)
        _set_password(ldap, _dn(api, ("uid", uid), *users_c), _password(passwords, uid))
        for g in u.get("groups", []):
            cmd.group_add_member(g, user=[uid])
        if u.get("disabled"):
            once(cmd.user_disable, uid)

    # Containers of FreeIPA parts the test server leaves out whose commands others call
    # (user_del looks for the user's OTP tokens).
    for cn in ("otp",):
        dn = _dn(api, ("cn", cn))
        if not ldap.entry_exists(dn):
            ldap.add_entry(ldap.make_entry(dn, objectclass=["top", "nsContainer"], cn=[cn]))

    for a in seed["agreements"]:
        dn = _dn(api, ("cn", a["cn"]), ("cn", "fasagreements"))
        container = _dn(api, ("cn", "fasagreements"))
        if not ldap.entry_exists(container):
            # Every authenticated account may read agreements (freeipa-fas grants this
            # too); group_add_member checks them as the caller.
            ldap.add_entry(ldap.make_entry(
                container, objectclass=["top", "nsContainer"], cn=["fasagreements"],
                aci=['(targetattr = "cn || description || uniqueMember || seeAlso || '
                     'objectclass")(version 3.0;acl "mattersync test: read FAS agreements";'
                     'allow (read, search, compare) userdn = "ldap:///all";)'],
            ))
        if not ldap.entry_exists(dn):
            ldap.add_entry(ldap.make_entry(
                dn,
                objectclass=["top", "groupOfUniqueNames"],
                cn=[a["cn"]],
                description=[a["description"]],
                uniqueMember=[_dn(api, ("uid", s), *users_c) for s in a["signed"]],
                seeAlso=[_dn(api, ("cn", g), *groups_c) for g in a["groups"]],
            ))

    for g in seed["groups"]:
        opts = {"description": g["description"]}
        if g.get("nonposix"):
            opts["nonposix"] = True
        if g.get("fas"):
            opts["fasgroup"] = True
        once(cmd.group_add, g["cn"], **opts)
    for g in seed["groups"]:
        if g.get("users") or g.get("groups"):
            cmd.group_add_member(g["cn"], user=g.get("users", []), group=g.get("groups", []))
        if g.get("managers"):
            cmd.group_add_member_manager(g["cn"], user=g["managers"])

    p = seed["privilege"]
    once(cmd.privilege_add, p["name"], description=p["description"])
    cmd.privilege_add_permission(p["name"], permission=p["permissions"])
    r = seed["role"]
    once(cmd.role_add, r["name"], description=r["description"])
    cmd.role_add_privilege(r["name"], privilege=[p["name"]])
    cmd.role_add_member(r["name"], user=r["users"])

    # A system account for the sync's reads (FreeIPA's documented way: an entry under
    # cn=sysaccounts,cn=etc with a password that does not expire).
    sa = seed["sysaccount"]
    dn = _dn(api, ("uid", sa), ("cn", "sysaccounts"), ("cn", "etc"))
    if not ldap.entry_exists(dn):
        ldap.add_entry(ldap.make_entry(
            dn,
            objectclass=["account", "simplesecurityobject"],
            uid=[sa],
            userPassword=[passwords["sysaccount"]],
            passwordExpirationTime=["20380119031407Z"],
            nsIdleTimeout=["0"],
        ))
    log.info("seed applied: %d users, %d groups", len(seed["users"]), len(seed["groups"]))


def reset(api, seed, passwords):
    ldap = api.Backend.ldap2
    with open(_builtin_path()) as f:
        builtin = json.load(f)
    keep_users = set(builtin["users"]) | {u["uid"] for u in seed["users"]}
    # A user's private group goes with its user.
    keep_groups = set(builtin["groups"]) | {g["cn"] for g in seed["groups"]} | keep_users
    users_c = ("cn", "users"), ("cn", "accounts")
    groups_c = ("cn", "groups"), ("cn", "accounts")
    for uid in _names(api, ldap, users_c, "uid"):
        if uid not in keep_users:
            api.Command.user_del(uid)
    for cn in _names(api, ldap, groups_c, "cn"):
        if cn not in keep_groups:
            try:
                api.Command.group_del(cn)
            except Exception as e:  # a user's private group goes with its user
                log.info("group %s: %s", cn, e)
    # The seed's groups as seeded: settings, members and managers.
    for g in seed["groups"]:
        try:
            api.Command.group_del(g["cn"])
        except Exception:
            pass
    apply(api, seed, passwords)


if __name__ == "__main__":
    import ipa_env

    logging.basicConfig(level=logging.INFO, format="%(asctime)s seed: %(message)s")
    api = ipa_env.bootstrap("server")
    api.Backend.ldap2.connect()
    with open(os.path.join(ipa_env.HERE, "seed.json")) as f:
        seed = json.load(f)
    passwords = read_passwords()
    {"reset": reset}[sys.argv[1]](api, seed, passwords)
