//! A scripted LDAP server on 127.0.0.1 for the failures a real server will not produce on
//! demand: a result code on page 2, a referral, a hang, a drop, garbage.
//!
//! It serves a small in-memory world: a subtree search returns every entry below the base (the
//! filter is ignored), a base search returns the entry itself, paged 1 entry per page when
//! the client asks for paging. A `Fault` replaces the answer to one chosen search.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ldap3::asn1::{parse_tag, StructureTag, TagClass};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub const BASE: &str = "dc=example,dc=org";
pub const USERS: &str = "cn=users,cn=accounts,dc=example,dc=org";
pub const GROUPS: &str = "cn=groups,cn=accounts,dc=example,dc=org";

/// What the server does instead of answering a search normally.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Send the page's entries, then SearchResultDone with this code.
    ResultCode(u32, &'static str),
    /// Send one continuation reference before the page's entries.
    Reference(&'static str),
    /// Send the page's entries, then close the connection.
    Drop,
    /// Never answer.
    Hang,
    /// Send a SearchResultEntry whose attribute list is missing.
    MalformedEntry,
    /// Send an entry whose member DN does not parse.
    BadMemberDn,
    /// Answer every page of this search with no entries and a cookie for more.
    EndlessPaging,
}

/// Which search gets the fault: the first subtree search whose base equals `base`
/// (case-insensitive) and, for paged searches, whose page number (1-based) is `page`.
/// Base-scope reads (the readability checks) are never faulted.
#[derive(Debug, Clone)]
pub struct FaultAt {
    pub base: String,
    pub page: u32,
    pub fault: Fault,
}

#[derive(Debug, Clone, Default)]
pub struct Script {
    /// Result code for a bind (0 = success).
    pub bind_rc: u32,
    /// Never answer a bind.
    pub bind_hangs: bool,
    pub fault: Option<FaultAt>,
}

pub struct MockLdap {
    pub addr: SocketAddr,
    pub searches: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for MockLdap {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl MockLdap {
    pub async fn start(script: Script) -> MockLdap {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind mock");
        let addr = listener.local_addr().expect("mock addr");
        let searches = Arc::new(Mutex::new(Vec::new()));
        let log = searches.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    return;
                };
                let script = script.clone();
                let log = log.clone();
                tokio::spawn(async move {
                    let _ = serve(sock, script, log).await;
                });
            }
        });
        MockLdap {
            addr,
            searches,
            task,
        }
    }

    pub fn uri(&self) -> String {
        format!("ldap://{}", self.addr)
    }
}

type Attrs = Vec<(&'static str, Vec<String>)>;

/// The world: DN → attributes.
fn world() -> BTreeMap<String, Attrs> {
    let mut w = BTreeMap::new();
    let user = |uid: &str| format!("uid={uid},{USERS}");
    w.insert(
        BASE.to_string(),
        vec![("objectClass", vec!["domain".into()])],
    );
    w.insert(
        USERS.to_string(),
        vec![("objectClass", vec!["nsContainer".into()])],
    );
    w.insert(
        GROUPS.to_string(),
        vec![("objectClass", vec!["nsContainer".into()])],
    );
    for uid in ["ana", "ben", "cy"] {
        w.insert(
            user(uid),
            vec![
                ("uid", vec![uid.to_string()]),
                ("mail", vec![format!("{uid}@example.org")]),
            ],
        );
    }
    w.insert(
        format!("cn=mm_x_one,{GROUPS}"),
        vec![
            (
                "objectClass",
                vec!["groupOfNames".into(), "fasGroup".into()],
            ),
            ("cn", vec!["mm_x_one".into()]),
            ("ipaUniqueID", vec!["id-one".into()]),
            ("member", vec![user("ana"), user("ben"), user("cy")]),
            ("memberManager", vec![user("ana")]),
        ],
    );
    w
}

fn under(dn: &str, base: &str) -> bool {
    let (dn, base) = (dn.to_ascii_lowercase(), base.to_ascii_lowercase());
    dn.len() > base.len() && dn.ends_with(&format!(",{base}"))
}

// ---------------------------------------------------------------- BER

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = content.len();
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes: Vec<u8> = n
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

fn int_bytes(v: u64) -> Vec<u8> {
    let mut b: Vec<u8> = v
        .to_be_bytes()
        .into_iter()
        .skip_while(|b| *b == 0)
        .collect();
    if b.is_empty() || b[0] & 0x80 != 0 {
        b.insert(0, 0);
    }
    b
}

fn int(v: u64) -> Vec<u8> {
    tlv(0x02, &int_bytes(v))
}
fn enumerated(v: u32) -> Vec<u8> {
    tlv(0x0a, &int_bytes(v as u64))
}
fn os(s: &[u8]) -> Vec<u8> {
    tlv(0x04, s)
}

fn message(id: u64, op: Vec<u8>, controls: Option<Vec<u8>>) -> Vec<u8> {
    let mut body = int(id);
    body.extend(op);
    if let Some(c) = controls {
        body.extend(tlv(0xa0, &c));
    }
    tlv(0x30, &body)
}

fn result_op(app: u8, rc: u32, text: &str, referral: Option<&str>) -> Vec<u8> {
    let mut body = enumerated(rc);
    body.extend(os(b""));
    body.extend(os(text.as_bytes()));
    if let Some(r) = referral {
        body.extend(tlv(0xa3, &os(r.as_bytes())));
    }
    tlv(app, &body)
}

fn entry_op(dn: &str, attrs: &[(&str, Vec<String>)]) -> Vec<u8> {
    let mut list = Vec::new();
    for (name, values) in attrs {
        let mut vals = Vec::new();
        for v in values {
            vals.extend(os(v.as_bytes()));
        }
        let mut pa = os(name.as_bytes());
        pa.extend(tlv(0x31, &vals));
        list.extend(tlv(0x30, &pa));
    }
    let mut body = os(dn.as_bytes());
    body.extend(tlv(0x30, &list));
    tlv(0x64, &body)
}

fn paged_control(cookie: &[u8]) -> Vec<u8> {
    let mut val = int(0);
    val.extend(os(cookie));
    let mut c = os(b"1.2.840.113556.1.4.319");
    c.extend(os(&tlv(0x30, &val)));
    tlv(0x30, &c)
}

// ---------------------------------------------------------------- server

async fn read_message(sock: &mut TcpStream) -> Option<Vec<u8>> {
    let mut head = [0u8; 2];
    sock.read_exact(&mut head).await.ok()?;
    let mut buf = head.to_vec();
    let len = if head[1] & 0x80 == 0 {
        head[1] as usize
    } else {
        let n = (head[1] & 0x7f) as usize;
        let mut lb = vec![0u8; n];
        sock.read_exact(&mut lb).await.ok()?;
        buf.extend(&lb);
        lb.iter().fold(0usize, |a, b| (a << 8) | *b as usize)
    };
    let mut body = vec![0u8; len];
    sock.read_exact(&mut body).await.ok()?;
    buf.extend(body);
    Some(buf)
}

struct Request {
    id: u64,
    op: StructureTag,
    cookie: Option<Vec<u8>>,
}

fn parse_request(bytes: &[u8]) -> Option<Request> {
    let (_, tag) = parse_tag(bytes).ok()?;
    let mut parts = tag.expect_constructed()?.into_iter();
    let id_bytes = parts.next()?.expect_primitive()?;
    let id = id_bytes.iter().fold(0u64, |a, b| (a << 8) | *b as u64);
    let op = parts.next()?;
    let mut cookie = None;
    if let Some(ctrls) = parts.next() {
        if ctrls.class == TagClass::Context && ctrls.id == 0 {
            for c in ctrls.expect_constructed()? {
                let mut f = c.expect_constructed()?.into_iter();
                let oid = f.next()?.expect_primitive()?;
                if oid == b"1.2.840.113556.1.4.319" {
                    // [oid, criticality?, value]: the value is the last element.
                    let val = f.last()?.expect_primitive()?;
                    let (_, v) = parse_tag(&val).ok()?;
                    let mut vp = v.expect_constructed()?.into_iter();
                    vp.next();
                    cookie = Some(vp.next()?.expect_primitive()?);
                }
            }
        }
    }
    Some(Request { id, op, cookie })
}

async fn serve(mut sock: TcpStream, script: Script, log: Arc<Mutex<Vec<String>>>) -> Option<()> {
    let world = world();
    let mut fault = script.fault.clone();
    loop {
        let bytes = read_message(&mut sock).await?;
        let req = parse_request(&bytes)?;
        match req.op.id {
            0 => {
                // bind
                if script.bind_hangs {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                }
                let text = if script.bind_rc == 0 {
                    ""
                } else {
                    "mock says no"
                };
                let out = message(req.id, result_op(0x61, script.bind_rc, text, None), None);
                sock.write_all(&out).await.ok()?;
            }
            2 => return Some(()), // unbind
            3 => {
                let mut fields = req.op.clone().expect_constructed()?.into_iter();
                let base = String::from_utf8(fields.next()?.expect_primitive()?).ok()?;
                let scope = fields
                    .next()?
                    .expect_primitive()?
                    .first()
                    .copied()
                    .unwrap_or(0);
                let paged = req.cookie.is_some();
                let offset: usize = req
                    .cookie
                    .as_deref()
                    .and_then(|c| std::str::from_utf8(c).ok())
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(0);
                let page = offset as u32 + 1;
                log.lock()
                    .ok()?
                    .push(format!("{base} scope={scope} page={page}"));
                let matching: Vec<(&String, &Attrs)> = world
                    .iter()
                    .filter(|(dn, _)| {
                        if scope == 0 {
                            dn.eq_ignore_ascii_case(&base)
                        } else {
                            under(dn, &base)
                        }
                    })
                    .collect();
                let exists = world.keys().any(|dn| dn.eq_ignore_ascii_case(&base));
                let (slice, next): (Vec<_>, Option<usize>) = if paged {
                    let s: Vec<_> = matching.iter().skip(offset).take(1).cloned().collect();
                    let next = (offset + 1 < matching.len()).then_some(offset + 1);
                    (s, next)
                } else {
                    (matching.clone(), None)
                };
                let this_fault = match &fault {
                    Some(f)
                        if scope != 0
                            && f.base.eq_ignore_ascii_case(&base)
                            && matches!(f.fault, Fault::EndlessPaging) =>
                    {
                        // Every page: no entries, "there is more".
                        let out = message(
                            req.id,
                            result_op(0x65, 0, "", None),
                            Some(paged_control(b"again")),
                        );
                        sock.write_all(&out).await.ok()?;
                        continue;
                    }
                    Some(f)
                        if scope != 0 && f.base.eq_ignore_ascii_case(&base) && f.page == page =>
                    {
                        let f = f.fault.clone();
                        fault = None;
                        Some(f)
                    }
                    _ => None,
                };
                let mut out = Vec::new();
                match this_fault {
                    Some(Fault::Hang) => {
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                    }
                    Some(Fault::MalformedEntry) => {
                        out.extend(message(req.id, tlv(0x64, &os(b"uid=ana,cn=users")), None));
                    }
                    Some(Fault::BadMemberDn) => {
                        // A group of its own: the page's regular entries follow, and
                        // one DN twice would be refused for that reason first.
                        let e = entry_op(
                            &format!("cn=mm_x_bad,{GROUPS}"),
                            &[
                                ("cn", vec!["mm_x_bad".into()]),
                                ("ipaUniqueID", vec!["id-bad".into()]),
                                ("member", vec!["uid=ana,cn=users,".into()]),
                            ],
                        );
                        out.extend(message(req.id, e, None));
                    }
                    Some(Fault::Reference(uri)) => {
                        out.extend(message(req.id, tlv(0x73, &os(uri.as_bytes())), None));
                    }
                    _ => {}
                }
                for (dn, attrs) in &slice {
                    out.extend(message(req.id, entry_op(dn, attrs), None));
                }
                match this_fault {
                    Some(Fault::Drop) => {
                        sock.write_all(&out).await.ok()?;
                        sock.flush().await.ok()?;
                        return Some(());
                    }
                    Some(Fault::ResultCode(rc, text)) => {
                        let referral = (rc == 10).then_some("ldap://elsewhere.example.org/");
                        out.extend(message(req.id, result_op(0x65, rc, text, referral), None));
                    }
                    _ => {
                        let rc = if exists || scope != 0 { 0 } else { 32 };
                        let ctrl = paged.then(|| {
                            paged_control(
                                next.map(|n| n.to_string()).unwrap_or_default().as_bytes(),
                            )
                        });
                        out.extend(message(req.id, result_op(0x65, rc, "", None), ctrl));
                    }
                }
                sock.write_all(&out).await.ok()?;
            }
            _ => {
                // Anything else (abandon, extended): ignore.
            }
        }
    }
}
