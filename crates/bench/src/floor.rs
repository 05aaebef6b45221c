//! The raw floor: the API calls a full reconcile cannot avoid, made in a tight loop with
//! no planning, no ledger and no directory. It knows the desired state from the generator
//! (`expected.json`), finds teams and channels by listing them (200 per page), resolves the
//! wanted usernames in large batches, lists the members of every linked team and channel,
//! and adds what is missing with the server's largest batches (256 per team call, 1000 per
//! channel call). One request in flight at a time, like mattersync; one kept-alive
//! connection.

use crate::world::Expected;
use anyhow::{bail, Context, Result};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
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
    pub calls: u64,
    pub writes: u64,
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
            calls: 0,
            writes: 0,
        })
    }

    async fn send<T: DeserializeOwned>(
        &mut self,
        req: reqwest::RequestBuilder,
        what: &str,
    ) -> Result<T> {
        self.calls += 1;
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

    async fn get<T: DeserializeOwned>(&mut self, path: &str) -> Result<T> {
        let req = self.http.get(format!("{}{path}", self.base));
        self.send(req, &format!("GET {path}")).await
    }

    async fn post<T: DeserializeOwned>(
        &mut self,
        path: &str,
        body: &impl serde::Serialize,
        write: bool,
    ) -> Result<T> {
        if write {
            self.writes += 1;
        }
        let req = self.http.post(format!("{}{path}", self.base)).json(body);
        self.send(req, &format!("POST {path}")).await
    }

    async fn pages<T: DeserializeOwned>(&mut self, path: &str) -> Result<Vec<T>> {
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

/// The unavoidable reads.
pub async fn read(raw: &mut Raw, want: &Expected) -> Result<Actual> {
    let teams: Vec<Named> = raw.pages("/teams").await?;
    let team_ids: BTreeMap<String, String> = teams.into_iter().map(|t| (t.name, t.id)).collect();
    let team_names: BTreeMap<&String, &String> =
        team_ids.iter().map(|(name, id)| (id, name)).collect();
    let channels: Vec<Named> = raw.pages("/channels?include_deleted=true").await?;
    let mut channel_ids = BTreeMap::new();
    for c in channels {
        if let Some(team) = team_names.get(&c.team_id) {
            channel_ids.insert(format!("{team}/{}", c.name), c.id);
        }
    }
    let names: Vec<&String> = want.wanted_usernames().into_iter().collect();
    let mut user_ids = BTreeMap::new();
    for chunk in names.chunks(USERNAMES_PER_CALL) {
        let users: Vec<User> = raw.post("/users/usernames", &chunk, false).await?;
        user_ids.extend(users.into_iter().map(|u| (u.username, u.id)));
    }
    let mut team_members = BTreeMap::new();
    for name in &want.team_names {
        let id = team_ids
            .get(name)
            .with_context(|| format!("team {name} is missing"))?;
        let m: Vec<Member> = raw.pages(&format!("/teams/{id}/members")).await?;
        team_members.insert(name.clone(), current(m));
    }
    let mut channel_members = BTreeMap::new();
    for path in &want.channel_paths {
        let id = channel_ids
            .get(path)
            .with_context(|| format!("channel {path} is missing"))?;
        let m: Vec<Member> = raw.pages(&format!("/channels/{id}/members")).await?;
        channel_members.insert(path.clone(), current(m));
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
pub async fn write(raw: &mut Raw, want: &Expected, actual: &Actual) -> Result<u64> {
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

pub async fn run(url: &str, token: &str, want: &Expected) -> Result<FloorRun> {
    let mut raw = Raw::new(url, token)?;
    let t = Instant::now();
    let actual = read(&mut raw, want).await?;
    let added = write(&mut raw, want, &actual).await?;
    Ok(FloorRun {
        wall_ms: t.elapsed().as_secs_f64() * 1e3,
        calls: raw.calls,
        writes: raw.writes,
        added,
    })
}

/// Differences between the server and the desired state (not timed): memberships missing,
/// and memberships present that nothing wants, over the linked scopes.
pub async fn verify(url: &str, token: &str, want: &Expected) -> Result<(usize, usize)> {
    let mut raw = Raw::new(url, token)?;
    let actual = read(&mut raw, want).await?;
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
