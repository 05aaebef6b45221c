//! A test's own subtree on the real 389-ds, `cn=mattersync-dirtest-…,<base>`, beside (never
//! inside) the shared seed. Everything created is deleted when the `Sandbox` is dropped, also
//! after a failed assertion.

use std::collections::HashSet;

use ldap3::controls::{ManageDsaIt, RawControl};
use ldap3::{Ldap, LdapConnAsync};
use mattersync_directory::{escape_dn_value, LdapConfig};

use super::{unique, Dirsrv};

pub struct Sandbox {
    pub dirsrv: Dirsrv,
    /// The sandbox's own suffix: `cn=mattersync-dirtest-…,<base>`.
    pub base: String,
    pub users: String,
    pub groups: String,
    pub reader_dn: String,
    pub reader_password: String,
    admin: Ldap,
    /// DNs in creation order, and whether deleting needs ManageDsaIT (referral entries).
    created: Vec<(String, bool)>,
    ids: u32,
}

pub async fn admin_connection(d: &Dirsrv) -> Ldap {
    let (conn, mut ldap) = LdapConnAsync::new(&d.url).await.expect("ldap connect");
    ldap3::drive!(conn);
    ldap.simple_bind(&d.bind_dn, &d.password())
        .await
        .and_then(|r| r.success())
        .expect("bind as Directory Manager");
    ldap
}

fn set(values: &[&str]) -> HashSet<String> {
    values.iter().map(|s| s.to_string()).collect()
}

impl Sandbox {
    /// The subtree with `cn=users` and `cn=groups` containers and a `reader` account that
    /// may read (only) the subtree; `reader_size_limit` sets its server-side nsSizeLimit.
    pub async fn new(d: &Dirsrv, reader_size_limit: Option<u32>) -> Sandbox {
        let name = unique("sandbox");
        let base = format!("cn={},{}", escape_dn_value(&name), d.base_dn);
        let reader_dn = format!("uid=reader,{base}");
        let mut s = Sandbox {
            dirsrv: d.clone(),
            users: format!("cn=users,{base}"),
            groups: format!("cn=groups,{base}"),
            reader_password: format!("Rd-{name}"),
            reader_dn: reader_dn.clone(),
            base: base.clone(),
            admin: admin_connection(d).await,
            created: Vec::new(),
            ids: 0,
        };
        let aci = format!(
            "(targetattr=\"*\")(version 3.0; acl \"{name} read\"; allow (read, search, compare) \
             userdn=\"ldap:///{reader_dn}\";)"
        );
        s.add(
            &base,
            vec![
                ("objectClass", set(&["top", "nsContainer"])),
                ("cn", set(&[&name])),
                ("aci", set(&[&aci])),
            ],
        )
        .await;
        for c in ["users", "groups"] {
            s.add(
                &format!("cn={c},{base}"),
                vec![
                    ("objectClass", set(&["top", "nsContainer"])),
                    ("cn", set(&[c])),
                ],
            )
            .await;
        }
        let pw = s.reader_password.clone();
        let mut reader = vec![
            (
                "objectClass",
                set(&["top", "person", "organizationalperson", "inetorgperson"]),
            ),
            ("uid", set(&["reader"])),
            ("cn", set(&["reader"])),
            ("sn", set(&["reader"])),
            ("userPassword", set(&[&pw])),
        ];
        if let Some(n) = reader_size_limit {
            reader.push(("nsSizeLimit", set(&[&n.to_string()])));
        }
        s.add(&reader_dn, reader).await;
        s
    }

    pub async fn add(&mut self, dn: &str, attrs: Vec<(&str, HashSet<String>)>) {
        self.add_with(dn, attrs, false).await
    }

    async fn add_with(&mut self, dn: &str, attrs: Vec<(&str, HashSet<String>)>, referral: bool) {
        let attrs: Vec<(String, HashSet<String>)> =
            attrs.into_iter().map(|(a, v)| (a.to_string(), v)).collect();
        let res = self.admin.add(dn, attrs).await.and_then(|r| r.success());
        if let Err(e) = res {
            panic!("sandbox: add {dn}: {e}");
        }
        self.created.push((dn.to_string(), referral));
    }

    pub fn user_dn(&self, uid: &str) -> String {
        format!("uid={},{}", escape_dn_value(uid), self.users)
    }

    pub fn group_dn(&self, cn: &str) -> String {
        format!("cn={},{}", escape_dn_value(cn), self.groups)
    }

    /// A FreeIPA-like user.
    pub async fn user(&mut self, uid: &str, disabled: bool) -> String {
        let dn = self.user_dn(uid);
        let mail = format!("{uid}@example.org");
        let mut attrs = vec![
            (
                "objectClass",
                set(&[
                    "top",
                    "person",
                    "organizationalperson",
                    "inetorgperson",
                    "inetuser",
                ]),
            ),
            ("uid", set(&[uid])),
            ("cn", set(&[uid])),
            ("sn", set(&[uid])),
            ("mail", set(&[&mail])),
        ];
        if disabled {
            attrs.push(("nsAccountLock", set(&["TRUE"])));
        }
        self.add(&dn, attrs).await;
        dn
    }

    /// A FreeIPA-like group entry at `dn` (FAS when `fas`), with `member` and `memberManager`.
    pub async fn group_at(
        &mut self,
        dn: &str,
        cn: &str,
        fas: bool,
        members: &[String],
        managers: &[String],
    ) -> String {
        self.ids += 1;
        let id = format!("{}-{}", unique("id"), self.ids);
        let mut classes = vec![
            "top",
            "groupofnames",
            "nestedgroup",
            "ipausergroup",
            "ipaobject",
        ];
        if fas {
            classes.push("fasgroup");
        }
        let mut attrs = vec![
            ("objectClass", set(&classes)),
            ("cn", set(&[cn])),
            ("description", set(&[&format!("test group {cn}")])),
            ("ipaUniqueID", set(&[&id])),
        ];
        if !members.is_empty() {
            attrs.push(("member", members.iter().cloned().collect()));
        }
        if !managers.is_empty() {
            attrs.push(("memberManager", managers.iter().cloned().collect()));
        }
        self.add(dn, attrs).await;
        dn.to_string()
    }

    pub async fn group(
        &mut self,
        cn: &str,
        fas: bool,
        members: &[String],
        managers: &[String],
    ) -> String {
        let dn = self.group_dn(cn);
        self.group_at(&dn, cn, fas, members, managers).await
    }

    /// Add a member value to an existing group (e.g. to close a cycle).
    pub async fn add_member(&mut self, group_dn: &str, member: &str) {
        self.add_value(group_dn, "member", member).await
    }

    /// Add one value of an attribute to an existing sandbox entry.
    pub async fn add_value(&mut self, dn: &str, attr: &str, value: &str) {
        let res = self
            .admin
            .modify(dn, vec![ldap3::Mod::Add(attr.to_string(), set(&[value]))])
            .await
            .and_then(|r| r.success());
        if let Err(e) = res {
            panic!("sandbox: add {attr} {value} to {dn}: {e}");
        }
    }

    /// Modify an existing sandbox entry.
    pub async fn modify(&mut self, dn: &str, mods: Vec<ldap3::Mod<String>>) {
        let res = self.admin.modify(dn, mods).await.and_then(|r| r.success());
        if let Err(e) = res {
            panic!("sandbox: modify {dn}: {e}");
        }
    }

    /// Delete a sandbox entry now.
    pub async fn delete(&mut self, dn: &str) {
        let res = self.admin.delete(dn).await.and_then(|r| r.success());
        if let Err(e) = res {
            panic!("sandbox: delete {dn}: {e}");
        }
        self.created.retain(|(d, _)| d != dn);
    }

    /// Rename a sandbox entry (a new RDN in the same parent); returns the new DN.
    pub async fn rename(&mut self, dn: &str, rdn: &str) -> String {
        let res = self
            .admin
            .modifydn(dn, rdn, true, None)
            .await
            .and_then(|r| r.success());
        if let Err(e) = res {
            panic!("sandbox: rename {dn} to {rdn}: {e}");
        }
        let parent = dn.split_once(',').map_or("", |(_, p)| p);
        let new = format!("{rdn},{parent}");
        for (d, _) in self.created.iter_mut() {
            if d == dn {
                *d = new.clone();
            }
        }
        new
    }

    /// Hide an entry from the sandbox's reader (an ACI on the entry denying everything).
    pub async fn hide_from_reader(&mut self, dn: &str) {
        let aci = format!(
            "(targetattr=\"*\")(version 3.0; acl \"hide from reader\"; deny (all) \
             userdn=\"ldap:///{}\";)",
            self.reader_dn
        );
        self.add_value(dn, "aci", &aci).await
    }

    /// A smart referral entry (objectClass referral) at `cn=<cn>,<parent>`.
    pub async fn referral(&mut self, parent: &str, cn: &str, uri: &str) {
        let dn = format!("cn={},{parent}", escape_dn_value(cn));
        let attrs: Vec<(String, HashSet<String>)> = vec![
            (
                "objectClass".into(),
                set(&["top", "referral", "extensibleObject"]),
            ),
            ("cn".into(), set(&[cn])),
            ("ref".into(), set(&[uri])),
        ];
        let res = self
            .admin
            .with_controls(RawControl::from(ManageDsaIt))
            .add(&dn, attrs)
            .await
            .and_then(|r| r.success());
        if let Err(e) = res {
            panic!("sandbox: add referral {dn}: {e}");
        }
        self.created.push((dn, true));
    }

    /// Bound as Directory Manager, bases inside the sandbox, FreeIPA attribute names.
    pub fn config(&self) -> LdapConfig {
        let mut c = self.dirsrv.config();
        c.base_dn = self.base.clone();
        c.user_base = Some(self.users.clone());
        c.group_base = Some(self.groups.clone());
        c
    }

    /// The same, bound as the sandbox's reader.
    pub fn reader_config(&self) -> LdapConfig {
        let mut c = self.config();
        c.bind_dn = Some(self.reader_dn.clone());
        c.bind_password_file = None;
        c.bind_password = Some(mattersync_directory::Secret::new(
            self.reader_password.clone(),
        ));
        c
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let created = std::mem::take(&mut self.created);
        let d = self.dirsrv.clone();
        // Delete from a thread with its own runtime: Drop cannot await, and this also runs
        // while a failed assertion unwinds.
        let done = std::thread::spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("sandbox cleanup: no runtime: {e}");
                    return;
                }
            };
            rt.block_on(async move {
                let mut ldap = admin_connection(&d).await;
                for (dn, referral) in created.iter().rev() {
                    if *referral {
                        ldap.with_controls(RawControl::from(ManageDsaIt));
                    }
                    match ldap.delete(dn).await.and_then(|r| r.success()) {
                        Ok(_) => {}
                        Err(e) => eprintln!("sandbox cleanup: delete {dn}: {e}"),
                    }
                }
                let _ = ldap.unbind().await;
            });
        })
        .join();
        if done.is_err() {
            eprintln!("sandbox cleanup panicked");
        }
    }
}
