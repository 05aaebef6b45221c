#!/usr/bin/env python3
"""Bootstrap the test Mattermost server idempotently (stdlib only).

Called by scripts/mattermost.sh once the server answers its ping:

    python3 scripts/seed.py json | python3 scripts/mm_bootstrap.py --url URL --socket SOCK --state DIR

Everything administrative goes through the local-mode socket (no credentials; teams and
channels created there have no creator member, so the admin does not appear in any
membership). The personal access token is then checked over TCP like mattersync uses it.

Ensures:
  * system admin `mmadmin` (password in DIR/admin.password, generated once, 0600);
  * a personal access token of mmadmin in DIR/token (0600), re-created only when the file is
    missing or the server no longer accepts it;
  * from the seed: every team and channel (archived ones are restored), an account for every
    directory user with "mattermost": "account" (username = uid, same email, random
    password), every mattermost_only user and every bot. Directory users are not added to
    any team or channel (that is mattersync's job); the mattermost_only users are added to
    every team and to the first public and the first private channel of the first seed team,
    so there are "manual members";
  * DIR/bootstrap.json: ids of what exists (admin, teams, channels, users, bots) and which
    manual memberships were made, for tests.
Secrets are never printed nor passed on a command line.
"""
import argparse
import http.client
import json
import os
import secrets
import socket
import sys
import time

ADMIN = "mmadmin"
ADMIN_EMAIL = "mmadmin@mattersync.test"
TOKEN_DESCRIPTION = "mattersync"


def log(msg):
    print(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()) + " mm_bootstrap: " + msg,
          file=sys.stderr, flush=True)


def die(msg):
    log("ERROR: " + msg)
    sys.exit(1)


def new_password():
    # satisfies any combination of Mattermost's password rules (upper, lower, digit, symbol)
    return "Ms1!" + secrets.token_urlsafe(18)


def write_secret(path, value):
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value + "\n")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def read_secret(path):
    try:
        with open(path) as f:
            value = f.read().strip()
        return value or None
    except FileNotFoundError:
        return None


class ApiError(Exception):
    def __init__(self, method, path, status, body):
        self.status = status
        try:
            msg = json.loads(body).get("message", body)
        except Exception:
            msg = body[:300]
        super().__init__("%s %s -> %s: %s" % (method, path, status, msg))


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=60):
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.socket_path)
        self.sock = s


class Client:
    def __init__(self, factory, token=None):
        self.factory = factory
        self.token = token
        self.conn = None
        self.calls = 0

    def request(self, method, path, body=None, ok=(200, 201)):
        headers = {"Accept": "application/json", "X-Requested-With": "XMLHttpRequest"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = "Bearer " + self.token
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = self.factory()
            try:
                self.conn.request(method, "/api/v4" + path, body=data, headers=headers)
                resp = self.conn.getresponse()
                raw = resp.read().decode("utf-8", "replace")
                break
            except (http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = None
                if attempt == 2:
                    raise
        self.calls += 1
        if resp.status not in ok:
            raise ApiError(method, path, resp.status, raw)
        return resp.status, (json.loads(raw) if raw else None)

    def get_or_none(self, path):
        status, value = self.request("GET", path, ok=(200, 404))
        return value if status == 200 else None


def ensure_admin(local, state):
    pw_file = os.path.join(state, "admin.password")
    password = read_secret(pw_file)
    user = local.get_or_none("/users/username/" + ADMIN)
    if user is None:
        if password is None:
            password = new_password()
            write_secret(pw_file, password)
        _, user = local.request("POST", "/users", {
            "username": ADMIN, "email": ADMIN_EMAIL, "password": password,
            "first_name": "Mattermost", "last_name": "Admin", "email_verified": True})
        log("created system admin %s" % ADMIN)
    elif password is None:
        # the account survived but the password file did not: set a new one
        password = new_password()
        local.request("PUT", "/users/%s/password" % user["id"], {"new_password": password})
        write_secret(pw_file, password)
        log("reset the password of %s (admin.password was missing)" % ADMIN)
    if "system_admin" not in user.get("roles", "").split():
        local.request("PUT", "/users/%s/roles" % user["id"], {"roles": "system_user system_admin"})
        log("made %s a system admin" % ADMIN)
    if user.get("delete_at"):
        local.request("PUT", "/users/%s/active" % user["id"], {"active": True})
        log("reactivated %s" % ADMIN)
    return user


def ensure_token(local, tcp_factory, admin, state):
    token_file = os.path.join(state, "token")
    token = read_secret(token_file)
    if token:
        client = Client(tcp_factory, token)
        status, me = client.request("GET", "/users/me", ok=(200, 401, 403))
        if status == 200 and me.get("id") == admin["id"]:
            return client
        log("the stored token no longer works (HTTP %s): creating a new one" % status)
    _, tok = local.request("POST", "/users/%s/tokens" % admin["id"], {"description": TOKEN_DESCRIPTION})
    write_secret(token_file, tok["token"])
    log("created a personal access token for %s in %s" % (ADMIN, token_file))
    client = Client(tcp_factory, tok["token"])
    client.request("GET", "/users/me")
    return client


def ensure_seed(local, api, seed):
    result = {"teams": {}, "channels": {}, "users": {}, "bots": {}, "manual_members": []}

    # users: one batched lookup of every account the seed wants
    wanted = []  # (username, create body, kind)
    for u in seed.get("users", []):
        if u.get("mattermost") != "account":
            continue
        wanted.append((u["uid"], {
            "username": u["uid"], "email": u["email"], "first_name": u.get("given_name", ""),
            "last_name": u.get("surname", ""), "email_verified": True}, "user"))
    for u in seed.get("mattermost_only_users", []):
        wanted.append((u["username"], {"username": u["username"], "email": u["email"],
                                       "email_verified": True}, "user"))
    for b in seed.get("bots", []):
        wanted.append((b["username"], {"username": b["username"],
                                       "display_name": b.get("display_name", b["username"]),
                                       "description": "seeded by mattersync's test bootstrap"}, "bot"))
    pending = [u["uid"] for u in seed.get("users", []) if u.get("mattermost") == "pending"]

    names = [w[0] for w in wanted] + pending
    existing = {}
    if names:
        _, found = api.request("POST", "/users/usernames", names)
        existing = {u["username"]: u for u in found}
    for name in pending:
        if name in existing:
            log("WARNING: pending user %s has a Mattermost account (left alone)" % name)
    created = 0
    for name, body, kind in wanted:
        user = existing.get(name)
        if user is None:
            if kind == "bot":
                _, user = api.request("POST", "/bots", body)
                user = {"id": user["user_id"], "username": name}
            else:
                body = dict(body, password=new_password())
                _, user = local.request("POST", "/users", body)
            created += 1
        (result["bots"] if kind == "bot" else result["users"])[name] = user["id"]
    if created:
        log("created %d accounts" % created)

    # teams and channels (local mode: no creator membership)
    for t in seed.get("teams", []):
        team = local.get_or_none("/teams/name/" + t["name"])
        if team is None:
            _, team = local.request("POST", "/teams", {
                "name": t["name"], "display_name": t.get("display_name", t["name"]), "type": "O"})
            log("created team %s" % t["name"])
        elif team.get("delete_at"):
            local.request("POST", "/teams/%s/restore" % team["id"])
            log("restored team %s" % t["name"])
        result["teams"][t["name"]] = team["id"]
    for c in seed.get("channels", []):
        team_id = result["teams"].get(c["team"])
        if team_id is None:
            die("channel %s refers to unknown team %s" % (c["name"], c["team"]))
        ch = local.get_or_none("/teams/name/%s/channels/name/%s?include_deleted=true" % (c["team"], c["name"]))
        if ch is None:
            _, ch = local.request("POST", "/channels", {
                "team_id": team_id, "name": c["name"],
                "display_name": c.get("display_name", c["name"]), "type": c.get("type", "O")})
            log("created channel %s/%s (%s)" % (c["team"], c["name"], c.get("type", "O")))
        elif ch.get("delete_at"):
            local.request("POST", "/channels/%s/restore" % ch["id"])
            log("restored channel %s/%s" % (c["team"], c["name"]))
        result["channels"]["%s/%s" % (c["team"], c["name"])] = ch["id"]

    # manual members: mattermost_only users in every team and in the first public and the
    # first private channel of the first team
    manual = [result["users"][u["username"]] for u in seed.get("mattermost_only_users", [])]
    chosen = []
    if seed.get("teams"):
        first = seed["teams"][0]["name"]
        for kind in ("O", "P"):
            for c in seed.get("channels", []):
                if c["team"] == first and c.get("type", "O") == kind:
                    chosen.append("%s/%s" % (first, c["name"]))
                    break
    if manual:
        for team_name, team_id in result["teams"].items():
            _, members = api.request("POST", "/teams/%s/members/ids" % team_id, manual)
            have = {m["user_id"] for m in members if not m.get("delete_at")}
            for uid in manual:
                if uid not in have:
                    local.request("POST", "/teams/%s/members" % team_id, {"team_id": team_id, "user_id": uid})
                    log("added a manual member to team %s" % team_name)
        for key in chosen:
            ch_id = result["channels"][key]
            _, members = api.request("POST", "/channels/%s/members/ids" % ch_id, manual)
            have = {m["user_id"] for m in members}
            for uid in manual:
                if uid not in have:
                    local.request("POST", "/channels/%s/members" % ch_id, {"user_id": uid})
                    log("added a manual member to channel %s" % key)
        for u in seed.get("mattermost_only_users", []):
            result["manual_members"].append({"username": u["username"],
                                             "teams": sorted(result["teams"]),
                                             "channels": chosen})
    return result


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--url", required=True, help="e.g. http://127.0.0.1:8065")
    ap.add_argument("--socket", required=True, help="local-mode socket")
    ap.add_argument("--state", required=True, help="directory for admin.password, token, bootstrap.json")
    ap.add_argument("--seed", help="seed JSON file (default: stdin; '-' for stdin, 'none' to skip)")
    args = ap.parse_args()

    start = time.time()
    if args.seed == "none":
        seed = None
    elif args.seed and args.seed != "-":
        with open(args.seed) as f:
            seed = json.load(f)
    else:
        seed = json.load(sys.stdin)

    hostport = args.url.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.partition(":")
    tcp_factory = lambda: http.client.HTTPConnection(host, int(port or 80), timeout=60)
    local = Client(lambda: UnixHTTPConnection(args.socket))

    try:
        admin = ensure_admin(local, args.state)
        api = ensure_token(local, tcp_factory, admin, args.state)
        result = ensure_seed(local, api, seed) if seed is not None else {}
    except ApiError as e:
        die(str(e))
    result["admin"] = {"username": ADMIN, "id": admin["id"]}
    out = os.path.join(args.state, "bootstrap.json")
    with open(out + ".tmp", "w") as f:
        json.dump(result, f, indent=1, sort_keys=True)
    os.replace(out + ".tmp", out)
    log("done in %.2fs (%d requests)" % (time.time() - start, local.calls + api.calls))


if __name__ == "__main__":
    main()
