"""The test server's HTTPS front: FreeIPA's own JSON-RPC handler (`ipaserver.rpcserver`,
with its Referer check, parameter validation, plugins and error objects) behind the login
and session stand-ins a framework-only server needs.

What is real: every call runs FreeIPA's command code on an LDAP connection bound as the
logged-in user, so FreeIPA's own ACIs decide what the user may do.

What stands in for what a full server has:
- login: `/ipa/session/login_password` checks the password with an LDAP simple bind as
  uid=<user>,cn=users,cn=accounts,<suffix> (a full server runs kinit);
- session: the cookie `ipa_session=MagBearerToken=<random>` maps to that bind for
  IPA_SESSION_SECONDS (default 1200, FreeIPA's session_auth_duration); a call without a
  live session gets 401, as FreeIPA answers;
- ipaUniqueID `autogenerate` becomes a UUID (ipa_env.py; FreeIPA's ipa-uuid C plugin is not
  built);
- every answer has a Content-Length.

Test controls, on the same loopback server under /ipa/_test/ (POST):
- `expire_sessions?user=U`: U's sessions end (U's next call gets 401);
- `cut_after?method=M&arg=A`: the next call of M whose first argument is A (a group's
  name) runs, then the connection is closed without an answer (a lost answer, for
  interrupted-write tests; the argument keeps tests running in parallel apart).

Environment: IPA_TREE, IPA_STATE (see ipa_env.py), IPA_HTTPS_PORT.
"""

import logging
import os
import secrets
import socket
import ssl
import sys
import threading
import time
import urllib.parse
import uuid
from http.cookies import SimpleCookie
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

import ipa_env

logging.basicConfig(
    level=logging.INFO,
    format="%(asctime)s %(threadName)s %(name)s: %(message)s",
    stream=sys.stdout,
)
log = logging.getLogger("mattersync-ipa")

SESSION_SECONDS = int(os.environ.get("IPA_SESSION_SECONDS", "1200"))
PORT = int(os.environ.get("IPA_HTTPS_PORT", "8443"))
COOKIE = "ipa_session"

api = ipa_env.bootstrap("server")

from ipalib import errors  # noqa: E402  (after the tree is on the path)
from ipalib.request import context, destroy_context  # noqa: E402
from ipapython.dn import DN  # noqa: E402
from ipaserver.plugins.ldap2 import ldap2  # noqa: E402
from ipaserver.rpcserver import WSGIExecutioner  # noqa: E402

JSON = api.Backend.jsonserver_session


class Sessions:
    def __init__(self):
        self.lock = threading.Lock()
        self.by_token = {}

    def open(self, user, dn, password):
        token = secrets.token_urlsafe(32)
        with self.lock:
            self.by_token[token] = (user, dn, password, time.monotonic() + SESSION_SECONDS)
        return token

    def get(self, token):
        with self.lock:
            s = self.by_token.get(token)
            if s is None:
                return None
            if s[3] < time.monotonic():
                del self.by_token[token]
                return None
            return s

    def expire(self, user):
        with self.lock:
            gone = [t for t, s in self.by_token.items() if s[0] == user]
            for t in gone:
                del self.by_token[t]
        return len(gone)


SESSIONS = Sessions()
CUT_AFTER = set()
CUT_LOCK = threading.Lock()


def user_dn(user):
    return DN(("uid", user), api.env.container_user, api.env.basedn)


def respond(start_response, status, headers, body):
    # Every answer says how long it is (wsgiref speaks HTTP/1.0, closes the connection
    # after it and, see Server, ends the TLS session properly).
    headers = [h for h in headers if h[0].lower() != "content-length"]
    headers.append(("Content-Length", str(len(body))))
    start_response(status, headers)
    return [body]


def read_body(environ):
    try:
        n = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        n = 0
    return environ["wsgi.input"].read(n) if n > 0 else b""


def login_password(environ, start_response):
    if not JSON.check_referer(environ):
        return respond(start_response, "400 Bad Request", [], b"denied: Referer")
    form = urllib.parse.parse_qs(read_body(environ).decode("utf-8", "replace"))
    user = (form.get("user") or [""])[0]
    password = (form.get("password") or [""])[0]
    dn = user_dn(user)
    conn = ldap2(api)
    try:
        conn.connect(bind_dn=dn, bind_pw=password)
        conn.disconnect()
    except Exception as e:
        log.info("login of %s refused: %s", user, type(e).__name__)
        return respond(
            start_response,
            "401 Unauthorized",
            [("Content-Type", "text/plain"), ("X-IPA-Rejection-Reason", "invalid-password")],
            b"Unauthorized",
        )
    token = SESSIONS.open(user, dn, password)
    log.info("login of %s", user)
    cookie = "%s=MagBearerToken=%s;path=/ipa;httponly;secure;" % (COOKIE, token)
    return respond(
        start_response,
        "200 Success",
        [("Content-Type", "text/plain; charset=utf-8"), ("Set-Cookie", cookie)],
        b"",
    )


def session_of(environ):
    c = SimpleCookie()
    try:
        c.load(environ.get("HTTP_COOKIE", ""))
    except Exception:
        return None
    morsel = c.get(COOKIE)
    if morsel is None:
        return None
    value = morsel.value
    if not value.startswith("MagBearerToken="):
        return None
    return SESSIONS.get(value[len("MagBearerToken="):])


def json_call(environ, start_response):
    if not JSON.check_referer(environ):
        return respond(start_response, "400 Bad Request", [], b"denied: Referer")
    session = session_of(environ)
    if session is None:
        return respond(start_response, "401 Unauthorized", [], b"")
    user, dn, password, _ = session
    body = read_body(environ)
    method, arg = "", ""
    try:
        import json

        request = json.loads(body)
        method = str(request.get("method", "")).split("/")[0]
        args = request.get("params", [[]])[0]
        arg = str(args[0]) if args else ""
    except Exception:
        pass
    environ["wsgi.input"] = _Body(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    captured = {}

    def capture(status, headers, exc_info=None):
        captured["status"], captured["headers"] = status, headers

    try:
        try:
            api.Backend.ldap2.connect(bind_dn=dn, bind_pw=password)
        except errors.PublicError as e:
            log.info("session of %s: bind failed: %s", user, e)
            return respond(start_response, "401 Unauthorized", [], b"")
        context.principal = "%s@%s" % (user, api.env.realm)
        out = b"".join(WSGIExecutioner.__call__(JSON, environ, capture))
    finally:
        destroy_context()
    with CUT_LOCK:
        cut = (method, arg) in CUT_AFTER
        CUT_AFTER.discard((method, arg))
    if cut:
        log.info("test control: %s ran; closing the connection without an answer", method)
        sock = environ.get("mattersync.socket")
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        raise ConnectionAbortedError("cut by the test control")
    return respond(start_response, captured["status"], captured["headers"], out)


class _Body:
    def __init__(self, data):
        self.data, self.pos = data, 0

    def read(self, n=-1):
        if n is None or n < 0:
            n = len(self.data) - self.pos
        chunk = self.data[self.pos:self.pos + n]
        self.pos += len(chunk)
        return chunk


def control(environ, start_response, what):
    if what == "expire_sessions":
        q = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
        user = (q.get("user") or [""])[0]
        n = SESSIONS.expire(user)
        log.info("test control: %d sessions of %s expired", n, user)
        return respond(start_response, "200 OK", [("Content-Type", "text/plain")], b"%d\n" % n)
    if what == "cut_after":
        q = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
        m = (q.get("method") or [""])[0]
        a = (q.get("arg") or [""])[0]
        with CUT_LOCK:
            CUT_AFTER.add((m, a))
        return respond(start_response, "200 OK", [("Content-Type", "text/plain")], b"ok\n")
    return respond(start_response, "404 Not Found", [], b"no such control")


def app(environ, start_response):
    path = environ.get("PATH_INFO", "")
    method = environ.get("REQUEST_METHOD", "")
    if path == "/ipa/ping" and method == "GET":
        return respond(start_response, "200 OK", [("Content-Type", "text/plain")], b"ok\n")
    if path == "/ipa/session/login_password" and method == "POST":
        return login_password(environ, start_response)
    if path == "/ipa/session/json" and method == "POST":
        return json_call(environ, start_response)
    if path.startswith("/ipa/_test/") and method == "POST":
        return control(environ, start_response, path[len("/ipa/_test/"):])
    return respond(start_response, "404 Not Found", [("Content-Type", "text/plain")], b"not found\n")


class Handler(WSGIRequestHandler):
    def get_environ(self):
        env = super().get_environ()
        env["mattersync.socket"] = self.connection
        return env

    def log_message(self, fmt, *args):
        log.info("%s %s", self.address_string(), fmt % args)


class Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True

    def shutdown_request(self, request):
        # Close the TLS session with a close_notify before the socket (a client must be
        # able to tell the end of an answer from a cut connection).
        try:
            request.unwrap()
        except (OSError, ValueError, AttributeError):
            pass
        super().shutdown_request(request)


def main():
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(
        os.path.join(ipa_env.STATE, "server.pem"), os.path.join(ipa_env.STATE, "server.key")
    )
    httpd = Server(("127.0.0.1", PORT), Handler)
    httpd.socket = tls.wrap_socket(httpd.socket, server_side=True)
    httpd.set_app(app)
    log.info("FreeIPA %s JSON-RPC on https://127.0.0.1:%d/ipa", api.env.version if "version" in api.env else "4.12.4", PORT)
    httpd.serve_forever()


if __name__ == "__main__":
    main()
