//! Who may do what: the rules of access control, as one pure function over a snapshot of
//! the roles the specs declare.
//!
//! Roles come from the objects themselves: an Organization's `admins`, a Team's
//! `members[].role` (admin, member, viewer) and a Workspace's `owner`. [`Policy`] is a
//! snapshot of them, rebuilt when a spec changes, so a check is a few hash lookups.
//!
//! | who | may |
//! | --- | --- |
//! | a cluster admin (the credential `up` writes) | everything |
//! | an organization admin | everything in the organization, the organization included |
//! | a team admin | read and update the team; create, update, delete and use its workspaces |
//! | a team member | read the team and its workspaces; create, update, delete and use the workspaces they own |
//! | a team viewer | read the team and its workspaces |
//! | anyone else | nothing: another organization's objects are not even listed |
//!
//! A workspace's owner in a team that lists no members counts as a member of it.

use std::collections::{HashMap, HashSet};
use std::fmt;

use coditect_specs::team::MemberRole;
use coditect_specs::{Kind, ObjectKey, Resource};
use serde::Serialize;

/// What a request does to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verb {
    /// get, list, watch, describe; a workspace's API read through the gateway.
    Read,
    /// Create it.
    Create,
    /// Change its spec.
    Update,
    /// Delete it.
    Delete,
    /// Write through the gateway to a workspace (tasks, locks, files, messages).
    Use,
}

impl Verb {
    /// Every verb, for matrices and help.
    pub const ALL: [Verb; 5] = [
        Verb::Read,
        Verb::Create,
        Verb::Update,
        Verb::Delete,
        Verb::Use,
    ];

    /// The verb's name in permissions (`workspaces.delete`).
    pub fn as_str(&self) -> &'static str {
        match self {
            Verb::Read => "read",
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Delete => "delete",
            Verb::Use => "use",
        }
    }

    /// Reads kubectl's words too: get, list and watch are reads; apply and patch update.
    pub fn parse(word: &str) -> Option<Verb> {
        Some(match word.to_ascii_lowercase().as_str() {
            "read" | "get" | "list" | "watch" | "describe" => Verb::Read,
            "create" => Verb::Create,
            "update" | "patch" | "apply" => Verb::Update,
            "delete" => Verb::Delete,
            "use" | "exec" => Verb::Use,
            _ => return None,
        })
    }
}

impl fmt::Display for Verb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who is asking: the user a token names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The user name (as in team members, owners and organization admins).
    pub user: String,
    /// The id of the token presented (never the secret).
    pub token_id: String,
    /// A cluster admin may do everything (the credential `up` writes, and tokens created
    /// with `--cluster-admin`).
    pub cluster_admin: bool,
}

/// The object a request is about, with what the rules need to know of it: for a
/// workspace its team and owner (from the object as it is, or as it would be).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    /// Which object.
    pub key: ObjectKey,
    /// A workspace's team.
    pub team: Option<String>,
    /// A workspace's owner.
    pub owner: Option<String>,
}

impl Subject {
    /// The subject of an object as given (a manifest's, or a stored one).
    pub fn of(r: &Resource) -> Subject {
        let (team, owner) = match r {
            Resource::Workspace(w) => (w.metadata.team.clone(), Some(w.spec.owner.clone())),
            _ => (None, None),
        };
        Subject {
            key: r.key(),
            team,
            owner,
        }
    }

    /// The organization the object belongs to (an organization's is itself).
    pub fn organization(&self) -> &str {
        match self.key.kind {
            Kind::Organization => &self.key.name,
            _ => self.key.organization.as_deref().unwrap_or_default(),
        }
    }
}

/// A refusal, naming the permission that is missing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error(
    "user {user:?} may not {verb} {object}: missing permission {permission} (held by {holders})"
)]
pub struct Denial {
    /// Who asked.
    pub user: String,
    /// What they asked to do.
    pub verb: Verb,
    /// To which object (`workspace/acme/alice-main`).
    pub object: String,
    /// The permission that is missing (`workspaces.delete`).
    pub permission: String,
    /// Who holds it.
    pub holders: String,
}

/// The roles the specs declare, as of one moment.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    org_admins: HashMap<String, HashSet<String>>,
    /// `(org, team)` → user → role.
    teams: HashMap<(String, String), HashMap<String, MemberRole>>,
    /// `(org, workspace)` → (team, owner).
    workspaces: HashMap<(String, String), (String, String)>,
}

impl Policy {
    /// The roles in `objects`.
    pub fn from_resources<'a>(objects: impl IntoIterator<Item = &'a Resource>) -> Policy {
        let mut p = Policy::default();
        for r in objects {
            let org = r.metadata().organization.clone().unwrap_or_default();
            match r {
                Resource::Organization(o) => {
                    p.org_admins.insert(
                        o.metadata.name.clone(),
                        o.spec.admins.iter().cloned().collect(),
                    );
                }
                Resource::Team(t) => {
                    let members = t.spec.members.iter().map(|m| (m.user.clone(), m.role));
                    p.teams
                        .insert((org, t.metadata.name.clone()), members.collect());
                }
                Resource::Migration(_) => {}
                Resource::Workspace(w) => {
                    let team = w.metadata.team.clone().unwrap_or_default();
                    p.workspaces
                        .insert((org, w.metadata.name.clone()), (team, w.spec.owner.clone()));
                }
            }
        }
        p
    }

    /// The stored subject of an existing object (its team and owner as they are).
    pub fn subject(&self, key: &ObjectKey) -> Subject {
        let org = key.organization.clone().unwrap_or_default();
        let (team, owner) = match key.kind {
            Kind::Workspace => self
                .workspaces
                .get(&(org, key.name.clone()))
                .map(|(t, o)| (Some(t.clone()), Some(o.clone())))
                .unwrap_or_default(),
            _ => (None, None),
        };
        Subject {
            key: key.clone(),
            team,
            owner,
        }
    }

    /// Whether `user` is an admin of organization `org`.
    pub fn is_org_admin(&self, org: &str, user: &str) -> bool {
        self.org_admins.get(org).is_some_and(|a| a.contains(user))
    }

    fn role(&self, org: &str, team: &str, user: &str) -> Option<MemberRole> {
        self.teams
            .get(&(org.to_string(), team.to_string()))
            .and_then(|m| m.get(user).copied())
    }

    fn team_is_open(&self, org: &str, team: &str) -> bool {
        self.teams
            .get(&(org.to_string(), team.to_string()))
            .is_none_or(HashMap::is_empty)
    }

    fn has_role_in(&self, org: &str, user: &str) -> bool {
        self.is_org_admin(org, user)
            || self
                .teams
                .iter()
                .any(|((o, _), members)| o == org && members.contains_key(user))
            || self
                .workspaces
                .iter()
                .any(|((o, _), (_, owner))| o == org && owner == user)
    }

    /// Whether `who` may `verb` the subject.
    ///
    /// # Errors
    /// A [`Denial`] naming the missing permission and who holds it.
    pub fn decide(&self, who: &Identity, verb: Verb, s: &Subject) -> Result<(), Denial> {
        if who.cluster_admin || self.is_org_admin(s.organization(), &who.user) {
            return Ok(());
        }
        let org = s.organization();
        let user = who.user.as_str();
        let granted = match s.key.kind {
            Kind::Organization => verb == Verb::Read && self.has_role_in(org, user),
            // A migration creates workspaces in any organization: cluster admins only.
            Kind::Migration => false,
            Kind::Team => {
                let role = self.role(org, &s.key.name, user);
                match verb {
                    Verb::Read => role.is_some(),
                    Verb::Update => role == Some(MemberRole::Admin),
                    _ => false,
                }
            }
            Kind::Workspace => {
                let team = s.team.as_deref().unwrap_or_default();
                let role = self.role(org, team, user);
                let owns = s.owner.as_deref() == Some(user)
                    && match role {
                        Some(r) => r != MemberRole::Viewer,
                        None => self.team_is_open(org, team),
                    };
                match verb {
                    Verb::Read => role.is_some() || owns,
                    _ => role == Some(MemberRole::Admin) || owns,
                }
            }
        };
        if granted {
            return Ok(());
        }
        Err(Denial {
            user: user.to_string(),
            verb,
            object: s.key.to_string(),
            permission: format!("{}.{verb}", s.key.kind.plural()),
            holders: holders(s, verb),
        })
    }
}

/// Who holds a permission, in words, for the refusal.
fn holders(s: &Subject, verb: Verb) -> String {
    let org = s.organization();
    let mut who = vec![
        "cluster admins".to_string(),
        format!("admins of organization {org}"),
    ];
    match (s.key.kind, verb) {
        (Kind::Organization, Verb::Read) => who.push(format!("anyone with a role in {org}")),
        (Kind::Team, Verb::Read) => who.push(format!("members of team {}", s.key.name)),
        (Kind::Team, Verb::Update) => who.push(format!("admins of team {}", s.key.name)),
        (Kind::Workspace, _) => {
            let team = s.team.as_deref().unwrap_or("?");
            if verb == Verb::Read {
                who.push(format!("members of team {team}"));
            } else {
                who.push(format!("admins of team {team}"));
            }
            if let Some(owner) = &s.owner {
                who.push(format!("its owner {owner} unless a viewer"));
            }
        }
        _ => {}
    }
    who.join(", ")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn policy() -> Policy {
        let text = r"
apiVersion: coditect.io/v1
kind: Organization
metadata: {name: acme}
spec: {admins: [dana]}
---
apiVersion: coditect.io/v1
kind: Organization
metadata: {name: other}
spec: {}
---
apiVersion: coditect.io/v1
kind: Team
metadata: {name: platform, organization: acme}
spec:
  members: [{user: alice, role: admin}, {user: bob}, {user: vic, role: viewer}]
---
apiVersion: coditect.io/v1
kind: Workspace
metadata: {name: alice-main, organization: acme, team: platform}
spec: {owner: alice}
---
apiVersion: coditect.io/v1
kind: Workspace
metadata: {name: bob-main, organization: acme, team: platform}
spec: {owner: bob}
";
        let (docs, diags) =
            coditect_specs::parse_str("policy.yaml", std::path::Path::new("."), text);
        assert!(diags.is_empty(), "{diags:?}");
        let objects: Vec<Resource> = docs.into_iter().map(|d| d.resource).collect();
        Policy::from_resources(&objects)
    }

    fn who(user: &str) -> Identity {
        Identity {
            user: user.into(),
            token_id: "t".into(),
            cluster_admin: false,
        }
    }

    fn ws(name: &str) -> ObjectKey {
        ObjectKey {
            kind: Kind::Workspace,
            organization: Some("acme".into()),
            name: name.into(),
        }
    }

    fn may(p: &Policy, user: &str, verb: Verb, key: &ObjectKey) -> bool {
        p.decide(&who(user), verb, &p.subject(key)).is_ok()
    }

    #[test]
    fn members_own_their_workspaces_and_read_the_team() {
        let p = policy();
        assert!(may(&p, "bob", Verb::Use, &ws("bob-main")));
        assert!(may(&p, "bob", Verb::Delete, &ws("bob-main")));
        assert!(may(&p, "bob", Verb::Read, &ws("alice-main")));
        assert!(!may(&p, "bob", Verb::Use, &ws("alice-main")));
        assert!(!may(&p, "bob", Verb::Delete, &ws("alice-main")));
    }

    #[test]
    fn team_admins_manage_the_team_and_its_workspaces_but_not_the_organization() {
        let p = policy();
        assert!(may(&p, "alice", Verb::Delete, &ws("bob-main")));
        let team = ObjectKey {
            kind: Kind::Team,
            organization: Some("acme".into()),
            name: "platform".into(),
        };
        assert!(may(&p, "alice", Verb::Update, &team));
        assert!(!may(&p, "alice", Verb::Delete, &team));
        let org = ObjectKey {
            kind: Kind::Organization,
            organization: None,
            name: "acme".into(),
        };
        assert!(may(&p, "alice", Verb::Read, &org));
        assert!(!may(&p, "alice", Verb::Update, &org));
        assert!(may(&p, "dana", Verb::Update, &org));
    }

    #[test]
    fn viewers_read_and_outsiders_see_nothing() {
        let p = policy();
        assert!(may(&p, "vic", Verb::Read, &ws("bob-main")));
        assert!(!may(&p, "vic", Verb::Use, &ws("bob-main")));
        assert!(!may(&p, "mallory", Verb::Read, &ws("bob-main")));
        let other = ObjectKey {
            kind: Kind::Organization,
            organization: None,
            name: "other".into(),
        };
        assert!(!may(&p, "dana", Verb::Read, &other));
    }

    #[test]
    fn a_refusal_names_the_missing_permission() {
        let p = policy();
        let e = p
            .decide(&who("bob"), Verb::Delete, &p.subject(&ws("alice-main")))
            .unwrap_err();
        assert_eq!(e.permission, "workspaces.delete");
        let text = e.to_string();
        assert!(text.contains("workspaces.delete"), "{text}");
        assert!(text.contains("admins of team platform"), "{text}");
    }

    #[test]
    fn a_member_may_not_create_a_workspace_for_someone_else() {
        let p = policy();
        let subject = Subject {
            key: ws("carol-main"),
            team: Some("platform".into()),
            owner: Some("alice".into()),
        };
        assert!(p.decide(&who("bob"), Verb::Create, &subject).is_err());
        let own = Subject {
            owner: Some("bob".into()),
            ..subject
        };
        assert!(p.decide(&who("bob"), Verb::Create, &own).is_ok());
    }
}
