#!/usr/bin/env python3
"""RAS-like benchmark worlds for mattersync, at three sizes (stdlib only, deterministic).

    python3 scripts/bench/generate.py SIZE OUTDIR        SIZE = S | M | L

writes into OUTDIR:
  directory.ldif   the whole 389-ds database (suffix entry included) for an offline
                   `dsctl ... ldif2db` import: users under cn=users,cn=accounts, groups under
                   cn=groups,cn=accounts, with the FreeIPA/FAS object classes of scripts/seed.py
  mattermost.jsonl a Mattermost bulk-import file: one team per area, every linked channel,
                   one account per directory user that has one (no memberships at all)
  mattermost_members.jsonl  a second import that adds the desired memberships (warm state)
  links.toml       the [[link]] tables beyond the naming convention (auto_link gives one per
                   group), so that links = 2 x groups
  expected.json    the state a full reconcile must reach: usernames per team and per channel,
                   the channels and teams that links name, and counts
  mass_add.ldif    a mass change: LDAP modifies adding members to groups, and
  mass_del.ldif    the modifies that undo it
  expected_mass.json  the state after the mass change
  stats.json       shape figures (group-size distribution, nesting, pending, disabled)

Shapes (every number below is per size, see SIZES):
  * users belong to a home area (85 % of a group's members come from its area's users),
    picked with a skew towards a core of active people;
  * group sizes follow a power law over the group's rank (size ~ A / rank), at least 2;
  * 8 % of mm groups nest one or two plain (non-mm, non-FAS) groups, 3 % nest a smaller mm
    group; each mm group has one memberManager;
  * 8 % of users have no Mattermost account yet (pending), 4 % are disabled in the directory
    (nsAccountLock), 1 % have a deactivated Mattermost account;
  * links: each group links to its convention channel (auto_link) and to one more target:
    every 10th group to a team (another area's), half of the rest to an area "hub"
    channel shared by many groups, the others to a neighbouring group's channel;
  * 20 % of channels are private.
"""
import hashlib
import json
import os
import random
import sys
import uuid

SUFFIX = "dc=rockylinux,dc=org"
ACCOUNTS = "cn=accounts," + SUFFIX
USERS = "cn=users," + ACCOUNTS
GROUPS = "cn=groups," + ACCOUNTS
NS = uuid.UUID("6d617474-6572-5379-6e63-62656e636800")

# users, mm groups, power-law scale (largest group as a share of users), mass change adds
SIZES = {
    "S": dict(users=1000, groups=50, top_share=0.12, mass=1000, seed=1),
    "M": dict(users=20000, groups=1000, top_share=0.04, mass=10000, seed=2),
    "L": dict(users=50000, groups=5000, top_share=0.02, mass=10000, seed=3),
}
AREAS = ["rl", "resf", "sig", "infra"]
TEAM_OF = {a: "bench-" + a for a in AREAS}
WORDS = ["infra", "release", "docs", "testing", "security", "packaging", "kernel", "cloud",
         "altarch", "web", "design", "marketing", "events", "translations", "qa", "build",
         "mirror", "forums", "wiki", "hpc", "edge", "ai", "storage", "network"]
FIRST = ["alex", "sam", "kim", "lee", "max", "ana", "joe", "eva", "ian", "zoe", "tom", "mia",
         "raj", "li", "omar", "ines", "noah", "ola", "ravi", "yuki"]
LAST = ["smith", "chen", "garcia", "khan", "muller", "rossi", "sato", "silva", "nowak",
        "dubois", "ivanov", "kim", "patel", "lopez", "okafor", "berg", "costa", "hansen"]


def uid_dn(uid):
    return "uid=%s,%s" % (uid, USERS)


def group_dn(cn):
    return "cn=%s,%s" % (cn, GROUPS)


def unique_id(kind, name):
    return str(uuid.uuid5(NS, kind + ":" + name))


def build(size):
    p = SIZES[size]
    rnd = random.Random(p["seed"])
    n, g = p["users"], p["groups"]

    # ---- users
    users = []
    for i in range(n):
        uid = "%s%s%d" % (FIRST[i % len(FIRST)][0], LAST[(i // len(FIRST)) % len(LAST)], i)
        r = rnd.random()
        users.append({
            "uid": uid,
            "area": AREAS[min(len(AREAS) - 1, int(rnd.random() ** 1.6 * len(AREAS)))],
            "disabled": r < 0.04,
            "pending": 0.04 <= r < 0.12,
            "mm_inactive": 0.12 <= r < 0.13,
        })
    by_area = {a: [i for i, u in enumerate(users) if u["area"] == a] for a in AREAS}
    everyone = list(range(n))

    def pick(area, k, exclude=()):
        out = set()
        pool_a, attempts = by_area[area], 0
        k = min(k, n - len(exclude))
        while len(out) < k and attempts < 20 * k + 100:
            attempts += 1
            pool = pool_a if rnd.random() < 0.85 and pool_a else everyone
            i = pool[int(len(pool) * rnd.random() ** 1.5)]
            if i not in exclude:
                out.add(i)
        return out

    # ---- groups: mm groups (power-law sizes over a random rank), plain nested groups
    ranks = list(range(1, g + 1))
    rnd.shuffle(ranks)
    top = p["top_share"] * n
    groups = []
    for i in range(g):
        area = AREAS[i % len(AREAS)]
        word = WORDS[(i // len(AREAS)) % len(WORDS)]
        name = "%s_%d" % (word, i)
        size = max(2, int(top / ranks[i] + rnd.random() * 3))
        members = pick(area, size)
        groups.append({
            "cn": "mm_%s_%s" % (area, name), "area": area, "channel": name.replace("_", "-"),
            "members": members, "nested": [], "manager": min(members) if members else None,
            "rank": ranks[i],
        })
    plain = []
    for k in range(max(1, g * 5 // 100)):
        plain.append({"cn": "team_%d" % k, "members": pick(AREAS[k % len(AREAS)], 3 + int(rnd.random() * 28)),
                      "nested": []})
    plain_by_cn = {x["cn"]: x for x in plain}
    for i, grp in enumerate(groups):
        r = rnd.random()
        if r < 0.08:
            grp["nested"] = sorted({plain[int(rnd.random() * len(plain))]["cn"]
                                    for _ in range(1 + int(rnd.random() * 2))})
        elif r < 0.11:
            # a smaller mm group (higher rank) of the same area: no cycles
            cands = [x for x in groups if x["area"] == grp["area"] and x["rank"] > grp["rank"]]
            if cands:
                grp["nested"] = [cands[int(rnd.random() * len(cands))]["cn"]]
    by_cn = {x["cn"]: x for x in groups}
    by_cn.update(plain_by_cn)

    def effective(cn, seen=None):
        seen = seen if seen is not None else set()
        if cn in seen:
            return set()
        seen.add(cn)
        grp = by_cn[cn]
        out = {i for i in grp["members"] if not users[i]["disabled"]}
        for c in grp["nested"]:
            out |= effective(c, seen)
        return out

    # ---- links
    hubs = max(2, g // 40)
    links = []  # (group cn, team, channel or None, source)
    channels = {}  # path -> private
    for i, grp in enumerate(groups):
        team = TEAM_OF[grp["area"]]
        links.append((grp["cn"], team, grp["channel"], "convention"))
        channels["%s/%s" % (team, grp["channel"])] = i % 5 == 0
    area_groups = {a: [x for x in groups if x["area"] == a] for a in AREAS}
    for i, grp in enumerate(groups):
        team = TEAM_OF[grp["area"]]
        if i % 10 == 0:
            other = AREAS[(i // 10 + 1) % len(AREAS)]
            links.append((grp["cn"], TEAM_OF[other], None, "file"))
        elif i % 10 <= 5:
            hub = "hub-%d" % (i % hubs)
            links.append((grp["cn"], team, hub, "file"))
            channels.setdefault("%s/%s" % (team, hub), (i % hubs) % 5 == 4)
        else:
            ag = area_groups[grp["area"]]
            nb = ag[(ag.index(grp) + 1) % len(ag)]
            links.append((grp["cn"], team, nb["channel"], "file"))

    def desired(effective_of):
        teams, chans = {}, {}
        for cn, team, chan, _ in links:
            names = {users[i]["uid"] for i in effective_of(cn)
                     if not users[i]["pending"] and not users[i]["mm_inactive"]}
            teams.setdefault(team, set()).update(names)
            if chan is not None:
                chans.setdefault("%s/%s" % (team, chan), set()).update(names)
        return teams, chans

    teams, chans = desired(effective)

    # ---- the mass change: add users to groups until that many new memberships
    mass_adds = {}  # cn -> set of user indexes
    before = sum(len(v) for v in chans.values()) + sum(len(v) for v in teams.values())
    linked_channels = {}
    for cn, team, chan, _ in links:
        linked_channels.setdefault(cn, []).append((team, chan))
    order = sorted(groups, key=lambda x: x["rank"])
    target, added, k = p["mass"], 0, 0
    while added < target and k < 100 * len(order):
        grp = order[k % len(order)]
        k += 1
        eff = effective(grp["cn"])
        cands = pick(grp["area"], 12, exclude=grp["members"] | mass_adds.get(grp["cn"], set()))
        cands = [i for i in cands if not (users[i]["disabled"] or users[i]["pending"]
                                           or users[i]["mm_inactive"]) and i not in eff]
        for i in cands:
            if added >= target:
                break
            mass_adds.setdefault(grp["cn"], set()).add(i)
            new = 0
            for team, chan in linked_channels[grp["cn"]]:
                if chan and users[i]["uid"] not in chans["%s/%s" % (team, chan)]:
                    new += 1
            added += new

    def effective_after(cn, seen=None):
        seen = seen if seen is not None else set()
        if cn in seen:
            return set()
        seen.add(cn)
        grp = by_cn[cn]
        out = {i for i in grp["members"] | mass_adds.get(cn, set()) if not users[i]["disabled"]}
        for c in grp["nested"]:
            out |= effective_after(c, seen)
        return out

    teams2, chans2 = desired(effective_after)
    after = sum(len(v) for v in chans2.values()) + sum(len(v) for v in teams2.values())
    return dict(p=p, users=users, groups=groups, plain=plain, links=links, channels=channels,
                teams=teams, chans=chans, teams2=teams2, chans2=chans2, mass_adds=mass_adds,
                mass_new=after - before)


def ldif(w):
    out = []

    def entry(dn, attrs):
        out.append("dn: " + dn + "\n" + "".join("%s: %s\n" % kv for kv in attrs))

    entry(SUFFIX, [("objectClass", "top"), ("objectClass", "domain"), ("dc", "rockylinux")])
    for dn, cn in ((ACCOUNTS, "accounts"), (USERS, "users"), (GROUPS, "groups")):
        entry(dn, [("objectClass", "top"), ("objectClass", "nsContainer"), ("cn", cn)])
    for i, u in enumerate(w["users"]):
        uid = u["uid"]
        attrs = [("objectClass", oc) for oc in (
            "top", "person", "organizationalperson", "inetorgperson", "inetuser",
            "posixaccount", "krbprincipalaux", "ipaobject", "ipasshuser", "fasuser")]
        attrs += [("uid", uid), ("givenName", uid[:1].upper()), ("sn", uid[1:]),
                  ("cn", uid), ("displayName", uid), ("mail", uid + "@bench.rockylinux.test"),
                  ("uidNumber", str(1466500000 + i)), ("gidNumber", str(1466500000 + i)),
                  ("homeDirectory", "/home/" + uid), ("loginShell", "/bin/bash"),
                  ("krbPrincipalName", uid + "@ROCKYLINUX.ORG"),
                  ("ipaUniqueID", unique_id("user", uid)),
                  ("fasTimezone", "UTC"), ("fasLocale", "en-US"),
                  ("fasCreationTime", "2022%02d%02d120000Z" % (1 + i % 12, 1 + i % 28))]
        if u["disabled"]:
            attrs.append(("nsAccountLock", "TRUE"))
        entry(uid_dn(uid), attrs)
    users = w["users"]
    for x in w["plain"]:
        attrs = [("objectClass", oc) for oc in ("top", "groupofnames", "nestedgroup",
                                                "ipausergroup", "ipaobject")]
        attrs += [("cn", x["cn"]), ("description", "plain group " + x["cn"]),
                  ("ipaUniqueID", unique_id("group", x["cn"]))]
        attrs += [("member", uid_dn(users[i]["uid"])) for i in sorted(x["members"])]
        entry(group_dn(x["cn"]), attrs)
    for grp in sorted(w["groups"], key=lambda x: -x["rank"]):  # nested (smaller) first
        attrs = [("objectClass", oc) for oc in ("top", "groupofnames", "nestedgroup",
                                                "ipausergroup", "ipaobject", "fasgroup")]
        attrs += [("cn", grp["cn"]), ("description", "Mattermost group " + grp["cn"]),
                  ("ipaUniqueID", unique_id("group", grp["cn"]))]
        attrs += [("member", uid_dn(users[i]["uid"])) for i in sorted(grp["members"])]
        attrs += [("member", group_dn(c)) for c in grp["nested"]]
        if grp["manager"] is not None:
            attrs.append(("memberManager", uid_dn(users[grp["manager"]]["uid"])))
        entry(group_dn(grp["cn"]), attrs)
    return "\n".join(out)


def mass_ldif(w, op):
    out = []
    for cn in sorted(w["mass_adds"]):
        vals = "".join("member: %s\n" % uid_dn(w["users"][i]["uid"])
                       for i in sorted(w["mass_adds"][cn]))
        out.append("dn: %s\nchangetype: modify\n%s: member\n%s" % (group_dn(cn), op, vals))
    return "\n".join(out)


def jsonl(w):
    lines = [{"type": "version", "version": 1}]
    for a in AREAS:
        lines.append({"type": "team", "team": {"name": TEAM_OF[a], "display_name": "Bench " + a,
                                               "type": "O"}})
    for path in sorted(w["channels"]):
        team, name = path.split("/")
        lines.append({"type": "channel", "channel": {
            "team": team, "name": name, "display_name": name,
            "type": "P" if w["channels"][path] else "O"}})
    for u in w["users"]:
        if u["pending"]:
            continue
        d = {"username": u["uid"], "email": u["uid"] + "@bench.rockylinux.test",
             "auth_service": "gitlab", "auth_data": u["uid"], "first_name": u["uid"][:1].upper(),
             "last_name": u["uid"][1:]}
        if u["mm_inactive"]:
            d["delete_at"] = 1700000000000
        lines.append({"type": "user", "user": d})
    return "".join(json.dumps(x, sort_keys=True) + "\n" for x in lines)


def members_jsonl(w):
    """The desired memberships as a second import (for the warm template): user lines
    repeating the account fields, with their teams and channels."""
    per_user = {}
    for team, names in w["teams"].items():
        for n in names:
            per_user.setdefault(n, {}).setdefault(team, [])
    for path, names in w["chans"].items():
        team, chan = path.split("/")
        for n in names:
            per_user.setdefault(n, {}).setdefault(team, []).append(chan)
    lines = [{"type": "version", "version": 1}]
    for n in sorted(per_user):
        teams = [{"name": t, "channels": [{"name": c} for c in sorted(cs)]}
                 for t, cs in sorted(per_user[n].items())]
        lines.append({"type": "user", "user": {
            "username": n, "email": n + "@bench.rockylinux.test", "auth_service": "gitlab",
            "auth_data": n, "first_name": n[:1].upper(), "last_name": n[1:], "teams": teams}})
    return "".join(json.dumps(x, sort_keys=True) + "\n" for x in lines)


def links_toml(w):
    out = ["# [[link]] tables beyond the naming convention (generated)\n"]
    for cn, team, chan, src in w["links"]:
        if src != "file":
            continue
        if chan is None:
            out.append('[[link]]\ngroup = "%s"\nteam = "%s"\n' % (cn, team))
        else:
            out.append('[[link]]\ngroup = "%s"\nchannel = "%s/%s"\n' % (cn, team, chan))
    return "\n".join(out)


def expected(teams, chans, w):
    return {
        "teams": {t: sorted(v) for t, v in sorted(teams.items())},
        "channels": {c: sorted(v) for c, v in sorted(chans.items())},
        "team_names": sorted(set(TEAM_OF.values())),
        "channel_paths": sorted(w["channels"]),
        "usernames": sorted(u["uid"] for u in w["users"] if not u["disabled"]),
        "memberships": sum(len(v) for v in teams.values()) + sum(len(v) for v in chans.values()),
        "channel_memberships": sum(len(v) for v in chans.values()),
        "team_memberships": sum(len(v) for v in teams.values()),
    }


def stats(w):
    sizes = sorted((len(x["members"]) for x in w["groups"]), reverse=True)
    users = w["users"]
    return {
        "size": [k for k, v in SIZES.items() if v is w["p"]][0],
        "users": len(users), "groups": len(w["groups"]), "plain_groups": len(w["plain"]),
        "links": len(w["links"]), "channels": len(w["channels"]), "teams": len(AREAS),
        "pending": sum(u["pending"] for u in users), "disabled": sum(u["disabled"] for u in users),
        "mm_inactive": sum(u["mm_inactive"] for u in users),
        "nesting_groups": sum(1 for x in w["groups"] if x["nested"]),
        "group_size_max": sizes[0], "group_size_median": sizes[len(sizes) // 2],
        "group_size_p90": sizes[len(sizes) // 10], "group_members_total": sum(sizes),
        "desired_channel_memberships": sum(len(v) for v in w["chans"].values()),
        "desired_team_memberships": sum(len(v) for v in w["teams"].values()),
        "mass_change_new_memberships": w["mass_new"],
        "mass_change_ldap_values": sum(len(v) for v in w["mass_adds"].values()),
    }


def main(argv):
    if len(argv) != 3 or argv[1] not in SIZES:
        sys.stderr.write("usage: generate.py S|M|L OUTDIR\n")
        return 2
    size, outdir = argv[1], argv[2]
    os.makedirs(outdir, exist_ok=True)
    w = build(size)
    files = {
        "directory.ldif": ldif(w),
        "mattermost.jsonl": jsonl(w),
        "mattermost_members.jsonl": members_jsonl(w),
        "links.toml": links_toml(w),
        "expected.json": json.dumps(expected(w["teams"], w["chans"], w), indent=0, sort_keys=True),
        "expected_mass.json": json.dumps(expected(w["teams2"], w["chans2"], w), indent=0,
                                         sort_keys=True),
        "mass_add.ldif": mass_ldif(w, "add"),
        "mass_del.ldif": mass_ldif(w, "delete"),
        "stats.json": json.dumps(stats(w), indent=1, sort_keys=True),
    }
    h = hashlib.sha256()
    for name in sorted(files):
        with open(os.path.join(outdir, name), "w") as f:
            f.write(files[name])
        h.update(name.encode() + b"\0" + files[name].encode())
    with open(os.path.join(outdir, "world.sha256"), "w") as f:
        f.write(h.hexdigest() + "\n")
    print(files["stats.json"])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
