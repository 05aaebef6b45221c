#!/usr/bin/python3
"""Records the answers of crates/freeipa/tests/fixtures/*.json from the live FreeIPA test
server: each fixture's request is sent as it stands (as the delegated mattersync account,
or the unprivileged one for an ACI refusal) on groups of its own made for the purpose, and
the answer replaces the fixture's `response` (with the temporary names put back).

  scripts/freeipa.sh up && /usr/bin/python3 scripts/freeipa/capture_fixtures.py

Reads .local/freeipa.env. Uses only Python's standard library.
"""

import http.cookiejar
import json
import os
import re
import secrets
import ssl
import subprocess
import sys
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(ROOT, "crates", "freeipa", "tests", "fixtures")
STABLE_ID = "8f3c2a4e-5b1d-11ef-9d3c-525400b1c2d3"
SOURCE = "Answer recorded from the live FreeIPA 4.12.4 test server (scripts/freeipa/capture_fixtures.py)."


def env():
    out = {}
    with open(os.path.join(ROOT, ".local", "freeipa.env")) as f:
        for line in f:
            if "=" in line:
                k, v = line.strip().split("=", 1)
                out[k] = v.strip('"')
    return out


E = env()
URL = E["MATTERSYNC_IPA_URL"]
TLS = ssl.create_default_context(cafile=E["MATTERSYNC_IPA_CA_FILE"])
STATE = os.path.dirname(E["MATTERSYNC_IPA_CA_FILE"])


def password(user):
    with open(os.path.join(STATE, "%s.password" % user)) as f:
        return f.read()


class Session:
    def __init__(self, user):
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPSHandler(context=TLS),
            urllib.request.HTTPCookieProcessor(self.jar),
        )
        body = urllib.parse.urlencode({"user": user, "password": password(user)}).encode()
        self._post("/ipa/session/login_password", body, "application/x-www-form-urlencoded")

    def _post(self, path, body, ctype):
        req = urllib.request.Request(URL + path, data=body, method="POST", headers={
            "Referer": URL + "/ipa", "Content-Type": ctype, "Accept": "application/json"})
        with self.opener.open(req) as r:
            return r.read()

    def raw(self, request):
        return json.loads(self._post("/ipa/session/json", json.dumps(request).encode(),
                                     "application/json"))

    def call(self, method, args, **opts):
        answer = self.raw({"method": method + "/1", "params": [args, opts], "id": 0})
        if answer.get("error"):
            raise RuntimeError("%s %s: %s" % (method, args, answer["error"]))
        return answer["result"]


def ldapmodify(ldif):
    subprocess.run(
        ["ldapmodify", "-x", "-H", E["MATTERSYNC_IPA_LDAP_URL"], "-D", "cn=Directory Manager",
         "-y", E["MATTERSYNC_IPA_DM_PASSWORD_FILE"]],
        input=ldif, text=True, check=True, stdout=subprocess.DEVNULL)


def gate(group, on):
    dn = "cn=%s,cn=groups,cn=accounts,%s" % (group, E["MATTERSYNC_IPA_LDAP_BASE_DN"])
    ldapmodify("dn: cn=FPCA,cn=fasagreements,%s\nchangetype: modify\n%s: seeAlso\nseeAlso: %s\n"
               % (E["MATTERSYNC_IPA_LDAP_BASE_DN"], "add" if on else "delete", dn))


def main():
    admin = Session("admin")
    tag = "cap" + secrets.token_hex(3)
    names = {}  # fixture name -> temporary name

    def tmp(name):
        if name not in names:
            names[name] = name.replace("mm_rl_", "mm_%s_" % tag) if name.startswith("mm_rl_") \
                else "%s_%s" % (tag, name)
        return names[name]

    def group(name, fas=True, users=(), groups=(), managers=(), posix=False):
        cn = tmp(name)
        opts = {"description": "Rocky Linux infrastructure team"}
        if not posix:
            opts["nonposix"] = True
        if fas:
            opts["fasgroup"] = True
        admin.call("group_add", [cn], **opts)
        if users or groups:
            admin.call("group_add_member", [cn], user=list(users),
                       group=[tmp(g) for g in groups])
        if managers:
            admin.call("group_add_member_manager", [cn], user=list(managers))
        return cn

    infra = "mm_rl_infra"
    # What each fixture's request needs to find on the server, and who sends it.
    setups = {
        "group_add-nonposix": lambda: None,
        "group_add-duplicate-4002": lambda: group(infra),
        "group_add-aci-2100": lambda: None,
        "group_add-posix-with-gid": lambda: None,
        "group_add_member-mixed": lambda: (group(infra, users=["bob"]), gate(tmp(infra), True)),
        "group_add_member_manager": lambda: group(infra),
        "group_add_member_manager-already": lambda: group(infra, managers=["neil"]),
        "group_add_member_manager-partial": lambda: (group(infra), group("infra_leads", fas=False)),
        "group_mod-already-fas-4202": lambda: group(infra),
        "group_mod-description": lambda: group(infra),
        "group_mod-fasgroup": lambda: group(infra, fas=False),
        "group_mod-not-found-4001": lambda: None,
        "group_remove_member": lambda: group(infra, users=["alice", "bob"]),
        "group_remove_member_manager": lambda: group(infra, managers=["alice", "neil"]),
        "group_show-fas-group": lambda: group(infra, users=["alice", "neil"], managers=["neil"]),
        "group_show-not-found-4001": lambda: None,
    }
    senders = {"group_add-aci-2100": "nobody-special"}
    sessions = {}
    only = set(sys.argv[1:])
    for fname in sorted(os.listdir(FIXTURES)):
        name = fname[:-len(".json")]
        if only and name not in only:
            continue
        path = os.path.join(FIXTURES, fname)
        with open(path) as f:
            fx = json.load(f)
        names.clear()
        setups[name]()
        # The request as the fixture has it, on the temporary names.
        for n in ("mm_rl_infra", "mm_rl_build", "infra_leads", "infra_oncall"):
            tmp(n)
        text = json.dumps(fx["request"])
        for real, t in names.items():
            text = text.replace('"%s"' % real, '"%s"' % t)
        sender = senders.get(name, "mattersync-admin")
        if sender not in sessions:
            sessions[sender] = Session(sender)
        answer = sessions[sender].raw(json.loads(text))
        out = json.dumps(answer)
        for real, t in names.items():
            out = out.replace(t, real)
        # The server's random ids, made stable so that recording again changes nothing.
        out = re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", STABLE_ID, out)
        fx["response"] = json.loads(out)
        if SOURCE not in fx["about"]:
            fx["about"] = fx["about"].rstrip() + " " + SOURCE
        with open(path, "w") as f:
            json.dump(fx, f, indent=2, sort_keys=True)  # the server's key order varies
            f.write("\n")
        for real, t in names.items():
            if name == "group_add_member-mixed" and real == infra:
                gate(t, False)
            try:
                admin.call("group_del", [t])
            except RuntimeError:
                pass
        print("%s: recorded" % name)


if __name__ == "__main__":
    main()
