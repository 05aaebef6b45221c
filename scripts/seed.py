#!/usr/bin/env python3
"""The seeded RAS-like world shared by mattersync's real-server tests.

This file is the single definition of the test data. The directory side
(scripts/dirsrv.sh) loads `seed.py ldif`; the Mattermost side reads
`seed.py json`. Both views are derived from the tables below, so they cannot
drift apart. Output is deterministic: no clock, no randomness.

Usage:
    python3 scripts/seed.py ldif   # entries under the base DN (base entry excluded)
    python3 scripts/seed.py json   # the world as JSON (shape documented in main())

What the world contains, and why (each item is something sync must handle):
  * ~64 users with the FreeIPA + fasUser object classes;
    `neil` and `label` are the SOP's contacts and manage several groups.
  * one disabled user (nsAccountLock: TRUE) who is still a member of mm groups;
  * one private user (fasIsPrivate: TRUE);
  * six users with no Mattermost account yet (mattermost: "pending");
  * mm_<area>_<name> FAS groups in areas `rl` and `resf`, POSIX and non-POSIX,
    each with description, ipaUniqueID and memberManager (users, and once a group);
  * nesting: mm_rl_infra contains the non-mm group `infra_oncall`, and
    mm_rl_release contains the mm group mm_rl_release_eng;
  * an empty mm group (mm_rl_sig_altarch);
  * groups sync must ignore: `admins` (non-FAS), `mm_rl_internal` (mm-named but
    non-FAS), `packagers` (FAS but not mm_*);
  * Mattermost teams `rocky-linux` (area rl) and `resf` (area resf), the
    convention channel of every mm group (name after mm_<area>_, `_` -> `-`),
    two private, plus channels linked to no group; Mattermost-only users; a bot.
"""

import json
import sys
import uuid

BASE_DN = "dc=rockylinux,dc=org"
REALM = "ROCKYLINUX.ORG"
ACCOUNTS_DN = "cn=accounts," + BASE_DN
USERS_DN = "cn=users," + ACCOUNTS_DN
GROUPS_DN = "cn=groups," + ACCOUNTS_DN

# Fixed namespace so ipaUniqueID values are UUID-shaped, stable and unique.
_NS = uuid.UUID("6d617474-6572-5379-6e63-000000000000")

UID_BASE = 1466400000  # looks like an IPA id range

# (uid, given name, surname). Order matters: uidNumber follows it.
_PEOPLE = [
    ("neil", "Neil", "Hanlon"),
    ("label", "Louis", "Abel"),
    ("alice", "Alice", "Nakamura"),
    ("bmartin", "Bruno", "Martin"),
    ("cchen", "Chloe", "Chen"),
    ("dkowalski", "Dawid", "Kowalski"),
    ("eokafor", "Emeka", "Okafor"),
    ("fgarcia", "Fernanda", "Garcia"),
    ("gpetrov", "Georgi", "Petrov"),
    ("hsato", "Haruto", "Sato"),
    ("iivanova", "Irina", "Ivanova"),
    ("jsmith", "Jordan", "Smith"),
    ("kmuller", "Klara", "Muller"),
    ("lrossi", "Luca", "Rossi"),
    ("mdubois", "Manon", "Dubois"),
    ("nnguyen", "Ngoc", "Nguyen"),
    ("oandersen", "Ole", "Andersen"),
    ("pmorales", "Paula", "Morales"),
    ("qzhang", "Qiang", "Zhang"),
    ("rpatel", "Ravi", "Patel"),
    ("ssilva", "Sofia", "Silva"),
    ("tvaughn", "Tobias", "Vaughn"),
    ("uahmed", "Usman", "Ahmed"),
    ("vlindqvist", "Vera", "Lindqvist"),
    ("wkim", "Woojin", "Kim"),
    ("xlopez", "Ximena", "Lopez"),
    ("yyilmaz", "Yusuf", "Yilmaz"),
    ("zkovac", "Zora", "Kovac"),
    ("abrown", "Aaron", "Brown"),
    ("bwilson", "Bianca", "Wilson"),
    ("cjohnson", "Carlos", "Johnson"),
    ("dlee", "Dana", "Lee"),
    ("emoreau", "Elodie", "Moreau"),
    ("fschmidt", "Felix", "Schmidt"),
    ("ghernandez", "Gabriela", "Hernandez"),
    ("hnovak", "Hana", "Novak"),
    ("ijensen", "Ida", "Jensen"),
    ("jtanaka", "Jun", "Tanaka"),
    ("kobrien", "Kieran", "OBrien"),
    ("lfischer", "Lena", "Fischer"),
    ("mcosta", "Mateus", "Costa"),
    ("nsingh", "Nisha", "Singh"),
    ("opopescu", "Oana", "Popescu"),
    ("pwalker", "Peter", "Walker"),
    ("rmendes", "Rita", "Mendes"),
    ("sberg", "Sven", "Berg"),
    ("tnagy", "Timea", "Nagy"),
    ("vromero", "Victor", "Romero"),
    ("wzhou", "Wei", "Zhou"),
    ("ykato", "Yui", "Kato"),
    ("amensah", "Ama", "Mensah"),
    ("bfarouk", "Basma", "Farouk"),
    ("cwright", "Colin", "Wright"),
    ("dsorensen", "Dagny", "Sorensen"),
    ("eramos", "Enzo", "Ramos"),
    ("fmoretti", "Flavia", "Moretti"),
    ("gwhite", "Grace", "White"),
    ("hkhan", "Hamza", "Khan"),
    ("ibaker", "Isla", "Baker"),
    ("jcarter", "Jonas", "Carter"),
    ("kdiaz", "Kai", "Diaz"),
    ("lhall", "Lucia", "Hall"),
    ("mevans", "Milo", "Evans"),
    ("nreyes", "Nadia", "Reyes"),
]

DISABLED = {"tvaughn"}
PRIVATE = {"pmorales"}
# Directory users that have no Mattermost account yet.
PENDING = {"xlopez", "gwhite", "hkhan", "ibaker", "jcarter", "kdiaz"}

_TIMEZONES = ["UTC", "America/New_York", "Europe/Berlin", "Asia/Tokyo",
              "America/Sao_Paulo", "Europe/London", "Asia/Kolkata"]
_LOCALES = ["en-US", "de-DE", "ja-JP", "pt-BR", "en-GB", "fr-FR", "es-ES"]
_MAIL_DOMAINS = ["example.org", "example.com", "example.net"]

# Groups. Keys:
#   cn, description, posix, fas, members (uids), member_groups (cns),
#   managers (uids), manager_groups (cns)
# gid_number is assigned below for POSIX groups, in this order.
_GROUPS = [
    # --- helper / internal groups (not synced) ---
    dict(cn="admins", description="Account administrators group",
         posix=True, fas=False,
         members=["neil", "label", "alice"], member_groups=[],
         managers=[], manager_groups=[]),
    dict(cn="infra_oncall", description="Infrastructure on-call rotation",
         posix=True, fas=True,
         members=["gpetrov", "hsato", "oandersen", "wkim"], member_groups=[],
         managers=["neil"], manager_groups=[]),
    dict(cn="packagers", description="Package maintainers (FAS, not a chat group)",
         posix=True, fas=True,
         members=["bmartin", "cchen", "lrossi", "qzhang", "sberg"], member_groups=[],
         managers=["label"], manager_groups=[]),
    dict(cn="mm_rl_internal", description="Internal staff chat (not a FAS group: must be ignored)",
         posix=False, fas=False,
         members=["neil", "label"], member_groups=[],
         managers=["neil"], manager_groups=[]),
    # --- area rl (team rocky-linux) ---
    dict(cn="mm_rl_release_eng", description="Release engineering",
         posix=True, fas=True,
         members=["label", "bmartin", "cchen", "lrossi", "kdiaz"], member_groups=[],
         managers=["label"], manager_groups=[]),
    dict(cn="mm_rl_infra", description="Rocky Linux infrastructure team",
         posix=True, fas=True,
         members=["neil", "alice", "dkowalski", "eokafor", "fgarcia", "nnguyen",
                  "rpatel", "xlopez"],
         member_groups=["infra_oncall"],
         managers=["neil", "alice"], manager_groups=[]),
    dict(cn="mm_rl_docs", description="Documentation SIG",
         posix=False, fas=True,
         members=["mdubois", "iivanova", "ssilva", "tvaughn", "emoreau", "lfischer",
                  "opopescu", "gwhite"],
         member_groups=[],
         managers=["label", "mdubois"], manager_groups=[]),
    dict(cn="mm_rl_testing", description="Testing team",
         posix=True, fas=True,
         members=["jsmith", "kmuller", "pmorales", "tvaughn", "uahmed", "vlindqvist",
                  "abrown", "bwilson", "cjohnson", "hkhan"],
         member_groups=[],
         managers=["label", "jsmith"], manager_groups=[]),
    dict(cn="mm_rl_release", description="Release coordination",
         posix=True, fas=True,
         members=["neil", "jsmith", "dlee"], member_groups=["mm_rl_release_eng"],
         managers=["label", "neil"], manager_groups=[]),
    dict(cn="mm_rl_security", description="Security response team",
         posix=False, fas=True,
         members=["neil", "alice", "fschmidt", "ghernandez"], member_groups=[],
         managers=["neil"], manager_groups=[]),
    dict(cn="mm_rl_web", description="Websites and web content",
         posix=False, fas=True,
         members=["yyilmaz", "zkovac", "hnovak", "ijensen", "jtanaka", "ibaker"],
         member_groups=[],
         managers=["label", "zkovac"], manager_groups=[]),
    dict(cn="mm_rl_kernel", description="Kernel SIG",
         posix=True, fas=True,
         members=["kobrien", "mcosta", "nsingh", "pwalker", "rmendes", "qzhang"],
         member_groups=[],
         managers=["kobrien"], manager_groups=[]),
    dict(cn="mm_rl_sig_cloud", description="Cloud SIG",
         posix=False, fas=True,
         members=["sberg", "tnagy", "vromero", "wzhou", "ykato", "neil", "jcarter"],
         member_groups=[],
         managers=["neil", "sberg"], manager_groups=[]),
    dict(cn="mm_rl_sig_altarch", description="AltArch SIG (no members yet)",
         posix=True, fas=True,
         members=[], member_groups=[],
         managers=["label"], manager_groups=[]),
    # --- area resf (team resf) ---
    dict(cn="mm_resf_board", description="RESF board of directors",
         posix=False, fas=True,
         members=["neil", "label", "amensah", "bfarouk"], member_groups=[],
         managers=["neil"], manager_groups=[]),
    dict(cn="mm_resf_marketing", description="RESF marketing",
         posix=True, fas=True,
         members=["cwright", "dsorensen", "eramos", "fmoretti", "lhall"],
         member_groups=[],
         managers=["label", "cwright"], manager_groups=[]),
    dict(cn="mm_resf_legal", description="RESF legal",
         posix=False, fas=True,
         members=["amensah", "mevans", "nreyes"], member_groups=[],
         managers=["neil"], manager_groups=[]),
    dict(cn="mm_resf_events", description="RESF events and conferences",
         posix=True, fas=True,
         members=["lhall", "mevans", "eramos", "xlopez", "gwhite"], member_groups=[],
         managers=["label"], manager_groups=["mm_resf_marketing"]),
    dict(cn="mm_resf_community", description="RESF community managers",
         posix=False, fas=True,
         members=["label", "fmoretti", "dsorensen", "ykato", "nreyes"],
         member_groups=[],
         managers=["label"], manager_groups=[]),
]

GID_BASE = 1466500000

TEAMS = [
    {"name": "rocky-linux", "display_name": "Rocky Linux", "area": "rl"},
    {"name": "resf", "display_name": "RESF", "area": "resf"},
]

# Convention channels that are private.
_PRIVATE_CHANNELS = {"mm_rl_security", "mm_resf_board", "mm_rl_internal"}

# Channels not linked to any group (sync must leave them alone).
_UNLINKED_CHANNELS = [
    {"team": "rocky-linux", "name": "watercooler", "display_name": "Watercooler", "type": "O"},
    {"team": "resf", "name": "announcements", "display_name": "Announcements", "type": "O"},
]

MATTERMOST_ONLY_USERS = [
    {"username": "guest-speaker", "email": "guest-speaker@example.com"},
    {"username": "old-timer", "email": "old-timer@example.net"},
    {"username": "contractor", "email": "contractor@example.com"},
]

BOTS = [
    {"username": "release-bot", "display_name": "Release Bot"},
]


def _unique_id(kind, name):
    return str(uuid.uuid5(_NS, kind + ":" + name))


def users():
    out = []
    for i, (uid, given, sn) in enumerate(_PEOPLE):
        out.append({
            "uid": uid,
            "given_name": given,
            "surname": sn,
            "email": "%s@%s" % (uid, _MAIL_DOMAINS[i % len(_MAIL_DOMAINS)]),
            "disabled": uid in DISABLED,
            "private": uid in PRIVATE,
            "mattermost": "pending" if uid in PENDING else "account",
            # LDIF-only details (stripped from JSON)
            "_index": i,
        })
    return out


def groups():
    out = []
    next_gid = GID_BASE
    for g in _GROUPS:
        gid = None
        if g["posix"]:
            gid = next_gid
            next_gid += 1
        out.append({
            "cn": g["cn"],
            "description": g["description"],
            "posix": g["posix"],
            "fas": g["fas"],
            "gid_number": gid,
            "ipa_unique_id": _unique_id("group", g["cn"]),
            "members": list(g["members"]),
            "member_groups": list(g["member_groups"]),
            "managers": list(g["managers"]),
            "manager_groups": list(g["manager_groups"]),
        })
    return out


def _area_and_rest(cn):
    """('rl', 'sig_cloud') for 'mm_rl_sig_cloud'; None if not an mm group."""
    parts = cn.split("_", 2)
    if len(parts) != 3 or parts[0] != "mm" or not parts[2]:
        return None
    return parts[1], parts[2]


def channels():
    team_by_area = {t["area"]: t["name"] for t in TEAMS}
    out = []
    for g in _GROUPS:
        ar = _area_and_rest(g["cn"])
        if ar is None:
            continue
        area, rest = ar
        out.append({
            "team": team_by_area[area],
            "name": rest.replace("_", "-"),
            "display_name": g["description"].split(" (")[0],
            "type": "P" if g["cn"] in _PRIVATE_CHANNELS else "O",
        })
    out.extend(dict(c) for c in _UNLINKED_CHANNELS)
    return out


def _check(us, gs):
    uids = {u["uid"] for u in us}
    cns = [g["cn"] for g in gs]
    assert len(uids) == len(us), "duplicate uid"
    assert len(set(cns)) == len(cns), "duplicate group"
    for g in gs:
        for m in g["members"] + g["managers"]:
            assert m in uids, "%s: unknown user %s" % (g["cn"], m)
        for m in g["member_groups"] + g["manager_groups"]:
            assert m in cns, "%s: unknown group %s" % (g["cn"], m)
    assert {"neil", "label"} <= uids


def world():
    us = users()
    gs = groups()
    _check(us, gs)
    return {
        "base_dn": BASE_DN,
        "users": [{k: v for k, v in u.items() if not k.startswith("_")} for u in us],
        "groups": gs,
        "teams": [dict(t) for t in TEAMS],
        "channels": channels(),
        "mattermost_only_users": [dict(u) for u in MATTERMOST_ONLY_USERS],
        "bots": [dict(b) for b in BOTS],
    }


# ---------------------------------------------------------------- LDIF

def _user_dn(uid):
    return "uid=%s,%s" % (uid, USERS_DN)


def _group_dn(cn):
    return "cn=%s,%s" % (cn, GROUPS_DN)


def _entry(dn, attrs):
    lines = ["dn: " + dn]
    for name, value in attrs:
        lines.append("%s: %s" % (name, value))
    return "\n".join(lines) + "\n"


def _user_entry(u):
    i = u["_index"]
    uid = u["uid"]
    number = UID_BASE + i
    full = "%s %s" % (u["given_name"], u["surname"])
    attrs = [("objectClass", oc) for oc in (
        "top", "person", "organizationalperson", "inetorgperson", "inetuser",
        "posixaccount", "krbprincipalaux", "ipaobject", "ipasshuser", "fasuser")]
    attrs += [
        ("uid", uid),
        ("givenName", u["given_name"]),
        ("sn", u["surname"]),
        ("cn", full),
        ("displayName", full),
        ("initials", u["given_name"][0] + u["surname"][0]),
        ("gecos", full),
        ("mail", u["email"]),
        ("uidNumber", str(number)),
        ("gidNumber", str(number)),
        ("homeDirectory", "/home/" + uid),
        ("loginShell", "/bin/bash"),
        ("krbPrincipalName", "%s@%s" % (uid, REALM)),
        ("krbCanonicalName", "%s@%s" % (uid, REALM)),
        ("ipaUniqueID", _unique_id("user", uid)),
        ("fasTimezone", _TIMEZONES[i % len(_TIMEZONES)]),
        ("fasLocale", _LOCALES[i % len(_LOCALES)]),
        # Fixed creation times in 2021, derived from the position in _PEOPLE.
        ("fasCreationTime", "2021%02d%02d120000Z" % (1 + (i // 28) % 12, 1 + i % 28)),
    ]
    if i % 3 == 0:
        attrs.append(("fasIRCNick", "irc:/" + uid))
    if i % 4 == 1:
        attrs.append(("fasGitHubUsername", uid + "-gh"))
    if uid in PRIVATE:
        attrs.append(("fasIsPrivate", "TRUE"))
    if uid in DISABLED:
        attrs.append(("nsAccountLock", "TRUE"))
    return _entry(_user_dn(uid), attrs)


def _group_entry(g):
    ocs = ["top", "groupofnames", "nestedgroup", "ipausergroup", "ipaobject"]
    if g["posix"]:
        ocs.append("posixgroup")
    if g["fas"]:
        ocs.append("fasgroup")
    attrs = [("objectClass", oc) for oc in ocs]
    attrs += [("cn", g["cn"]), ("description", g["description"]),
              ("ipaUniqueID", g["ipa_unique_id"])]
    if g["posix"]:
        attrs.append(("gidNumber", str(g["gid_number"])))
    for m in g["members"]:
        attrs.append(("member", _user_dn(m)))
    for m in g["member_groups"]:
        attrs.append(("member", _group_dn(m)))
    for m in g["managers"]:
        attrs.append(("memberManager", _user_dn(m)))
    for m in g["manager_groups"]:
        attrs.append(("memberManager", _group_dn(m)))
    if g["fas"] and g["cn"].startswith("mm_"):
        attrs.append(("fasURL", "https://wiki.rockylinux.org/team/" + g["cn"][3:]))
    return _entry(_group_dn(g["cn"]), attrs)


def _groups_children_first(gs):
    """Nested groups are added before the groups that contain them, so the
    memberOf plugin computes nested memberships while the seed loads."""
    by_cn = {g["cn"]: g for g in gs}
    done, out = set(), []

    def visit(cn, stack=()):
        if cn in done:
            return
        assert cn not in stack, "group cycle at " + cn
        for child in by_cn[cn]["member_groups"]:
            visit(child, stack + (cn,))
        done.add(cn)
        out.append(by_cn[cn])

    for g in gs:
        visit(g["cn"])
    return out


def ldif():
    us = users()
    gs = groups()
    _check(us, gs)
    parts = [
        "# mattersync test seed (generated by scripts/seed.py; do not edit)\n"
        "# Base entry %s is created by the server and not included.\n" % BASE_DN,
        _entry(ACCOUNTS_DN, [("objectClass", "top"), ("objectClass", "nsContainer"),
                             ("cn", "accounts")]),
        _entry(USERS_DN, [("objectClass", "top"), ("objectClass", "nsContainer"),
                          ("cn", "users")]),
        _entry(GROUPS_DN, [("objectClass", "top"), ("objectClass", "nsContainer"),
                           ("cn", "groups")]),
    ]
    parts += [_user_entry(u) for u in us]
    parts += [_group_entry(g) for g in _groups_children_first(gs)]
    return "\n".join(parts)


def main(argv):
    if len(argv) != 2 or argv[1] not in ("ldif", "json"):
        sys.stderr.write("usage: seed.py ldif|json\n")
        return 2
    if argv[1] == "ldif":
        sys.stdout.write(ldif())
    else:
        json.dump(world(), sys.stdout, indent=2, sort_keys=False)
        sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
