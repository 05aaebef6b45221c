"""The test server's own minimal `fasgroup` plugin: what freeipa-fas does that mattersync
depends on, written by the project from its observable behaviour (freeipa-fas itself is on
no package registry):

- `group_add` / `group_mod` take `fasgroup=True`, which adds objectClass `fasGroup`; a
  second `group_mod fasgroup=True` changes nothing, so FreeIPA answers EmptyModlist (4202);
- `group_show` (and `group_find`) answer `"fasgroup": true` for such a group; `group_mod`'s
  and `group_add`'s answers carry no `fasgroup` key;
- `group_add_member` refuses a user who has not signed an agreement the group requires,
  with the per-member failure `missing user agreement: <agreement>`.

Agreements here are `cn=<name>,cn=fasagreements,<suffix>` entries (`groupOfUniqueNames`):
`uniqueMember` lists the users who signed, `seeAlso` the groups that require it.

Installed into FreeIPA's `ipaserver/plugins/` by scripts/freeipa.sh.
"""

from ipalib import Bool, errors
from ipapython.dn import DN
from ipaserver.plugins.group import (
    group,
    group_add,
    group_add_member,
    group_find,
    group_mod,
    group_show,
)

FAS_CLASS = "fasgroup"

group.takes_params += (
    Bool(
        "fasgroup?",
        cli_name="fasgroup",
        label="FAS group",
        doc="Make it a FAS (community) group",
        flags={"virtual_attribute", "no_search"},
    ),
)


def _classes(entry):
    return {c.lower() for c in entry.get("objectclass", [])}


def _add_pre(self, ldap, dn, entry_attrs, attrs_list, *keys, **options):
    entry_attrs.pop("fasgroup", None)
    if options.get("fasgroup"):
        entry_attrs["objectclass"].append(FAS_CLASS)
    return dn


def _mod_pre(self, ldap, dn, entry_attrs, attrs_list, *keys, **options):
    entry_attrs.pop("fasgroup", None)
    if not options.get("fasgroup"):
        return dn
    if "objectclass" in entry_attrs:
        classes = list(entry_attrs["objectclass"])
    else:
        try:
            old = ldap.get_entry(dn, ["objectclass"])
        except errors.NotFound:
            raise self.obj.handle_not_found(*keys)
        classes = list(old["objectclass"])
    if FAS_CLASS not in {c.lower() for c in classes}:
        classes.append(FAS_CLASS)
    entry_attrs["objectclass"] = classes
    return dn


def _show_post(self, ldap, dn, entry_attrs, *keys, **options):
    classes = _classes(entry_attrs)
    if not classes:
        classes = _classes(ldap.get_entry(dn, ["objectclass"]))
    entry_attrs["fasgroup"] = FAS_CLASS in classes
    return dn


def _find_post(self, ldap, entries, truncated, *args, **options):
    for entry in entries:
        entry["fasgroup"] = FAS_CLASS in _classes(
            ldap.get_entry(entry.dn, ["objectclass"])
        )
    return truncated


def _agreements_for(ldap, group_dn):
    base = DN(("cn", "fasagreements"), ldap.api.env.basedn)
    try:
        found, _ = ldap.find_entries(
            filter=ldap.make_filter({"seeAlso": str(group_dn)}, rules=ldap.MATCH_ALL),
            attrs_list=["cn", "uniqueMember"],
            base_dn=base,
            scope=ldap.SCOPE_ONELEVEL,
        )
    except errors.NotFound:
        return []
    return found


def _add_member_pre(self, ldap, dn, found, not_found, *keys, **options):
    users = found.get("member", {}).get("user", [])
    if not users:
        return dn
    agreements = _agreements_for(ldap, dn)
    if not agreements:
        return dn
    keep = []
    for user_dn in users:
        missing = [
            a.single_value["cn"]
            for a in agreements
            if user_dn not in a.get("uniqueMember", [])
        ]
        if missing:
            name = user_dn[0].value
            not_found["member"]["user"].append(
                (name, "missing user agreement: %s" % ", ".join(sorted(missing)))
            )
        else:
            keep.append(user_dn)
    found["member"]["user"] = keep
    return dn


group_add.register_pre_callback(_add_pre)
group_mod.register_pre_callback(_mod_pre)
group_show.register_post_callback(_show_post)
group_find.register_post_callback(_find_post)
group_add_member.register_pre_callback(_add_member_pre)
