//! The raw floor: the API calls a full reconcile cannot avoid, made in a tight loop with
//! no planning, no ledger and no directory. It knows the desired state from the generator
//! (`expected.json`), finds teams and channels by listing them (200 per page), resolves the
//! wanted usernames in large batches, lists the members of every linked team and channel,
//! and adds what is missing with the server's largest batches (256 per team call, 1000 per
//! channel call). The reads run with 1 request in flight (one kept-alive connection: the
//! sequential floor) or N (the listings side by side, pages of one listing in order); the
//! writes are sent one at a time, teams first.

use crate::world::Expected;
use anyhow::{bail, Context, Result};
use futures_util::stream::{self, StreamExt, TryStreamExt};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Largest page Mattermost serves.
pub const PER_PAGE: usize = 200;
/// Usernames per `POST /users/usernames`: the server has no count limit; this keeps the body
/// (about 15 bytes a name) well under `MaximumPayloadSizeBytes` and the SQL `IN` list under
/// PostgreSQL's 65535 parameters.
pub const USERNAMES_PER_CALL: usize = 10_000;
/// `MaxAddMembersBatch` of `POST /teams/{id}/members/batch`.
pub const TEAM_BATCH: usize = 256;
/// `maxListSize` of `POST /channels/{id}/members`.
pub const CHANNEL_BATCH: usize = 1000;

#[derive(Deserialize)]
struct Named {
    id: String,
    name: String,
    #[serde(default)]
    team_id: String,
}

#[derive(Deserialize)]
struct Member {
    user_id: String,
    #[serde(default)]
    delete_at: i64,
}

#[derive(Deserialize)]
struct User {
    id: String,
    username: String,
}

/// A bare REST client that counts its calls.
pub struct Raw {
    http: reqwest::Client,
    base: String,
    calls: AtomicU64,
    writes: AtomicU64,
}

impl Raw {
    pub fn new(url: &str, token: &str) -> Result<Raw> {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert(
            reqwest::header::AUTHORIZATION,
            reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))?,
        );
        let http = reqwest::Client::builder()
            .default_headers(h)
            .timeout(Duration::from_secs(300))
            .build()?;
        Ok(Raw {
            http,
            base: format!("{}/api/v4", url.trim_end_matches('/')),
            calls: AtomicU64::new(0),
            writes: AtomicU64::new(0),
        })
    }

    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }

    async fn send<T: DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
        what: &str,
    ) -> Result<T> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let resp = req.send().await.with_context(|| what.to_string())?;
        let status = resp.status();
        let body = resp.bytes().await.with_context(|| what.to_string())?;
        if !status.is_success() {
            bail!(
                "{what}: HTTP {status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(300)])
            );
        }
        serde_json::from_slice(&body).with_context(|| format!("{what}: decoding the answer"))
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        let req = self.http.get(format!("{}{path}", self.base));
        self.send(req, &format!("GET {path}")).await
    }

    async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl serde::Serialize,
        write: bool,
    ) -> Result<T> {
        if write {
            self.writes.fetch_add(1, Ordering::Relaxed);
        }
        let req = self.http.post(format!("{}{path}", self.base)).json(body);
        self.send(req, &format!("POST {path}")).await
    }

    async fn pages<T: DeserializeOwned>(&self, path: &str) -> Result<Vec<T>> {
        let sep = if path.contains('?') { '&' } else { '?' };
        let mut out = Vec::new();
        for page in 0.. {
            let items: Vec<T> = self
                .get(&format!("{path}{sep}page={page}&per_page={PER_PAGE}"))
                .await?;
            let n = items.len();
            out.extend(items);
            if n < PER_PAGE {
                break;
            }
        }
        Ok(out)
    }
}

/// What the floor read: ids, and the current members of every linked scope.
pub struct Actual {
    pub team_ids: BTreeMap<String, String>,
    pub channel_ids: BTreeMap<String, String>,
    pub user_ids: BTreeMap<String, String>,
    pub team_members: BTreeMap<String, BTreeSet<String>>,
    pub channel_members: BTreeMap<String, BTreeSet<String>>,
}

/// `f` over `items`, `in_flight` at a time (a slow one does not hold the others back),
/// results in the items' order.
async fn each<I, T, F, Fut>(in_flight: usize, items: I, mut f: F) -> Result<Vec<T>>
where
    I: IntoIterator,
    F: FnMut(I::Item) -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut done: Vec<(usize, T)> = stream::iter(items.into_iter().enumerate())
        .map(|(i, item)| {
            let fut = f(item);
            async move { fut.await.map(|t| (i, t)) }
        })
        .buffer_unordered(in_flight.max(1))
        .try_collect()
        .await?;
    done.sort_by_key(|(i, _)| *i);
    Ok(done.into_iter().map(|(_, t)| t).collect())
}

/// The unavoidable reads, `in_flight` requests at a time (1: strictly one after the other).
pub async fn read(raw: &Raw, want: &Expected, in_flight: usize) -> Result<Actual> {
    let names: Vec<&String> = want.wanted_usernames().into_iter().collect();
    let lookups = each(
        in_flight,
        names.chunks(USERNAMES_PER_CALL),
        |chunk| async move {
            raw.post::<Vec<User>>("/users/usernames", &chunk, false)
                .await
        },
    );
    let ids = async {
        let teams: Vec<Named> = raw.pages("/teams").await?;
        let channels: Vec<Named> = if in_flight > 1 {
            // the first page gives the total, the rest side by side
            #[derive(Deserialize)]
            struct WithCount {
                channels: Vec<Named>,
                total_count: i64,
            }
            let first: WithCount = raw
                .get(&format!(
                    "/channels?include_deleted=true&include_total_count=true&page=0&per_page={PER_PAGE}"
                ))
                .await?;
            let pages = usize::try_from(first.total_count)
                .unwrap_or(0)
                .div_ceil(PER_PAGE);
            let rest = each(in_flight, 1..pages.max(1), |page| async move {
                raw.get::<Vec<Named>>(&format!(
                    "/channels?include_deleted=true&page={page}&per_page={PER_PAGE}"
                ))
                .await
            })
            .await?;
            first
                .channels
                .into_iter()
                .chain(rest.into_iter().flatten())
                .collect()
        } else {
            raw.pages("/channels?include_deleted=true").await?
        };
        anyhow::Ok((teams, channels))
    };
    let (users, (teams, channels)) = if in_flight > 1 {
        futures_util::future::try_join(lookups, ids).await?
    } else {
        let ids = ids.await?;
        (lookups.await?, ids)
    };
    let team_ids: BTreeMap<String, String> = teams.into_iter().map(|t| (t.name, t.id)).collect();
    let team_names: BTreeMap<&String, &String> =
        team_ids.iter().map(|(name, id)| (id, name)).collect();
    let mut channel_ids = BTreeMap::new();
    for c in channels {
        if let Some(team) = team_names.get(&c.team_id) {
            channel_ids.insert(format!("{team}/{}", c.name), c.id);
        }
    }
    let user_ids: BTreeMap<String, String> = users
        .into_iter()
        .flatten()
        .map(|u| (u.username, u.id))
        .collect();
    let mut scopes = Vec::new();
    for name in &want.team_names {
        let id = team_ids
            .get(name)
            .with_context(|| format!("team {name} is missing"))?;
        scopes.push((true, name.clone(), format!("/teams/{id}/members")));
    }
    for path in &want.channel_paths {
        let id = channel_ids
            .get(path)
            .with_context(|| format!("channel {path} is missing"))?;
        scopes.push((false, path.clone(), format!("/channels/{id}/members")));
    }
    let listed = each(in_flight, &scopes, |(_, _, p)| async move {
        raw.pages::<Member>(p).await
    })
    .await?;
    let mut team_members = BTreeMap::new();
    let mut channel_members = BTreeMap::new();
    for ((team, name, _), m) in scopes.into_iter().zip(listed) {
        if team {
            team_members.insert(name, current(m));
        } else {
            channel_members.insert(name, current(m));
        }
    }
    Ok(Actual {
        team_ids,
        channel_ids,
        user_ids,
        team_members,
        channel_members,
    })
}

fn current(m: Vec<Member>) -> BTreeSet<String> {
    m.into_iter()
        .filter(|m| m.delete_at == 0)
        .map(|m| m.user_id)
        .collect()
}

/// The user ids of `names` that are not in `present`.
fn missing(
    names: &[String],
    ids: &BTreeMap<String, String>,
    present: Option<&BTreeSet<String>>,
) -> Vec<String> {
    names
        .iter()
        .filter_map(|n| ids.get(n))
        .filter(|id| present.is_none_or(|p| !p.contains(*id)))
        .cloned()
        .collect()
}

/// The unavoidable writes: every missing membership, teams first.
pub async fn write(raw: &Raw, want: &Expected, actual: &Actual) -> Result<u64> {
    let mut added = 0u64;
    for (team, names) in &want.teams {
        let id = &actual.team_ids[team];
        let add = missing(names, &actual.user_ids, actual.team_members.get(team));
        for chunk in add.chunks(TEAM_BATCH) {
            let body: Vec<serde_json::Value> = chunk
                .iter()
                .map(|u| serde_json::json!({"team_id": id, "user_id": u}))
                .collect();
            let _: serde_json::Value = raw
                .post(
                    &format!("/teams/{id}/members/batch?graceful=true"),
                    &body,
                    true,
                )
                .await?;
            added += chunk.len() as u64;
        }
    }
    for (path, names) in &want.channels {
        let id = &actual.channel_ids[path];
        let add = missing(names, &actual.user_ids, actual.channel_members.get(path));
        for chunk in add.chunks(CHANNEL_BATCH) {
            let _: serde_json::Value = raw
                .post(
                    &format!("/channels/{id}/members"),
                    &serde_json::json!({ "user_ids": chunk }),
                    true,
                )
                .await?;
            added += chunk.len() as u64;
        }
    }
    Ok(added)
}

/// One measured floor run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FloorRun {
    pub wall_ms: f64,
    pub calls: u64,
    pub writes: u64,
    pub added: u64,
}

/// One floor run: reads with `in_flight` requests at a time, then the writes in order.
pub async fn run(url: &str, token: &str, want: &Expected, in_flight: usize) -> Result<FloorRun> {
    let raw = Raw::new(url, token)?;
    let t = Instant::now();
    let actual = read(&raw, want, in_flight).await?;
    let added = write(&raw, want, &actual).await?;
    Ok(FloorRun {
        wall_ms: t.elapsed().as_secs_f64() * 1e3,
        calls: raw.calls(),
        writes: raw.writes(),
        added,
    })
}

/// Differences between the server and the desired state (not timed): memberships missing,
/// and memberships present that nothing wants, over the linked scopes.
pub async fn verify(url: &str, token: &str, want: &Expected) -> Result<(usize, usize)> {
    let raw = Raw::new(url, token)?;
    let actual = read(&raw, want, 4).await?;
    let mut missing_n = 0;
    let mut extra_n = 0;
    let scopes = want
        .teams
        .iter()
        .map(|(t, n)| (n, actual.team_members.get(t)))
        .chain(
            want.channels
                .iter()
                .map(|(c, n)| (n, actual.channel_members.get(c))),
        );
    for (names, present) in scopes {
        let wanted: BTreeSet<&String> = names
            .iter()
            .filter_map(|n| actual.user_ids.get(n))
            .collect();
        let present = present.cloned().unwrap_or_default();
        missing_n += wanted.iter().filter(|id| !present.contains(**id)).count();
        extra_n += present.iter().filter(|id| !wanted.contains(id)).count();
    }
    Ok((missing_n, extra_n))
}
