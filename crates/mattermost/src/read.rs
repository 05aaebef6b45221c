//! Reads: server version, users, teams, channels, memberships, and the assembled actual
//! state the planner takes.

use crate::client::{seg, Client, Retry};
use crate::error::MmError;
use crate::wire;
use futures_util::future::try_join;
use futures_util::stream::{self, StreamExt, TryStreamExt};
use mattersync_core::{ChannelMember, Mattermost, MmChannel, MmTeam, MmUser};
use reqwest::Method;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;

/// Largest page Mattermost serves (`PerPageMaximum`; larger `per_page` is capped silently).
pub const PER_PAGE: usize = 200;
/// Names or ids per `POST /users/usernames` / `POST /users/ids`. The server sets no count
/// limit; 1000 keeps a body of even 64-character names near 70 KB, well under the default
/// `MaximumPayloadSizeBytes` (300 KB), and the SQL `IN` list far from PostgreSQL's 65535
/// parameters.
pub const USER_BATCH: usize = 1000;
/// A listing longer than this many pages is taken as a server that ignores `page`.
const MAX_PAGES: usize = 100_000;

/// The server version from `X-Version-Id`, e.g. `11.3.0.123.abcdef.false`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServerVersion {
    pub raw: String,
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl ServerVersion {
    pub fn parse(raw: &str) -> ServerVersion {
        let mut parts = raw.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
        ServerVersion {
            raw: raw.to_string(),
            major: parts.next().unwrap_or(0),
            minor: parts.next().unwrap_or(0),
            patch: parts.next().unwrap_or(0),
        }
    }

    /// Whether the server is at least `major.minor.patch`.
    pub fn at_least(&self, major: u32, minor: u32, patch: u32) -> bool {
        (self.major, self.minor, self.patch) >= (major, minor, patch)
    }
}

impl std::fmt::Display for ServerVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// A team as `GET /teams/name/{name}` describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Team {
    pub id: String,
    pub name: String,
    pub display_name: String,
    /// Deleted (archived) team: `delete_at > 0`.
    pub archived: bool,
}

impl From<wire::Team> for Team {
    fn from(t: wire::Team) -> Self {
        Team {
            id: t.id,
            name: t.name,
            display_name: t.display_name,
            archived: t.delete_at > 0,
        }
    }
}

/// A channel as `GET /teams/name/{team}/channels/name/{name}` describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Channel {
    pub id: String,
    pub team_id: String,
    pub name: String,
    pub display_name: String,
    /// Type `P`.
    pub private: bool,
    /// Type `D` (direct message) or `G` (group message): never a link target.
    pub direct: bool,
    /// `delete_at > 0`.
    pub archived: bool,
}

impl From<wire::Channel> for Channel {
    fn from(c: wire::Channel) -> Self {
        Channel {
            id: c.id,
            team_id: c.team_id,
            private: c.kind == "P",
            direct: c.kind == "D" || c.kind == "G",
            name: c.name,
            display_name: c.display_name,
            archived: c.delete_at > 0,
        }
    }
}

/// `Ok(None)` for a 404, so that "does not exist" is not an error.
fn found<T>(r: Result<T, MmError>) -> Result<Option<T>, MmError> {
    match r {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

impl Client {
    /// `GET /system/ping`: the server version from the `X-Version-Id` header.
    pub async fn ping(&self) -> Result<ServerVersion, MmError> {
        let path = "/system/ping";
        let a = self
            .call(Method::GET, path, None, Retry::Idempotent)
            .await?;
        let raw = a
            .headers
            .get("x-version-id")
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| MmError::Decode {
                method: "GET".into(),
                path: format!("/api/v4{path}"),
                status: a.status,
                detail: "no X-Version-Id header: is this a Mattermost server?".into(),
            })?;
        Ok(ServerVersion::parse(raw))
    }

    /// `GET /users/me`: the account the token belongs to.
    pub async fn me(&self) -> Result<MmUser, MmError> {
        let u: wire::User = self.get_json("/users/me").await?;
        Ok(u.into())
    }

    /// `GET /users/{id}`: whether the account has the `system_admin` role. An unknown
    /// account is not one.
    pub async fn is_system_admin(&self, user_id: &str) -> Result<bool, MmError> {
        let path = format!("/users/{}", seg(user_id));
        Ok(found(self.get_json::<wire::UserRoles>(&path).await)?
            .is_some_and(|u| u.roles.split_whitespace().any(|r| r == "system_admin")))
    }

    /// `GET /teams/name/{name}`; `None` when there is no such team.
    pub async fn team_by_name(&self, name: &str) -> Result<Option<Team>, MmError> {
        let path = format!("/teams/name/{}", seg(name));
        Ok(found(self.get_json::<wire::Team>(&path).await)?.map(Team::from))
    }

    /// `GET /teams/{id}`; `None` when there is no such team (any more).
    pub async fn team_by_id(&self, id: &str) -> Result<Option<Team>, MmError> {
        let path = format!("/teams/{}", seg(id));
        Ok(found(self.get_json::<wire::Team>(&path).await)?.map(Team::from))
    }

    /// `GET /users/{user_id}/teams/{team_id}/channels`: the team's channels the user is in
    /// (public and private; not archived ones), which leaving the team takes with it.
    pub async fn user_team_channels(
        &self,
        user_id: &str,
        team_id: &str,
    ) -> Result<Vec<Channel>, MmError> {
        let path = format!("/users/{}/teams/{}/channels", seg(user_id), seg(team_id));
        let rows: Vec<wire::Channel> = self.get_json(&path).await?;
        Ok(rows.into_iter().map(Channel::from).collect())
    }

    /// `GET /channels/{id}`; `None` when there is no such channel (any more). Archived
    /// channels are returned with `archived`.
    pub async fn channel_by_id(&self, id: &str) -> Result<Option<Channel>, MmError> {
        let path = format!("/channels/{}", seg(id));
        Ok(found(self.get_json::<wire::Channel>(&path).await)?.map(Channel::from))
    }

    /// `GET /teams/name/{team}/channels/name/{name}?include_deleted=true`; `None` when the
    /// team or the channel does not exist. Archived channels are returned with `archived`.
    pub async fn channel_by_name(
        &self,
        team: &str,
        name: &str,
    ) -> Result<Option<Channel>, MmError> {
        let path = format!(
            "/teams/name/{}/channels/name/{}?include_deleted=true",
            seg(team),
            seg(name)
        );
        Ok(found(self.get_json::<wire::Channel>(&path).await)?.map(Channel::from))
    }

    /// Runs `f` over `items`, at most [`Client::read_concurrency`] at a time, and returns
    /// the results in the items' order (so what is assembled from them does not depend on
    /// which answer came first). The first error fails the whole read; the others are
    /// dropped unfinished.
    pub(crate) async fn each<I, T, F, Fut>(&self, items: I, mut f: F) -> Result<Vec<T>, MmError>
    where
        I: IntoIterator,
        F: FnMut(I::Item) -> Fut,
        Fut: Future<Output = Result<T, MmError>>,
    {
        // Unordered, so that one slow item does not stop the others from starting; put back
        // in order afterwards.
        let mut done: Vec<(usize, T)> = stream::iter(items.into_iter().enumerate())
            .map(|(i, item)| {
                let fut = f(item);
                async move { fut.await.map(|t| (i, t)) }
            })
            .buffer_unordered(self.read_concurrency())
            .try_collect()
            .await?;
        done.sort_by_key(|(i, _)| *i);
        Ok(done.into_iter().map(|(_, t)| t).collect())
    }

    /// Every page of a listing, `per_page=200`, until a short page; `window` pages are asked
    /// for at a time (1: one after the other, the fewest calls; more: up to `window - 1`
    /// pages past the end are asked for and found empty). An item seen twice means the
    /// pages moved under us (Mattermost pages with `LIMIT/OFFSET`, and someone else may
    /// have been skipped): the listing is read once more from the start, and if that happens
    /// again it is an error. Never a partial list.
    async fn listing<T, K>(&self, path: &str, key: K, window: usize) -> Result<Vec<T>, MmError>
    where
        T: serde::de::DeserializeOwned,
        K: Fn(&T) -> &str,
    {
        let sep = if path.contains('?') { '&' } else { '?' };
        let window = window.max(1);
        let mut dup = String::new();
        for _ in 0..2 {
            let mut seen = BTreeSet::new();
            let mut out = Vec::new();
            let mut complete = false;
            let mut first = 0;
            'pages: while first < MAX_PAGES {
                let pages = first..(first + window).min(MAX_PAGES);
                let answers: Vec<Vec<T>> = self
                    .each(pages.clone(), |page| {
                        let p = format!("{path}{sep}page={page}&per_page={PER_PAGE}");
                        async move { self.get_json::<Vec<T>>(&p).await }
                    })
                    .await?;
                for (page, items) in pages.zip(answers) {
                    let n = items.len();
                    for item in items {
                        if !seen.insert(key(&item).to_string()) {
                            dup = key(&item).to_string();
                            tracing::warn!(path = %path, page, id = %dup, "listed twice while paging; reading again");
                            break 'pages;
                        }
                        out.push(item);
                    }
                    if n < PER_PAGE {
                        complete = true;
                        break 'pages;
                    }
                }
                first += window;
            }
            if complete {
                return Ok(out);
            }
            if dup.is_empty() {
                return Err(MmError::Inconsistent {
                    what: format!("GET /api/v4{path}"),
                    detail: format!(
                        "more than {MAX_PAGES} pages: the server seems to ignore `page`"
                    ),
                });
            }
        }
        Err(MmError::Inconsistent {
            what: format!("GET /api/v4{path}"),
            detail: format!(
                "{dup} was listed twice while paging, in two readings in a row; the list cannot be trusted"
            ),
        })
    }

    /// Current members (not those who left a team) by user id.
    async fn members(&self, path: &str) -> Result<BTreeMap<String, ChannelMember>, MmError> {
        // one page after the other: how many there are is not known before the last one, and
        // the listings of different scopes run side by side instead
        let rows: Vec<wire::Member> = self.listing(path, |m: &wire::Member| &m.user_id, 1).await?;
        Ok(rows
            .into_iter()
            .filter(|m| m.delete_at == 0)
            .map(|m| {
                (
                    m.user_id,
                    ChannelMember {
                        scheme_admin: m.scheme_admin,
                    },
                )
            })
            .collect())
    }

    /// `GET /teams/{id}/members`, all pages: current members (not those who left) by user id.
    pub async fn team_members(
        &self,
        team_id: &str,
    ) -> Result<BTreeMap<String, ChannelMember>, MmError> {
        self.members(&format!("/teams/{}/members", seg(team_id)))
            .await
    }

    /// `GET /channels/{id}/members`, all pages: members by user id.
    pub async fn channel_members(
        &self,
        channel_id: &str,
    ) -> Result<BTreeMap<String, ChannelMember>, MmError> {
        self.members(&format!("/channels/{}/members", seg(channel_id)))
            .await
    }

    async fn users_by(&self, path: &str, keys: &[String]) -> Result<Vec<MmUser>, MmError> {
        let keys: BTreeSet<&String> = keys.iter().filter(|k| !k.is_empty()).collect();
        let keys: Vec<&String> = keys.into_iter().collect();
        let batches = self
            .each(keys.chunks(USER_BATCH), |chunk| async move {
                self.send_json::<_, Vec<wire::User>>(Method::POST, path, chunk, Retry::Idempotent)
                    .await
            })
            .await?;
        let mut out: Vec<MmUser> = batches.into_iter().flatten().map(MmUser::from).collect();
        out.sort_by(|a, b| a.username.cmp(&b.username).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    /// Which of `user_ids` are current members of a team (`scope = "teams"`) or a channel
    /// (`"channels"`), by `POST /{scope}/{id}/members/ids` in batches: one call where a
    /// listing of the whole scope would take one per 200 members. Users not in the answer
    /// are not members; team members who left are not members either.
    async fn members_of(
        &self,
        scope: &str,
        id: &str,
        user_ids: &[String],
    ) -> Result<BTreeMap<String, ChannelMember>, MmError> {
        let ids: BTreeSet<&String> = user_ids.iter().filter(|k| !k.is_empty()).collect();
        let ids: Vec<&String> = ids.into_iter().collect();
        let path = format!("/{scope}/{}/members/ids", seg(id));
        let mut out = BTreeMap::new();
        for chunk in ids.chunks(USER_BATCH) {
            let rows: Vec<wire::Member> = self
                .send_json(Method::POST, &path, chunk, Retry::Idempotent)
                .await?;
            out.extend(rows.into_iter().filter(|m| m.delete_at == 0).map(|m| {
                (
                    m.user_id,
                    ChannelMember {
                        scheme_admin: m.scheme_admin,
                    },
                )
            }));
        }
        Ok(out)
    }

    /// Which of `user_ids` are current members of the team, with their roles.
    pub async fn team_members_of(
        &self,
        team_id: &str,
        user_ids: &[String],
    ) -> Result<BTreeMap<String, ChannelMember>, MmError> {
        self.members_of("teams", team_id, user_ids).await
    }

    /// Which of `user_ids` are members of the channel, with their roles.
    pub async fn channel_members_of(
        &self,
        channel_id: &str,
        user_ids: &[String],
    ) -> Result<BTreeMap<String, ChannelMember>, MmError> {
        self.members_of("channels", channel_id, user_ids).await
    }

    /// `POST /users/ids` in batches of 200. Unknown ids are simply not returned.
    pub async fn users_by_ids(&self, ids: &[String]) -> Result<Vec<MmUser>, MmError> {
        self.users_by("/users/ids", ids).await
    }

    /// `POST /users/usernames` in batches of 200, deactivated accounts and bots included.
    /// Names are lower-cased first (Mattermost stores them lower-case and compares exactly).
    /// Unknown names are simply not returned.
    pub async fn users_by_usernames(&self, usernames: &[String]) -> Result<Vec<MmUser>, MmError> {
        let lower: Vec<String> = usernames.iter().map(|u| u.to_lowercase()).collect();
        self.users_by("/users/usernames", &lower).await
    }

    /// `GET /users`, all pages: every account, bots and deactivated ones included. The
    /// pages are asked for [`Client::read_concurrency`] at a time (at most that many minus
    /// one past the end are asked for and found empty).
    pub async fn all_users(&self) -> Result<Vec<MmUser>, MmError> {
        let users: Vec<wire::User> = self
            .listing("/users", |u: &wire::User| &u.id, self.read_concurrency())
            .await?;
        let mut out: Vec<MmUser> = users.into_iter().map(MmUser::from).collect();
        out.sort_by(|a, b| a.username.cmp(&b.username).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    /// `GET /channels?include_deleted=true`, all pages: every team's public and private
    /// channels, archived ones included (not direct messages). `None` when the token may not
    /// list all channels (it lacks `manage_system`), or when the listing kept moving while it
    /// was paged (channels created meanwhile): the caller then asks for each channel it
    /// needs. A channel the listing missed (one deleted meanwhile shifts the pages) is simply
    /// not in it.
    pub async fn all_channels(&self) -> Result<Option<Vec<Channel>>, MmError> {
        match self
            .listing(
                "/channels?include_deleted=true",
                |c: &wire::Channel| &c.id,
                self.read_concurrency(),
            )
            .await
        {
            Ok(cs) => Ok(Some(cs.into_iter().map(Channel::from).collect())),
            Err(e)
                if e.status()
                    .is_some_and(|s| (400..500).contains(&s) && s != 429) =>
            {
                tracing::debug!(error = %e, "cannot list all channels");
                Ok(None)
            }
            Err(e @ MmError::Inconsistent { .. }) => {
                tracing::debug!(error = %e, "the channel listing moved; asking for each channel");
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// The wanted channels that `GET /channels` (every team's public and private channels,
    /// archived ones included) finds, by `(team, name)`, when listing takes fewer calls than
    /// one `GET /teams/name/{team}/channels/name/{name}` per channel: the first page says how
    /// many channels there are, and the listing stops there when the remaining pages would
    /// outnumber the channels still wanted. Whatever it does not find (or everything, when
    /// the token may not list all channels) is looked up by name, so a listing that moved
    /// while being paged costs calls, never a channel.
    async fn channels_listed(
        &self,
        team_names: &BTreeMap<&str, &str>,
        wanted: &BTreeSet<(&str, &str)>,
    ) -> Result<BTreeMap<(String, String), Channel>, MmError> {
        let mut out = BTreeMap::new();
        if wanted.len() < 2 {
            return Ok(out);
        }
        let mut seen = BTreeSet::new();
        let mut keep = |out: &mut BTreeMap<(String, String), Channel>, c: wire::Channel| {
            if !seen.insert(c.id.clone()) {
                return false;
            }
            if let Some(team) = team_names.get(c.team_id.as_str()) {
                if wanted.contains(&(*team, c.name.as_str())) {
                    out.insert((team.to_string(), c.name.clone()), Channel::from(c));
                }
            }
            true
        };
        let first: wire::ChannelsWithCount = match self
            .get_json(&format!(
                "/channels?include_deleted=true&include_total_count=true&page=0&per_page={PER_PAGE}"
            ))
            .await
        {
            Ok(f) => f,
            Err(e)
                if e.status()
                    .is_some_and(|s| (400..500).contains(&s) && s != 429) =>
            {
                tracing::debug!(error = %e, "cannot list all channels; looking each up by name");
                return Ok(out);
            }
            Err(e) => return Err(e),
        };
        let total = usize::try_from(first.total_count).unwrap_or(0);
        let n = first.channels.len();
        for c in first.channels {
            keep(&mut out, c);
        }
        let pages = total.div_ceil(PER_PAGE).max(1);
        if n < PER_PAGE || pages > wanted.len() - out.len() {
            return Ok(out);
        }
        // the rest a window at a time (never past the last page the total implies)
        let last = pages.min(MAX_PAGES);
        let mut first = 1;
        while first < last {
            let window = first..(first + self.read_concurrency()).min(last);
            let answers = self
                .each(window.clone(), |page| async move {
                    self.get_json::<Vec<wire::Channel>>(&format!(
                        "/channels?include_deleted=true&page={page}&per_page={PER_PAGE}"
                    ))
                    .await
                })
                .await?;
            for (page, items) in window.zip(answers) {
                let n = items.len();
                for c in items {
                    if !keep(&mut out, c) {
                        // the pages moved: the by-name look-ups settle the rest
                        tracing::debug!(
                            page,
                            "a channel was listed twice; looking the rest up by name"
                        );
                        return Ok(out);
                    }
                }
                if n < PER_PAGE || out.len() == wanted.len() {
                    return Ok(out);
                }
            }
            first += self.read_concurrency();
        }
        Ok(out)
    }

    /// The actual state the planner needs: the named teams (plus the team of every named
    /// channel) with their members, the named channels (`(team, channel)`, archived ones
    /// included and marked) with their members, and the accounts of `usernames` and of every
    /// member read. A team or channel that does not exist is absent from the result (the
    /// planner reports it); any other error fails the whole read, so a partial state is never
    /// returned.
    ///
    /// Reads run side by side, [`Client::read_concurrency`] at most in flight: the team
    /// look-ups with the account look-ups, then every team's and every channel's member
    /// listing (a channel's look-up, when the channel listing lacks it, just before its
    /// members). The result is assembled in name order, whichever answer came first.
    pub async fn read_state(
        &self,
        teams: &[String],
        channels: &[(String, String)],
        usernames: &[String],
    ) -> Result<Mattermost, MmError> {
        let mut state = Mattermost::default();
        let team_names: BTreeSet<&str> = teams
            .iter()
            .map(String::as_str)
            .chain(channels.iter().map(|(t, _)| t.as_str()))
            .collect();
        let (found, accounts) = try_join(
            self.each(team_names, |name| async move {
                Ok((name, self.team_by_name(name).await?))
            }),
            self.users_by_usernames(usernames),
        )
        .await?;
        let mut live = Vec::new();
        for (name, team) in found {
            match team {
                None => tracing::debug!(team = %name, "team not found"),
                Some(t) if t.archived => {
                    tracing::warn!(team = %name, "team is archived; treated as absent")
                }
                Some(t) => live.push((name, t)),
            }
        }
        let team_ids: BTreeMap<&str, &str> = live
            .iter()
            .map(|(name, t)| (t.id.as_str(), *name))
            .collect();
        let wanted: BTreeSet<(&str, &str)> = channels
            .iter()
            .map(|(t, c)| (t.as_str(), c.as_str()))
            .collect();
        let team_members = self.each(&live, |(_, t)| self.team_members(&t.id));
        let channel_members = async {
            let mut listed = self.channels_listed(&team_ids, &wanted).await?;
            self.each(&wanted, |&(team, name)| {
                let known = listed.remove(&(team.to_string(), name.to_string()));
                async move {
                    let ch = match known {
                        Some(c) => Some(c),
                        None => self.channel_by_name(team, name).await?,
                    };
                    let Some(ch) = ch else {
                        tracing::debug!(channel = %format!("{team}/{name}"), "channel not found");
                        return Ok(None);
                    };
                    let members = self.channel_members(&ch.id).await?;
                    Ok(Some((team, name, ch, members)))
                }
            })
            .await
        };
        let (team_members, channel_members) = try_join(team_members, channel_members).await?;
        for ((name, team), members) in live.into_iter().zip(team_members) {
            state.teams.insert(
                name.to_string(),
                MmTeam {
                    id: team.id,
                    name: name.to_string(),
                    members,
                },
            );
        }
        for (team, name, ch, members) in channel_members.into_iter().flatten() {
            let c = MmChannel {
                id: ch.id,
                team: team.to_string(),
                name: name.to_string(),
                private: ch.private,
                archived: ch.archived,
                members,
            };
            state.channels.insert(c.path(), c);
        }

        for u in accounts {
            state.users.insert(u.id.clone(), u);
        }
        let missing: BTreeSet<String> = state
            .teams
            .values()
            .flat_map(|t| t.members.keys())
            .chain(state.channels.values().flat_map(|c| c.members.keys()))
            .filter(|id| !state.users.contains_key(*id))
            .cloned()
            .collect();
        let missing: Vec<String> = missing.into_iter().collect();
        for u in self.users_by_ids(&missing).await? {
            state.users.insert(u.id.clone(), u);
        }
        Ok(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_versions_parse() {
        let v = ServerVersion::parse("11.3.0.20260113.9e1d4c2.false");
        assert_eq!((v.major, v.minor, v.patch), (11, 3, 0));
        assert!(v.at_least(9, 1, 0));
        assert!(!v.at_least(11, 4, 0));
        assert_eq!(v.to_string(), "11.3.0");
        let v = ServerVersion::parse("garbage");
        assert_eq!((v.major, v.minor, v.patch), (0, 0, 0));
    }
}

/// Whether this server keeps `auth_data` to itself: among the accounts read, some signed in
/// with `auth_service` and none of them shows its `auth_data` (Mattermost 9.9 blanks it in
/// every user it returns, system admins' reads included; 11.x shows it to system admins).
/// Detected by what the server answers, not by its version; with no such account it cannot
/// be told, and the answer is false.
pub fn hides_auth_data<'a>(
    users: impl IntoIterator<Item = &'a MmUser>,
    auth_service: &str,
) -> bool {
    let mut signed_in = users
        .into_iter()
        .filter(|u| !u.is_bot && u.auth_service == auth_service)
        .peekable();
    signed_in.peek().is_some() && signed_in.all(|u| u.auth_data.is_empty())
}

#[cfg(test)]
mod auth_data_tests {
    use super::hides_auth_data;
    use mattersync_core::MmUser;

    fn user(service: &str, data: &str) -> MmUser {
        MmUser {
            id: format!("{service}-{data}"),
            username: data.to_string(),
            auth_service: service.to_string(),
            auth_data: data.to_string(),
            ..MmUser::default()
        }
    }

    #[test]
    fn auth_data_counts_as_hidden_only_when_every_account_of_the_service_lacks_it() {
        let hidden = [user("gitlab", ""), user("gitlab", ""), user("", "")];
        assert!(hides_auth_data(&hidden, "gitlab"));
        let shown = [user("gitlab", ""), user("gitlab", "alice")];
        assert!(!hides_auth_data(&shown, "gitlab"));
        // No account of that service: nothing to tell from.
        assert!(!hides_auth_data(&[user("saml", "")], "gitlab"));
        assert!(!hides_auth_data(&[], "gitlab"));
    }
}
