//! A fault-injecting proxy for end-to-end fault tests: it sits on `127.0.0.1:<port>` between
//! mattersync and a real server and does what a test tells it, switchably, while it runs.
//!
//! Two modes:
//! - [`Proxy::tcp`]: relays bytes (LDAP, LDAPS — TLS passes through untouched). Faults per
//!   connection ([`TcpFault`]): reset the client after N bytes from the server, stall after N
//!   bytes (a server that stops answering), refuse connections (nothing listens, like a
//!   server that is down or restarting), or cut every live connection at once.
//! - [`Proxy::http`] (and [`Proxy::https`], which terminates TLS with a test certificate):
//!   understands HTTP/1.1 requests; [`Rule`]s choose requests by method and path and answer
//!   them with a status (429 with `Retry-After`, 5xx, malformed JSON…), reset the connection
//!   before or after the request reached the server, delay them, truncate the answer, or
//!   hold them until the test releases them. Everything else passes through. Every request
//!   is logged ([`Seen`]), with what the proxy did and what the server answered.
//!
//! Only loopback: the proxy binds `127.0.0.1` and the tests point it at the local servers.
//! Every wait in here is bounded or ends when the test drops the proxy.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

/// What a [`Proxy::tcp`] does to each new connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpFault {
    /// Relay both ways.
    Pass,
    /// Relay the first N bytes from the server, then reset the client's connection (a server
    /// that crashes mid-answer).
    ResetAfter(usize),
    /// Relay the first N bytes from the server, then relay nothing more and keep the
    /// connection open (a server that hangs: the client's timeout must fire).
    StallAfter(usize),
    /// Relay both ways, the server's bytes at about N a second (a slow link: a read takes
    /// long enough for a test to restart the real server while it is under way).
    Throttle(usize),
}

/// What a [`Rule`] does with a request it matches.
#[derive(Debug, Clone)]
pub enum HttpFault {
    /// Answer this instead of the server: status, extra headers, body. The server never
    /// sees the request.
    Respond(u16, Vec<(String, String)>, String),
    /// Reset the connection without sending the request on.
    ResetBefore,
    /// Send the request on, read the server's whole answer, then reset the connection: the
    /// change happened but the client never hears so.
    ResetAfter,
    /// Send the request on and pass on only the first N bytes of the answer, then reset.
    Truncate(usize),
    /// Wait, then send the request on (the client may have given up by then; the request
    /// still reaches the server).
    Delay(Duration),
    /// Hold the request until [`Proxy::release`]; then send it on (`forward`) or drop it.
    /// A test uses it to kill mattersync while a write is in flight.
    Hold { forward: bool },
}

impl HttpFault {
    /// `429 Too Many Requests` with `Retry-After: <secs>` and Mattermost's error body.
    pub fn too_many(retry_after_secs: u32) -> HttpFault {
        HttpFault::Respond(
            429,
            vec![("Retry-After".into(), retry_after_secs.to_string())],
            mm_error(429, "api.context.rate_limit.app_error", "Too many requests"),
        )
    }

    /// A server error with Mattermost's error body.
    pub fn status(code: u16) -> HttpFault {
        HttpFault::Respond(
            code,
            Vec::new(),
            mm_error(
                code,
                "proxy.injected.app_error",
                "injected by the test proxy",
            ),
        )
    }

    /// A `200 OK` whose body is `body` (e.g. malformed JSON).
    pub fn ok_body(body: &str) -> HttpFault {
        HttpFault::Respond(200, Vec::new(), body.to_string())
    }
}

/// A Mattermost error body (`{"id", "message", "status_code"}`).
pub fn mm_error(status: u16, id: &str, message: &str) -> String {
    format!(
        r#"{{"id":"{id}","message":"{message}","detailed_error":"","request_id":"proxy","status_code":{status}}}"#
    )
}

/// Which requests a fault applies to, and how often.
#[derive(Debug, Clone)]
pub struct Rule {
    /// `GET`, `POST`…, or `*`.
    pub method: String,
    /// A substring of the request target (path and query).
    pub path_contains: String,
    /// Matching requests let through untouched before the fault starts.
    pub skip: usize,
    /// How many matching requests get the fault; `None`: all of them.
    pub times: Option<usize>,
    pub fault: HttpFault,
}

impl Rule {
    /// Every request with this method (or `*`) whose target contains `path_contains`.
    pub fn new(method: &str, path_contains: &str, fault: HttpFault) -> Rule {
        Rule {
            method: method.to_string(),
            path_contains: path_contains.to_string(),
            skip: 0,
            times: None,
            fault,
        }
    }

    pub fn times(mut self, n: usize) -> Rule {
        self.times = Some(n);
        self
    }

    pub fn skip(mut self, n: usize) -> Rule {
        self.skip = n;
        self
    }

    fn matches(&self, method: &str, target: &str) -> bool {
        (self.method == "*" || self.method.eq_ignore_ascii_case(method))
            && target.contains(&self.path_contains)
    }
}

/// One HTTP request the proxy saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub method: String,
    /// Path and query.
    pub target: String,
    /// What the proxy did: `forwarded`, `injected 429`, `reset before`, `reset after`,
    /// `truncated`, `dropped`.
    pub action: String,
    /// The server's status, when the request reached the server and it answered.
    pub upstream: Option<u16>,
}

impl Seen {
    /// Whether the request reached the server (so a write may have happened).
    pub fn reached_server(&self) -> bool {
        self.upstream.is_some()
    }

    /// A call that changes Mattermost (not a GET, and not one of the POSTs that only read:
    /// `/users/usernames`, `/users/ids`).
    pub fn is_write(&self) -> bool {
        !self.method.eq_ignore_ascii_case("GET")
            && !self.target.contains("/users/usernames")
            && !self.target.contains("/users/ids")
    }
}

/// One relayed TCP connection, when it ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnStat {
    /// Bytes from the client to the server.
    pub up: usize,
    /// Bytes from the server to the client.
    pub down: usize,
}

type Acceptor = tokio_rustls::TlsAcceptor;

struct Shared {
    upstream: String,
    tcp_fault: Mutex<TcpFault>,
    rules: Mutex<Vec<(Rule, usize)>>,
    seen: Mutex<Vec<Seen>>,
    conns: Mutex<Vec<ConnStat>>,
    live: Mutex<Vec<tokio::task::AbortHandle>>,
    released: Notify,
    stalled: std::sync::atomic::AtomicUsize,
    relayed: std::sync::atomic::AtomicUsize,
    tls: Option<Acceptor>,
}

/// A running proxy; it stops when dropped.
pub struct Proxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    refusing: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
        self.cut();
        // Anything held is let go (and dropped with its connection).
        self.shared.released.notify_waiters();
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Tcp,
    Http,
}

impl Proxy {
    /// A byte relay to `upstream` (`host:port`).
    pub async fn tcp(upstream: &str) -> Proxy {
        Self::start(upstream, Kind::Tcp, None).await
    }

    /// An HTTP/1.1 proxy to `upstream` (`host:port`, plain HTTP).
    pub async fn http(upstream: &str) -> Proxy {
        Self::start(upstream, Kind::Http, None).await
    }

    /// As [`Proxy::http`], but clients speak HTTPS to the proxy, which presents the
    /// certificate chain `cert_pem` with the key `key_pem` (PEM files).
    pub async fn https(
        upstream: &str,
        cert_pem: &std::path::Path,
        key_pem: &std::path::Path,
    ) -> Proxy {
        Self::start(upstream, Kind::Http, Some(acceptor(cert_pem, key_pem))).await
    }

    async fn start(upstream: &str, kind: Kind, tls: Option<Acceptor>) -> Proxy {
        let listener = bind(None).expect("proxy: bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("proxy: local addr");
        let shared = Arc::new(Shared {
            upstream: upstream.to_string(),
            tcp_fault: Mutex::new(TcpFault::Pass),
            rules: Mutex::new(Vec::new()),
            seen: Mutex::new(Vec::new()),
            conns: Mutex::new(Vec::new()),
            live: Mutex::new(Vec::new()),
            released: Notify::new(),
            stalled: std::sync::atomic::AtomicUsize::new(0),
            relayed: std::sync::atomic::AtomicUsize::new(0),
            tls,
        });
        let (refusing, rx) = watch::channel(false);
        let task = tokio::spawn(accept_loop(listener, addr, shared.clone(), rx, kind));
        Proxy {
            addr,
            shared,
            refusing,
            task,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `https://localhost:<port>` (the name the test certificate is for).
    pub fn https_url(&self) -> String {
        format!("https://localhost:{}", self.addr.port())
    }

    /// `ldap://127.0.0.1:<port>` or `ldaps://127.0.0.1:<port>`.
    pub fn ldap_url(&self, tls: bool) -> String {
        format!("{}://{}", if tls { "ldaps" } else { "ldap" }, self.addr)
    }

    /// The fault for connections accepted from now on (TCP mode).
    pub fn set_tcp_fault(&self, fault: TcpFault) {
        *lock(&self.shared.tcp_fault) = fault;
    }

    /// Adds a rule (HTTP mode); the first matching rule with faults left wins.
    pub fn add_rule(&self, rule: Rule) {
        lock(&self.shared.rules).push((rule, 0));
    }

    /// Removes every rule: everything passes through again.
    pub fn clear_rules(&self) {
        lock(&self.shared.rules).clear();
    }

    /// Stop listening (clients get "connection refused") or listen again on the same port.
    pub fn set_refusing(&self, refusing: bool) {
        let _ = self.refusing.send(refusing);
    }

    /// Close every live connection at once (as a server that dies does).
    pub fn cut(&self) {
        for h in lock(&self.shared.live).drain(..) {
            h.abort();
        }
    }

    /// A server restart, as clients see it: live connections die, new ones are refused.
    /// [`Proxy::set_refusing`]`(false)` ends it.
    pub fn begin_outage(&self) {
        self.set_refusing(true);
        self.cut();
    }

    /// Lets every held request go (see [`HttpFault::Hold`]).
    pub fn release(&self) {
        self.shared.released.notify_waiters();
    }

    /// The requests seen so far (HTTP mode).
    pub fn seen(&self) -> Vec<Seen> {
        lock(&self.shared.seen).clone()
    }

    /// Forgets the requests seen so far.
    pub fn clear_seen(&self) {
        lock(&self.shared.seen).clear();
    }

    /// Write requests (not GET) that reached the server.
    pub fn writes_reaching_server(&self) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| s.is_write() && s.reached_server())
            .collect()
    }

    /// Waits until the log has a request the proxy handled with `action` (see
    /// [`Seen::action`]), up to `limit`; returns whether it has.
    pub async fn wait_for_action(&self, action: &str, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if self.seen().iter().any(|s| s.action == action) {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Connections that stalled so far ([`TcpFault::StallAfter`]).
    pub fn stalled(&self) -> usize {
        self.shared
            .stalled
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Waits until `n` connections have stalled, up to `limit`; returns whether they did.
    pub async fn wait_stalled(&self, n: usize, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        while self.stalled() < n {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }

    /// Bytes relayed from the server to clients so far, on every connection, live ones too
    /// (TCP mode).
    pub fn relayed(&self) -> usize {
        self.shared
            .relayed
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Waits until more than `n` bytes have been relayed from the server ([`Proxy::relayed`]),
    /// up to `limit`; returns whether they were.
    pub async fn wait_relayed(&self, n: usize, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        while self.relayed() <= n {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }

    /// Connections that ended so far, with their byte counts (TCP mode).
    pub fn conns(&self) -> Vec<ConnStat> {
        lock(&self.shared.conns).clone()
    }

    /// Waits until a request matching `method` and `path_contains` has been seen, up to
    /// `limit`; returns whether it was.
    pub async fn wait_for(&self, method: &str, path_contains: &str, limit: Duration) -> bool {
        let probe = Rule::new(method, path_contains, HttpFault::ResetBefore);
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if self
                .seen()
                .iter()
                .any(|s| probe.matches(&s.method, &s.target))
            {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn bind(addr: Option<SocketAddr>) -> std::io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(addr.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0))))?;
    socket.listen(256)
}

fn acceptor(cert_pem: &std::path::Path, key_pem: &std::path::Path) -> Acceptor {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_pem)
        .expect("proxy: read the certificate")
        .collect::<Result<_, _>>()
        .expect("proxy: parse the certificate");
    let key = PrivateKeyDer::from_pem_file(key_pem).expect("proxy: read the key");
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("proxy: TLS versions")
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .expect("proxy: certificate and key");
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

async fn accept_loop(
    listener: TcpListener,
    addr: SocketAddr,
    shared: Arc<Shared>,
    mut refusing: watch::Receiver<bool>,
    kind: Kind,
) {
    let mut listener = Some(listener);
    loop {
        if *refusing.borrow_and_update() {
            // Nothing listens: the kernel refuses new connections.
            listener = None;
            if refusing.changed().await.is_err() {
                return;
            }
            continue;
        }
        let l = match listener.take() {
            Some(l) => l,
            None => match bind(Some(addr)) {
                Ok(l) => l,
                Err(_) => {
                    // The port is still being released; try again shortly.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        tokio::select! {
            accepted = l.accept() => {
                listener = Some(l);
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let s = shared.clone();
                let handle = tokio::spawn(async move {
                    match (kind, s.tls.clone()) {
                        (Kind::Tcp, _) => relay(stream, &s).await,
                        (Kind::Http, None) => serve_http(stream, &s).await,
                        (Kind::Http, Some(tls)) => {
                            if let Ok(Ok(stream)) =
                                tokio::time::timeout(Duration::from_secs(10), tls.accept(stream)).await
                            {
                                serve_http(stream, &s).await
                            }
                        }
                    }
                });
                let mut live = lock(&shared.live);
                live.retain(|h| !h.is_finished());
                live.push(handle.abort_handle());
            }
            _ = refusing.changed() => {
                // Drop the listener at the top of the loop if we are to refuse now.
                listener = Some(l);
            }
        }
    }
}

/// Resetting a connection (RST instead of FIN) when it is dropped.
trait Resettable {
    fn arm_reset(&self);
}

impl Resettable for TcpStream {
    fn arm_reset(&self) {
        let _ = self.set_zero_linger();
    }
}

impl Resettable for tokio_rustls::server::TlsStream<TcpStream> {
    fn arm_reset(&self) {
        let _ = self.get_ref().0.set_zero_linger();
    }
}

async fn relay(client: TcpStream, shared: &Shared) {
    let fault = *lock(&shared.tcp_fault);
    let Ok(server) = TcpStream::connect(&shared.upstream).await else {
        client.arm_reset();
        return;
    };
    let _ = server.set_nodelay(true);
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let up_bytes = std::sync::atomic::AtomicUsize::new(0);
    let limit = match fault {
        TcpFault::Pass | TcpFault::Throttle(_) => usize::MAX,
        TcpFault::ResetAfter(k) | TcpFault::StallAfter(k) => k,
    };
    // A throttled connection reads a tenth of a second's worth at a time, then pauses.
    let pace = match fault {
        TcpFault::Throttle(rate) => Some((rate / 10).max(1)),
        TcpFault::Pass | TcpFault::ResetAfter(_) | TcpFault::StallAfter(_) => None,
    };
    #[derive(PartialEq)]
    enum End {
        ServerClosed,
        Limit,
    }
    let (down_bytes, end) = {
        let up = async {
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                match cr.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if sw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                        up_bytes.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            }
            let _ = sw.shutdown().await;
        };
        let down = async {
            let mut total = 0usize;
            let mut buf = vec![0u8; 16 * 1024];
            let cap = pace.map_or(buf.len(), |p| p.min(buf.len()));
            loop {
                let n = match sr.read(&mut buf[..cap]).await {
                    Ok(0) | Err(_) => return (total, End::ServerClosed),
                    Ok(n) => n,
                };
                let allowed = limit.saturating_sub(total).min(n);
                if allowed > 0 && cw.write_all(&buf[..allowed]).await.is_err() {
                    return (total, End::ServerClosed);
                }
                total += allowed;
                shared
                    .relayed
                    .fetch_add(allowed, std::sync::atomic::Ordering::SeqCst);
                if pace.is_some() {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                if allowed < n {
                    return (total, End::Limit);
                }
            }
        };
        tokio::pin!(up);
        tokio::pin!(down);
        let result = tokio::select! {
            r = &mut down => r,
            _ = &mut up => {
                // The client is done sending; the server's answer may still be coming.
                tokio::time::timeout(Duration::from_secs(10), &mut down)
                    .await
                    .unwrap_or((0, End::ServerClosed))
            }
        };
        if result.1 == End::Limit && matches!(fault, TcpFault::StallAfter(_)) {
            // Hang: relay nothing more until the client gives up (or the test cuts).
            shared
                .stalled
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let _ = tokio::time::timeout(Duration::from_secs(120), &mut up).await;
        }
        result
    };
    lock(&shared.conns).push(ConnStat {
        up: up_bytes.load(std::sync::atomic::Ordering::Relaxed),
        down: down_bytes,
    });
    if end == End::Limit && matches!(fault, TcpFault::ResetAfter(_)) {
        cw.as_ref().arm_reset();
    } else {
        let _ = cw.shutdown().await;
    }
}

struct Request {
    method: String,
    target: String,
    head: Vec<u8>,
    body: Vec<u8>,
}

/// Reads one request; `None` at a clean end of the connection or on garbage.
async fn read_request<S: AsyncRead + Unpin>(s: &mut S, buf: &mut Vec<u8>) -> Option<Request> {
    let end = loop {
        if let Some(i) = find(buf, b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 1 << 20 {
            return None;
        }
        let mut chunk = [0u8; 8192];
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_string();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_string();
    let target = first.next()?.to_string();
    let mut length = 0usize;
    let mut kept = format!("{method} {target} HTTP/1.1\r\n");
    for line in lines.filter(|l| !l.is_empty()) {
        let (k, v) = line.split_once(':')?;
        if k.eq_ignore_ascii_case("content-length") {
            length = v.trim().parse().ok()?;
        }
        if k.eq_ignore_ascii_case("transfer-encoding") {
            return None; // reqwest sends bodies with a length
        }
        if k.eq_ignore_ascii_case("connection") {
            continue;
        }
        kept.push_str(line);
        kept.push_str("\r\n");
    }
    kept.push_str("Connection: close\r\n\r\n");
    while buf.len() < end + length {
        let mut chunk = [0u8; 8192];
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = buf[end..end + length].to_vec();
    buf.drain(..end + length);
    Some(Request {
        method,
        target,
        head: kept.into_bytes(),
        body,
    })
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Sends the request to the server and reads its whole answer (the server closes after it:
/// the proxy asked for `Connection: close`).
async fn forward(shared: &Shared, req: &Request) -> Option<(u16, Vec<u8>)> {
    let mut server = tokio::time::timeout(
        Duration::from_secs(10),
        TcpStream::connect(&shared.upstream),
    )
    .await
    .ok()?
    .ok()?;
    server.write_all(&req.head).await.ok()?;
    server.write_all(&req.body).await.ok()?;
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(120), server.read_to_end(&mut answer))
        .await
        .ok()?
        .ok()?;
    let status = String::from_utf8_lossy(answer.get(..12.min(answer.len()))?)
        .split(' ')
        .nth(1)?
        .parse()
        .ok()?;
    Some((status, answer))
}

/// The fault for a request, counting it against its rule.
fn pick(shared: &Shared, method: &str, target: &str) -> Option<HttpFault> {
    let mut rules = lock(&shared.rules);
    for (rule, count) in rules.iter_mut() {
        if !rule.matches(method, target) {
            continue;
        }
        *count += 1;
        if *count <= rule.skip {
            continue;
        }
        if let Some(t) = rule.times {
            if *count > rule.skip + t {
                continue;
            }
        }
        return Some(rule.fault.clone());
    }
    None
}

async fn serve_http<S>(mut client: S, shared: &Shared)
where
    S: AsyncRead + AsyncWrite + Unpin + Resettable,
{
    let mut buf = Vec::new();
    // One request per connection: the proxy answers with `Connection: close`.
    let Some(req) = read_request(&mut client, &mut buf).await else {
        return;
    };
    let fault = pick(shared, &req.method, &req.target);
    let log = |action: &str, upstream: Option<u16>| {
        lock(&shared.seen).push(Seen {
            method: req.method.clone(),
            target: req.target.clone(),
            action: action.to_string(),
            upstream,
        });
    };
    match fault {
        None | Some(HttpFault::Delay(_)) | Some(HttpFault::Hold { forward: true }) => {
            match &fault {
                Some(HttpFault::Delay(d)) => tokio::time::sleep(*d).await,
                Some(HttpFault::Hold { .. }) => {
                    log("held", None);
                    shared.released.notified().await;
                }
                _ => {}
            }
            match forward(shared, &req).await {
                Some((status, answer)) => {
                    log("forwarded", Some(status));
                    let _ = client.write_all(&answer).await;
                    let _ = client.shutdown().await;
                }
                None => {
                    log("server unreachable", None);
                    client.arm_reset();
                }
            }
        }
        Some(HttpFault::Hold { forward: false }) => {
            log("held", None);
            shared.released.notified().await;
            log("dropped", None);
            client.arm_reset();
        }
        Some(HttpFault::Respond(status, headers, body)) => {
            log(&format!("injected {status}"), None);
            let mut out = format!(
                "HTTP/1.1 {status} Injected\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
                body.len()
            );
            for (k, v) in headers {
                out.push_str(&format!("{k}: {v}\r\n"));
            }
            out.push_str("\r\n");
            out.push_str(&body);
            let _ = client.write_all(out.as_bytes()).await;
            let _ = client.shutdown().await;
        }
        Some(HttpFault::ResetBefore) => {
            log("reset before", None);
            client.arm_reset();
        }
        Some(HttpFault::ResetAfter) => {
            let upstream = forward(shared, &req).await.map(|(s, _)| s);
            log("reset after", upstream);
            client.arm_reset();
        }
        Some(HttpFault::Truncate(n)) => {
            let answer = forward(shared, &req).await;
            log("truncated", answer.as_ref().map(|(s, _)| *s));
            if let Some((_, bytes)) = answer {
                let _ = client.write_all(&bytes[..n.min(bytes.len())]).await;
                let _ = client.flush().await;
            }
            client.arm_reset();
        }
    }
}
