//! The directory floor: the LDAP reads a full reconcile cannot avoid — one paged subtree
//! search of every group (mm groups and the plain groups they nest, in one go) and one of
//! every user — with no parsing beyond counting entries.

use anyhow::{Context, Result};
use ldap3::adapters::{Adapter, EntriesOnly, PagedResults};
use ldap3::{LdapConnAsync, Scope, SearchEntry};
use std::time::Instant;

#[derive(Debug, Clone, serde::Serialize)]
pub struct DirFloor {
    pub wall_ms: f64,
    pub entries: u64,
    pub searches: u64,
}

pub async fn run(url: &str, bind_dn: &str, password: &str, base: &str) -> Result<DirFloor> {
    let t = Instant::now();
    let (conn, mut ldap) = LdapConnAsync::new(url).await.context("ldap connect")?;
    ldap3::drive!(conn);
    ldap.simple_bind(bind_dn, password)
        .await?
        .success()
        .context("ldap bind")?;
    let mut entries = 0u64;
    let searches: [(String, &str, Vec<&str>); 2] = [
        (
            format!("cn=groups,cn=accounts,{base}"),
            "(objectClass=groupOfNames)",
            vec![
                "objectClass",
                "cn",
                "description",
                "member",
                "memberManager",
                "ipaUniqueID",
            ],
        ),
        (
            format!("cn=users,cn=accounts,{base}"),
            "(uid=*)",
            vec!["uid", "mail", "nsAccountLock"],
        ),
    ];
    for (b, filter, attrs) in &searches {
        let adapters: Vec<Box<dyn Adapter<_, _>>> = vec![
            Box::new(EntriesOnly::new()),
            Box::new(PagedResults::new(500)),
        ];
        let mut s = ldap
            .streaming_search_with(adapters, b, Scope::Subtree, filter, attrs.clone())
            .await?;
        while let Some(e) = s.next().await? {
            let _ = SearchEntry::construct(e);
            entries += 1;
        }
        s.finish().await.success().context("ldap search")?;
    }
    ldap.unbind().await.ok();
    Ok(DirFloor {
        wall_ms: t.elapsed().as_secs_f64() * 1e3,
        entries,
        searches: searches.len() as u64,
    })
}
