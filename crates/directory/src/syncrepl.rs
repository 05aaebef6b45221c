//! Change notifications from the directory: an RFC 4533 Content Synchronization session
//! (syncrepl, `refreshAndPersist`) and, for servers that do not offer it, the
//! `modifyTimestamp` query a poller runs.
//!
//! A session says *that* something under the watched subtree changed (and where); it does not
//! say what the directory holds. The sync service answers a change by reading a fresh,
//! fail-closed [`LdapDirectory::snapshot`] and comparing it with the last one, so a lost or
//! garbled notification can delay a change, never invent or drop one.
//!
//! Invariant: nothing here panics on what a server sends. ldap3 parses the Sync State and
//! Sync Done controls and the Sync Info message with `expect`/`panic!`; this module parses
//! their BER values itself ([`parse_sync_state`], [`parse_sync_info`], [`parse_sync_done`])
//! and turns anything malformed into a [`DirectoryError::Protocol`].

use std::time::Duration;

use ldap3::asn1::{parse_tag, StructureTag, TagClass, Types, PL};
use ldap3::controls::{MakeCritical, RawControl, RefreshMode, SyncRequest};
use ldap3::exop::WhoAmI;
use ldap3::{LdapError, LdapResult, Scope, SearchStream};
use tracing::debug;

use crate::config::LdapConfig;
use crate::dn::{escape_dn_value, Dn};
use crate::error::{result_code_hint, result_code_name, DirectoryError};
use crate::ldap::{parse_entry, LdapDirectory};

/// The Sync Request control (RFC 4533 §2.2).
pub const SYNC_REQUEST_OID: &str = "1.3.6.1.4.1.4203.1.9.1.1";
/// The Sync State control on each entry (§2.3).
pub const SYNC_STATE_OID: &str = "1.3.6.1.4.1.4203.1.9.1.2";
/// The Sync Done control on the final result (§2.4).
pub const SYNC_DONE_OID: &str = "1.3.6.1.4.1.4203.1.9.1.3";
/// The Sync Info intermediate response (§2.5).
pub const SYNC_INFO_OID: &str = "1.3.6.1.4.1.4203.1.9.1.4";
/// `e-syncRefreshRequired`: the server will not resume from the cookie it was given; the
/// consumer must start again without one (a full refresh).
pub const SYNC_REFRESH_REQUIRED: u32 = 4096;
/// `unavailableCriticalExtension`: the server does not offer a control marked critical.
pub const UNAVAILABLE_CRITICAL_EXTENSION: u32 = 12;

/// How an entry stands, per its Sync State control.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncState {
    /// Unchanged since the cookie (refresh phase only).
    Present,
    Add,
    Modify,
    Delete,
}

/// A Sync State control's value: state, the entry's UUID, and maybe a cookie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncStateValue {
    pub state: SyncState,
    pub uuid: Vec<u8>,
    pub cookie: Option<Vec<u8>>,
}

/// A Sync Info intermediate message (RFC 4533 §2.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncInfo {
    NewCookie(Vec<u8>),
    RefreshDelete {
        cookie: Option<Vec<u8>>,
        refresh_done: bool,
    },
    RefreshPresent {
        cookie: Option<Vec<u8>>,
        refresh_done: bool,
    },
    SyncIdSet {
        cookie: Option<Vec<u8>>,
        refresh_deletes: bool,
        uuids: Vec<Vec<u8>>,
    },
}

/// What one message of a session means to its consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncEvent {
    /// An entry was added, modified or deleted, or (refresh phase) is still present.
    Entry { dn: String, state: SyncState },
    /// Entries named by UUID only: deleted (`deleted`) or still present.
    Uuids { count: usize, deleted: bool },
    /// The refresh phase is over: from here on changes arrive as they happen.
    RefreshDone,
    /// A new cookie and nothing else.
    Cookie,
}

/// One message of a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncUpdate {
    pub event: SyncEvent,
    /// The newest cookie, when this message carried one. A consumer that has acted on every
    /// update up to here may resume from it.
    pub cookie: Option<Vec<u8>>,
    /// Whether the message belongs to the refresh phase.
    pub in_refresh: bool,
}

/// An entry the `modifyTimestamp` query returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Modified {
    pub dn: String,
    /// `modifyTimestamp` as the server wrote it (GeneralizedTime, e.g. `20260101120000Z`).
    pub stamp: String,
}

/// The subtree to watch: the deepest entry that holds both `user_base` and `group_base`
/// (`cn=accounts,<base>` on FreeIPA).
pub fn watch_base(cfg: &LdapConfig) -> Result<String, DirectoryError> {
    let parse = |what: &str, s: &str| {
        Dn::parse(s).map_err(|e| DirectoryError::Config(format!("{what}: {e}")))
    };
    let users = parse("user_base", &cfg.user_base())?;
    let groups = parse("group_base", &cfg.group_base())?;
    for skip in 0..=users.rdns().len() {
        let candidate = suffix(&users, skip);
        let c = parse("user_base", &candidate)?;
        let holds = |d: &Dn| *d == c || d.is_descendant_of(&c);
        if holds(&users) && holds(&groups) {
            return Ok(candidate);
        }
    }
    Ok(String::new())
}

/// The DN of `dn` without its first `skip` RDNs, in RFC 4514 form.
fn suffix(dn: &Dn, skip: usize) -> String {
    let mut out = String::new();
    for (i, rdn) in dn.rdns().iter().skip(skip).enumerate() {
        if i > 0 {
            out.push(',');
        }
        for (j, ava) in rdn.iter().enumerate() {
            if j > 0 {
                out.push('+');
            }
            out.push_str(&ava.attr);
            out.push('=');
            if ava.hex {
                out.push_str(&ava.value);
            } else {
                out.push_str(&escape_dn_value(&ava.value));
            }
        }
    }
    out
}

// ------------------------------------------------------------------ BER parsing

fn ber(val: &[u8], what: &str) -> Result<StructureTag, String> {
    match parse_tag(val) {
        Ok(([], tag)) => Ok(tag),
        Ok(_) => Err(format!("{what}: trailing bytes after the value")),
        Err(_) => Err(format!("{what}: not a BER value")),
    }
}

fn universal(tag: &StructureTag, ty: Types) -> bool {
    tag.class == TagClass::Universal && tag.id == ty as u64
}

fn sequence(val: &[u8], what: &str) -> Result<Vec<StructureTag>, String> {
    let tag = ber(val, what)?;
    if !universal(&tag, Types::Sequence) {
        return Err(format!("{what}: not a SEQUENCE"));
    }
    tag.expect_constructed()
        .ok_or_else(|| format!("{what}: SEQUENCE is not constructed"))
}

fn octets(tag: StructureTag, what: &str) -> Result<Vec<u8>, String> {
    if !universal(&tag, Types::OctetString) {
        return Err(format!("{what}: expected an OCTET STRING"));
    }
    tag.expect_primitive()
        .ok_or_else(|| format!("{what}: constructed OCTET STRING"))
}

fn boolean(tag: StructureTag, what: &str) -> Result<bool, String> {
    if !universal(&tag, Types::Boolean) {
        return Err(format!("{what}: expected a BOOLEAN"));
    }
    match tag.payload {
        PL::P(v) if v.len() == 1 => Ok(v[0] != 0),
        _ => Err(format!("{what}: malformed BOOLEAN")),
    }
}

/// Parses a Sync State control value: `SEQUENCE { state ENUMERATED, entryUUID OCTET STRING,
/// cookie OCTET STRING OPTIONAL }`.
pub fn parse_sync_state(val: &[u8]) -> Result<SyncStateValue, String> {
    const WHAT: &str = "Sync State control";
    let mut parts = sequence(val, WHAT)?.into_iter();
    let state = parts.next().ok_or_else(|| format!("{WHAT}: no state"))?;
    if !universal(&state, Types::Enumerated) {
        return Err(format!("{WHAT}: state is not ENUMERATED"));
    }
    let state = match state.payload {
        PL::P(v) if v.len() == 1 => match v[0] {
            0 => SyncState::Present,
            1 => SyncState::Add,
            2 => SyncState::Modify,
            3 => SyncState::Delete,
            n => return Err(format!("{WHAT}: unknown state {n}")),
        },
        _ => return Err(format!("{WHAT}: malformed state")),
    };
    let uuid = octets(
        parts
            .next()
            .ok_or_else(|| format!("{WHAT}: no entryUUID"))?,
        WHAT,
    )?;
    let cookie = parts.next().map(|t| octets(t, WHAT)).transpose()?;
    if parts.next().is_some() {
        return Err(format!("{WHAT}: unexpected trailing element"));
    }
    Ok(SyncStateValue {
        state,
        uuid,
        cookie,
    })
}

/// Parses a Sync Done control value: `SEQUENCE { cookie OCTET STRING OPTIONAL,
/// refreshDeletes BOOLEAN DEFAULT FALSE }`.
pub fn parse_sync_done(val: &[u8]) -> Result<(Option<Vec<u8>>, bool), String> {
    const WHAT: &str = "Sync Done control";
    let mut cookie = None;
    let mut deletes = false;
    for (i, t) in sequence(val, WHAT)?.into_iter().enumerate() {
        match i {
            0 if universal(&t, Types::OctetString) => cookie = Some(octets(t, WHAT)?),
            0 | 1 if universal(&t, Types::Boolean) => deletes = boolean(t, WHAT)?,
            _ => return Err(format!("{WHAT}: unexpected element {}", i + 1)),
        }
    }
    Ok((cookie, deletes))
}

/// Parses a Sync Info intermediate response (the whole `IntermediateResponse` message,
/// `[APPLICATION 25] SEQUENCE { responseName [0] OPTIONAL, responseValue [1] OPTIONAL }`).
pub fn parse_sync_info(msg: StructureTag) -> Result<SyncInfo, String> {
    const WHAT: &str = "Sync Info message";
    if msg.class != TagClass::Application || msg.id != 25 {
        return Err(format!("{WHAT}: not an intermediate response"));
    }
    let mut value = None;
    for part in msg
        .expect_constructed()
        .ok_or_else(|| format!("{WHAT}: not constructed"))?
    {
        match (part.class, part.id) {
            (TagClass::Context, 0) => {
                let oid = part
                    .expect_primitive()
                    .ok_or_else(|| format!("{WHAT}: malformed responseName"))?;
                if oid != SYNC_INFO_OID.as_bytes() {
                    return Err(format!(
                        "{WHAT}: unexpected intermediate response {:?}",
                        String::from_utf8_lossy(&oid)
                    ));
                }
            }
            (TagClass::Context, 1) => {
                value = Some(
                    part.expect_primitive()
                        .ok_or_else(|| format!("{WHAT}: malformed responseValue"))?,
                );
            }
            _ => return Err(format!("{WHAT}: unexpected element")),
        }
    }
    let value = value.ok_or_else(|| format!("{WHAT}: no value"))?;
    parse_sync_info_value(&value)
}

/// Parses the value of a Sync Info message (the `syncInfoValue` CHOICE).
pub fn parse_sync_info_value(val: &[u8]) -> Result<SyncInfo, String> {
    const WHAT: &str = "Sync Info value";
    let tag = ber(val, WHAT)?;
    if tag.class != TagClass::Context {
        return Err(format!("{WHAT}: not a context-specific choice"));
    }
    let id = tag.id;
    let parts = match (id, tag.payload) {
        (0, PL::P(cookie)) => return Ok(SyncInfo::NewCookie(cookie)),
        (1..=3, PL::C(parts)) => parts,
        (0..=3, _) => return Err(format!("{WHAT}: choice [{id}] has the wrong form")),
        _ => return Err(format!("{WHAT}: unknown choice [{id}]")),
    };
    let mut cookie = None;
    // refreshDone defaults to TRUE, refreshDeletes to FALSE.
    let mut flag = id != 3;
    let mut uuids = None;
    // Elements come in order: cookie, flag, (for syncIdSet) the UUID set; each optional but
    // the set.
    let mut next_slot = 0;
    for t in parts {
        let slot = if universal(&t, Types::OctetString) {
            0
        } else if universal(&t, Types::Boolean) {
            1
        } else if universal(&t, Types::Set) && id == 3 {
            2
        } else {
            return Err(format!("{WHAT}: unexpected element in choice [{id}]"));
        };
        if slot < next_slot {
            return Err(format!("{WHAT}: elements out of order in choice [{id}]"));
        }
        next_slot = slot + 1;
        match slot {
            0 => cookie = Some(octets(t, WHAT)?),
            1 => flag = boolean(t, WHAT)?,
            _ => {
                let set = t
                    .expect_constructed()
                    .ok_or_else(|| format!("{WHAT}: malformed syncUUIDs"))?;
                uuids = Some(
                    set.into_iter()
                        .map(|u| octets(u, WHAT))
                        .collect::<Result<Vec<_>, _>>()?,
                );
            }
        }
    }
    Ok(match id {
        1 => SyncInfo::RefreshDelete {
            cookie,
            refresh_done: flag,
        },
        2 => SyncInfo::RefreshPresent {
            cookie,
            refresh_done: flag,
        },
        _ => SyncInfo::SyncIdSet {
            cookie,
            refresh_deletes: flag,
            uuids: uuids.ok_or_else(|| format!("{WHAT}: syncIdSet without syncUUIDs"))?,
        },
    })
}

// ------------------------------------------------------------------ the session

/// An open `refreshAndPersist` search. Dropping it closes the connection.
pub struct SyncSession {
    dir: LdapDirectory,
    stream: SearchStream<'static, String, Vec<String>>,
    op: String,
    refreshing: bool,
    resumed: bool,
    heartbeat: Duration,
}

impl std::fmt::Debug for SyncSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncSession")
            .field("op", &self.op)
            .field("refreshing", &self.refreshing)
            .field("resumed", &self.resumed)
            .finish_non_exhaustive()
    }
}

fn sync_refresh_required(op: &str, res: &LdapResult) -> DirectoryError {
    DirectoryError::Operation {
        op: op.to_string(),
        rc: SYNC_REFRESH_REQUIRED,
        reason: "sync refresh required",
        detail: if res.text.trim().is_empty() {
            String::new()
        } else {
            format!(": {}", res.text.trim())
        },
        hint: "; the server will not resume from the saved cookie: start again without it",
    }
}

fn result_error(op: &str, res: &LdapResult) -> DirectoryError {
    if res.rc == SYNC_REFRESH_REQUIRED {
        return sync_refresh_required(op, res);
    }
    DirectoryError::Operation {
        op: op.to_string(),
        rc: res.rc,
        reason: result_code_name(res.rc),
        detail: if res.text.trim().is_empty() {
            String::new()
        } else {
            format!(": {}", res.text.trim())
        },
        hint: match res.rc {
            UNAVAILABLE_CRITICAL_EXTENSION => {
                "; the server does not offer Content Synchronization (syncrepl): enable the \
                 Content Synchronization and Retro Changelog plugins, or poll instead"
            }
            rc => result_code_hint(rc),
        },
    }
}

impl LdapDirectory {
    /// Whether the root DSE lists the Sync Request control among `supportedControl`.
    pub async fn supports_syncrepl(&mut self) -> Result<bool, DirectoryError> {
        let entries = self
            .search(
                "",
                Scope::Base,
                "(objectClass=*)",
                &["supportedControl".to_string()],
                false,
            )
            .await?;
        let mut found = false;
        for e in &entries {
            found |= e
                .strings("supportedControl")?
                .iter()
                .any(|c| c.trim() == SYNC_REQUEST_OID);
        }
        Ok(found)
    }

    /// Starts a `refreshAndPersist` session over everything under `base` that matches
    /// `filter` (no attributes are read: a change is a reason to read a snapshot, not the
    /// data). With `cookie` the server sends only what changed since it; a server that
    /// refuses the cookie ends the session with [`SYNC_REFRESH_REQUIRED`]. While nothing
    /// arrives, a WhoAmI every `heartbeat` proves the connection is alive.
    pub async fn sync_session(
        mut self,
        base: &str,
        filter: &str,
        cookie: Option<Vec<u8>>,
        heartbeat: Duration,
    ) -> Result<SyncSession, DirectoryError> {
        let op = format!("sync session under {base:?} for {filter}");
        let resumed = cookie.is_some();
        let ctrl: RawControl = SyncRequest {
            mode: RefreshMode::RefreshAndPersist,
            cookie,
            reload_hint: false,
        }
        .critical()
        .into();
        let attrs = vec!["1.1".to_string()];
        let started = self
            .handle()
            .with_controls(vec![ctrl])
            .streaming_search(base, Scope::Subtree, filter, attrs)
            .await;
        let stream = match started {
            Ok(s) => s,
            Err(e) => return Err(self.op_error(&op, e)),
        };
        debug!(%op, resumed, "sync session started");
        Ok(SyncSession {
            dir: self,
            stream,
            op,
            refreshing: true,
            resumed,
            heartbeat,
        })
    }

    /// Entries under `base` with `modifyTimestamp >= since` (GeneralizedTime), for servers
    /// without syncrepl. Fail closed like every search.
    pub async fn modified_since(
        &mut self,
        base: &str,
        since: &str,
    ) -> Result<Vec<Modified>, DirectoryError> {
        if since.is_empty()
            || !since
                .bytes()
                .all(|b| b.is_ascii_digit() || matches!(b, b'Z' | b'.' | b'+' | b'-'))
        {
            return Err(DirectoryError::Config(format!(
                "{since:?} is not a GeneralizedTime"
            )));
        }
        let filter = format!("(modifyTimestamp>={since})");
        let entries = self
            .search(
                base,
                Scope::Subtree,
                &filter,
                &["modifyTimestamp".to_string()],
                true,
            )
            .await?;
        entries
            .iter()
            .map(|e| {
                Ok(Modified {
                    dn: e.dn.to_string(),
                    stamp: e.first("modifyTimestamp")?.unwrap_or_default(),
                })
            })
            .collect()
    }
}

impl SyncSession {
    /// Whether the session was started with a cookie (an incremental refresh).
    pub fn resumed(&self) -> bool {
        self.resumed
    }

    /// Whether the refresh phase is still going on.
    pub fn refreshing(&self) -> bool {
        self.refreshing
    }

    /// The next message. Every error ends the session: connect again (without the cookie
    /// when the error's result code is [`SYNC_REFRESH_REQUIRED`]).
    pub async fn next(&mut self) -> Result<SyncUpdate, DirectoryError> {
        loop {
            let item = tokio::select! {
                item = self.stream.next() => item,
                _ = tokio::time::sleep(self.heartbeat) => {
                    self.heartbeat_check().await?;
                    continue;
                }
            };
            let re = match item {
                Ok(Some(re)) => re,
                Ok(None) => return Err(self.ended().await),
                Err(e) => return Err(self.dir.op_error(&self.op, e)),
            };
            let in_refresh = self.refreshing;
            if re.is_ref() {
                return Err(DirectoryError::Referral {
                    op: self.op.clone(),
                    refs: "another server".to_string(),
                });
            }
            if re.is_intermediate() {
                let info = parse_sync_info(re.0).map_err(|d| self.protocol(d))?;
                let (event, cookie) = match info {
                    SyncInfo::NewCookie(c) => (SyncEvent::Cookie, Some(c)),
                    SyncInfo::RefreshDelete {
                        cookie,
                        refresh_done,
                    }
                    | SyncInfo::RefreshPresent {
                        cookie,
                        refresh_done,
                    } => {
                        if refresh_done && self.refreshing {
                            self.refreshing = false;
                            (SyncEvent::RefreshDone, cookie)
                        } else {
                            (SyncEvent::Cookie, cookie)
                        }
                    }
                    SyncInfo::SyncIdSet {
                        cookie,
                        refresh_deletes,
                        uuids,
                    } => (
                        SyncEvent::Uuids {
                            count: uuids.len(),
                            deleted: refresh_deletes,
                        },
                        cookie,
                    ),
                };
                return Ok(SyncUpdate {
                    event,
                    cookie,
                    in_refresh,
                });
            }
            let state =
                re.1.iter()
                    .find(|c| c.1.ctype == SYNC_STATE_OID)
                    .ok_or_else(|| {
                        self.protocol("an entry came without a Sync State control".to_string())
                    })?;
            let value = state
                .1
                .val
                .as_deref()
                .ok_or_else(|| self.protocol("Sync State control without a value".into()))?;
            let state = parse_sync_state(value).map_err(|d| self.protocol(d))?;
            let entry = parse_entry(re.0).map_err(|d| self.protocol(d))?;
            return Ok(SyncUpdate {
                event: SyncEvent::Entry {
                    dn: entry.dn.to_string(),
                    state: state.state,
                },
                cookie: state.cookie,
                in_refresh,
            });
        }
    }

    /// Closes the session and the connection.
    pub async fn close(mut self) {
        let _ = self.stream.finish().await;
        self.dir.unbind().await;
    }

    fn protocol(&self, detail: String) -> DirectoryError {
        DirectoryError::Protocol {
            op: self.op.clone(),
            detail,
        }
    }

    /// The server ended the search: its result says why.
    async fn ended(&mut self) -> DirectoryError {
        let res = self.stream.finish().await;
        if res.rc != 0 {
            return result_error(&self.op, &res);
        }
        let done = res
            .ctrls
            .iter()
            .find(|c| c.1.ctype == SYNC_DONE_OID)
            .and_then(|c| c.1.val.as_deref())
            .map(parse_sync_done);
        if let Some(Err(d)) = done {
            return self.protocol(d);
        }
        DirectoryError::ConnectionLost {
            uri: self.dir.config().uri.clone(),
            op: self.op.clone(),
            source: Box::new(LdapError::EndOfStream),
        }
    }

    /// A WhoAmI on the same connection, bounded by the operation timeout.
    async fn heartbeat_check(&mut self) -> Result<(), DirectoryError> {
        let timeout = self.dir.config().timeout();
        let mut ldap = self.dir.handle().clone();
        match ldap.with_timeout(timeout).extended(WhoAmI).await {
            Ok(_) => {
                debug!(op = %self.op, "sync session heartbeat ok");
                Ok(())
            }
            Err(e) => Err(self.dir.op_error("heartbeat (WhoAmI)", e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// BER-encodes a tag (tag numbers below 31, definite lengths).
    fn encode(t: StructureTag) -> Vec<u8> {
        fn enc(t: &StructureTag, out: &mut Vec<u8>) {
            let class = match t.class {
                TagClass::Universal => 0x00,
                TagClass::Application => 0x40,
                TagClass::Context => 0x80,
                TagClass::Private => 0xc0,
            };
            let (form, content) = match &t.payload {
                PL::P(v) => (0x00, v.clone()),
                PL::C(children) => {
                    let mut c = Vec::new();
                    for child in children {
                        enc(child, &mut c);
                    }
                    (0x20, c)
                }
            };
            out.push(class | form | (t.id as u8));
            let len = content.len();
            if len < 128 {
                out.push(len as u8);
            } else {
                let bytes: Vec<u8> = len
                    .to_be_bytes()
                    .into_iter()
                    .skip_while(|b| *b == 0)
                    .collect();
                out.push(0x80 | bytes.len() as u8);
                out.extend(bytes);
            }
            out.extend(content);
        }
        let mut out = Vec::new();
        enc(&t, &mut out);
        out
    }

    fn prim(class: TagClass, id: u64, v: &[u8]) -> StructureTag {
        StructureTag {
            class,
            id,
            payload: PL::P(v.to_vec()),
        }
    }

    fn cons(class: TagClass, id: u64, inner: Vec<StructureTag>) -> StructureTag {
        StructureTag {
            class,
            id,
            payload: PL::C(inner),
        }
    }

    fn os(v: &[u8]) -> StructureTag {
        prim(TagClass::Universal, Types::OctetString as u64, v)
    }

    fn seq(inner: Vec<StructureTag>) -> StructureTag {
        cons(TagClass::Universal, Types::Sequence as u64, inner)
    }

    fn set(inner: Vec<StructureTag>) -> StructureTag {
        cons(TagClass::Universal, Types::Set as u64, inner)
    }

    fn ctx(id: u64, inner: Vec<StructureTag>) -> StructureTag {
        cons(TagClass::Context, id, inner)
    }

    fn enumerated(n: u8) -> StructureTag {
        prim(TagClass::Universal, Types::Enumerated as u64, &[n])
    }

    fn boolean_tag(b: bool) -> StructureTag {
        prim(
            TagClass::Universal,
            Types::Boolean as u64,
            &[if b { 0xff } else { 0 }],
        )
    }

    #[test]
    fn sync_state_values_parse_with_and_without_a_cookie() {
        let v = encode(seq(vec![enumerated(2), os(&[7; 16]), os(b"c1")]));
        assert_eq!(
            parse_sync_state(&v),
            Ok(SyncStateValue {
                state: SyncState::Modify,
                uuid: vec![7; 16],
                cookie: Some(b"c1".to_vec()),
            })
        );
        let v = encode(seq(vec![enumerated(3), os(&[1; 16])]));
        let s = parse_sync_state(&v).expect("parses");
        assert_eq!((s.state, s.cookie), (SyncState::Delete, None));
    }

    #[test]
    fn malformed_sync_state_values_are_errors_not_panics() {
        let cases: Vec<Vec<u8>> = vec![
            vec![],
            vec![0x30],
            vec![0x30, 0x05, 0x0a],
            encode(seq(vec![])),
            encode(seq(vec![enumerated(9), os(&[0; 16])])),
            encode(seq(vec![os(b"x"), os(&[0; 16])])),
            encode(seq(vec![enumerated(1)])),
            encode(seq(vec![enumerated(1), boolean_tag(true)])),
            encode(seq(vec![enumerated(1), os(b"u"), os(b"c"), os(b"extra")])),
            encode(os(b"not a sequence")),
        ];
        for v in cases {
            assert!(parse_sync_state(&v).is_err(), "{v:?}");
        }
    }

    #[test]
    fn sync_info_values_parse_every_choice() {
        let cookie = encode(prim(TagClass::Context, 0, b"nc"));
        assert_eq!(
            parse_sync_info_value(&cookie),
            Ok(SyncInfo::NewCookie(b"nc".to_vec()))
        );
        // refreshDone defaults to TRUE.
        let v = encode(ctx(1, vec![os(b"k")]));
        assert_eq!(
            parse_sync_info_value(&v),
            Ok(SyncInfo::RefreshDelete {
                cookie: Some(b"k".to_vec()),
                refresh_done: true
            })
        );
        let v = encode(ctx(2, vec![boolean_tag(false)]));
        assert_eq!(
            parse_sync_info_value(&v),
            Ok(SyncInfo::RefreshPresent {
                cookie: None,
                refresh_done: false
            })
        );
        let v = encode(ctx(
            3,
            vec![os(b"k"), set(vec![os(&[1; 16]), os(&[2; 16])])],
        ));
        assert_eq!(
            parse_sync_info_value(&v),
            Ok(SyncInfo::SyncIdSet {
                cookie: Some(b"k".to_vec()),
                refresh_deletes: false,
                uuids: vec![vec![1; 16], vec![2; 16]],
            })
        );
    }

    #[test]
    fn malformed_sync_info_values_are_errors_not_panics() {
        let cases: Vec<Vec<u8>> = vec![
            vec![],
            vec![0xa1],
            encode(ctx(5, vec![])),
            encode(ctx(0, vec![os(b"x")])),
            encode(ctx(3, vec![os(b"k")])),
            encode(ctx(1, vec![boolean_tag(true), os(b"k")])),
            encode(ctx(1, vec![set(vec![os(&[1; 16])])])),
            encode(ctx(3, vec![set(vec![boolean_tag(true)])])),
            encode(seq(vec![os(b"k")])),
            encode(prim(
                TagClass::Context,
                1,
                b"primitive where a sequence belongs",
            )),
        ];
        for v in cases {
            assert!(parse_sync_info_value(&v).is_err(), "{v:?}");
        }
    }

    #[test]
    fn sync_info_messages_check_their_oid() {
        let value = encode(ctx(1, vec![os(b"k")]));
        let msg = |oid: &[u8]| StructureTag {
            class: TagClass::Application,
            id: 25,
            payload: PL::C(vec![
                StructureTag {
                    class: TagClass::Context,
                    id: 0,
                    payload: PL::P(oid.to_vec()),
                },
                StructureTag {
                    class: TagClass::Context,
                    id: 1,
                    payload: PL::P(value.clone()),
                },
            ]),
        };
        assert!(matches!(
            parse_sync_info(msg(SYNC_INFO_OID.as_bytes())),
            Ok(SyncInfo::RefreshDelete {
                refresh_done: true,
                ..
            })
        ));
        assert!(parse_sync_info(msg(b"1.2.3")).is_err());
        let no_value = StructureTag {
            class: TagClass::Application,
            id: 25,
            payload: PL::C(vec![]),
        };
        assert!(parse_sync_info(no_value).is_err());
        let primitive = StructureTag {
            class: TagClass::Application,
            id: 25,
            payload: PL::P(vec![1, 2]),
        };
        assert!(parse_sync_info(primitive).is_err());
    }

    #[test]
    fn sync_done_values_parse() {
        assert_eq!(
            parse_sync_done(&encode(seq(vec![os(b"k"), boolean_tag(true)]))),
            Ok((Some(b"k".to_vec()), true))
        );
        assert_eq!(parse_sync_done(&encode(seq(vec![]))), Ok((None, false)));
        assert!(parse_sync_done(&encode(seq(vec![os(b"a"), os(b"b")]))).is_err());
        assert!(parse_sync_done(&[0x04]).is_err());
    }

    #[test]
    fn the_watched_subtree_holds_users_and_groups() {
        let cfg = LdapConfig::new("ldap://x", "dc=rockylinux,dc=org");
        assert_eq!(
            watch_base(&cfg).expect("base"),
            "cn=accounts,dc=rockylinux,dc=org"
        );
        let mut other = cfg.clone();
        other.user_base = Some("ou=People,dc=example,dc=org".into());
        other.group_base = Some("ou=Groups,dc=example,dc=org".into());
        assert_eq!(watch_base(&other).expect("base"), "dc=example,dc=org");
        let mut nested = cfg.clone();
        nested.user_base = Some("ou=x\\,y,dc=example,dc=org".into());
        nested.group_base = Some("cn=g,ou=x\\,y,dc=example,dc=org".into());
        assert_eq!(
            watch_base(&nested).expect("base"),
            "ou=x\\,y,dc=example,dc=org"
        );
    }
}
