//! Validation beyond types: names, bounds and cross-field rules of one document
//! ([`check_document`]), and rules across documents ([`check_set`]): duplicate names and
//! references to organizations and teams, which must be declared in the same apply or be
//! already known to the control plane (the [`Catalog`]).

use std::collections::{BTreeMap, BTreeSet};

use crate::Duration;
use crate::agent::{AgentSpec, Provider};
use crate::error::{Diagnostic, Violation};
use crate::load::Document;
use crate::located::FieldPath;
use crate::organization::OrganizationSpec;
use crate::resource::{Kind, ObjectKey, Resource};
use crate::team::TeamSpec;
use crate::workspace::{AutoSleepPolicy, WorkspaceSpec};

/// Longest session a workspace may declare.
pub const MAX_SESSION: Duration = Duration::from_secs(24 * 3600);
/// Shortest sync interval (the loss goal is 1 s; faster only burns object writes).
pub const MIN_SYNC_INTERVAL: Duration = Duration::from_secs(1);

/// Whether `name` is a DNS-1123 label: lowercase alphanumerics and `-`, at most 63
/// characters, starting and ending with an alphanumeric.
pub fn is_dns1123_label(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

struct Checker {
    out: Vec<Violation>,
}

impl Checker {
    fn fail(&mut self, path: FieldPath, message: impl Into<String>) {
        self.out.push(Violation::at(path, message));
    }

    fn label(&mut self, path: FieldPath, value: &str, what: &str) {
        if !is_dns1123_label(value) {
            self.fail(
                path,
                format!(
                    "invalid {what} {value:?}: must be a DNS-1123 label (lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters)"
                ),
            );
        }
    }

    fn between(&mut self, path: FieldPath, d: Duration, min: Duration, max: Duration) {
        if d < min || d > max {
            self.fail(
                path,
                format!("{d} is out of range: must be between {min} and {max}"),
            );
        }
    }
}

/// Checks one object on its own; returns every problem found.
pub fn check_document(resource: &Resource) -> Vec<Violation> {
    let mut c = Checker { out: Vec::new() };
    let meta = resource.metadata();
    let m = FieldPath::root().key("metadata");
    c.label(m.key("name"), &meta.name, "name");
    let scope_required = |kind: Kind, field: &str| {
        !matches!(
            (kind, field),
            (Kind::Organization | Kind::Migration, _) | (Kind::Team, "team")
        )
    };
    for (field, value) in [("organization", &meta.organization), ("team", &meta.team)] {
        let kind = resource.kind();
        match value {
            Some(v) if scope_required(kind, field) => c.label(m.key(field), v, field),
            Some(_) => c.fail(
                m.key(field),
                format!("a {kind} is not scoped by {field}; remove this field"),
            ),
            None if scope_required(kind, field) => c.fail(
                m.key(field),
                format!("missing required field {field:?}: a {kind} names its {field}"),
            ),
            None => {}
        }
    }
    let spec = FieldPath::root().key("spec");
    match resource {
        Resource::Organization(o) => organization(&mut c, &spec, &o.spec),
        Resource::Team(t) => team(&mut c, &spec, &t.spec),
        Resource::Workspace(w) => workspace(&mut c, &spec, &w.spec),
        Resource::Migration(m) => migration(&mut c, &spec, &m.spec),
    }
    c.out
}

fn organization(c: &mut Checker, spec: &FieldPath, o: &OrganizationSpec) {
    let mut seen = BTreeSet::new();
    for (i, admin) in o.admins.iter().enumerate() {
        let p = spec.key("admins").index(i);
        c.label(p.clone(), admin, "user");
        if !seen.insert(admin.as_str()) {
            c.fail(p, format!("duplicate admin {admin:?}"));
        }
    }
    let storage = spec.key("storage");
    bucket_url(c, storage.key("bucket"), &o.storage.bucket);
    if let Some(mirror) = &o.storage.mirror {
        if let Some(rest) = mirror.strip_prefix("s3://") {
            s3_bucket(c, storage.key("mirror"), rest, mirror);
        } else {
            bucket_url(c, storage.key("mirror"), mirror);
        }
        if *mirror == o.storage.bucket {
            c.fail(
                storage.key("mirror"),
                "the mirror must be a different bucket",
            );
        }
    }
    if let Some(a) = &o.storage.mirror_access {
        let p = storage.key("mirrorAccess");
        if !o
            .storage
            .mirror
            .as_deref()
            .is_some_and(|m| m.starts_with("s3://"))
        {
            c.fail(
                p.clone(),
                "mirrorAccess is for an s3:// mirror: set storage.mirror to one",
            );
        }
        let endpoint = a
            .endpoint
            .strip_prefix("https://")
            .or_else(|| a.endpoint.strip_prefix("http://"));
        if endpoint.is_none_or(|rest| rest.is_empty()) {
            c.fail(
                p.key("endpoint"),
                format!(
                    "invalid endpoint {:?}: expected http:// or https://",
                    a.endpoint
                ),
            );
        }
        match (&a.access_key_id, &a.secret_access_key) {
            (Some(id), Some(secret)) => {
                credentials(c, &p.key("accessKeyId"), id);
                credentials(c, &p.key("secretAccessKey"), secret);
            }
            (None, None) => {}
            (Some(_), None) => c.fail(p.key("secretAccessKey"), "give both keys or neither"),
            (None, Some(_)) => c.fail(p.key("accessKeyId"), "give both keys or neither"),
        }
    }
    if o.quotas.max_awake_workspaces > o.quotas.max_workspaces {
        c.fail(
            spec.key("quotas").key("maxAwakeWorkspaces"),
            format!(
                "{} exceeds maxWorkspaces ({})",
                o.quotas.max_awake_workspaces, o.quotas.max_workspaces
            ),
        );
    }
    if let Some(b) = &o.budget
        && (b.alert_at_percent == 0 || b.alert_at_percent > 100)
    {
        c.fail(
            spec.key("budget").key("alertAtPercent"),
            "must be between 1 and 100",
        );
    }
}

/// An S3 bucket name (`s3://NAME[/PREFIX]`): 3–63 lowercase letters, digits, `-` and `.`.
fn s3_bucket(c: &mut Checker, path: FieldPath, rest: &str, url: &str) {
    let name = rest.split('/').next().unwrap_or_default();
    let ok = (3..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-.".contains(&b));
    if !ok {
        c.fail(
            path,
            format!("invalid mirror {url:?}: expected s3://BUCKET[/PREFIX] (3-63 lowercase letters, digits, '-' or '.')"),
        );
    }
}

fn bucket_url(c: &mut Checker, path: FieldPath, url: &str) {
    let ok = if let Some(rest) = url.strip_prefix("gs://") {
        let bucket = rest.split('/').next().unwrap_or_default();
        bucket.len() >= 3
            && bucket.len() <= 63
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b))
    } else if let Some(rest) = url.strip_prefix("file://") {
        rest.starts_with('/') && rest.len() > 1
    } else if let Some(rest) = url.strip_prefix("file:") {
        !rest.is_empty() && !rest.starts_with('/')
    } else {
        false
    };
    if !ok {
        c.fail(
            path,
            format!("invalid bucket {url:?}: expected gs://BUCKET[/PREFIX], file:///ABSOLUTE/PATH or file:RELATIVE/PATH"),
        );
    }
}

fn team(c: &mut Checker, spec: &FieldPath, t: &TeamSpec) {
    let mut seen = BTreeSet::new();
    for (i, member) in t.members.iter().enumerate() {
        let p = spec.key("members").index(i).key("user");
        c.label(p.clone(), &member.user, "user");
        if !seen.insert(member.user.as_str()) {
            c.fail(p, format!("duplicate member {:?}", member.user));
        }
    }
    let defaults = spec.key("workspaceDefaults");
    agents(c, &defaults.key("agents"), &t.workspace_defaults.agents);
    if let Some(policy) = &t.workspace_defaults.auto_sleep {
        auto_sleep(c, &defaults.key("autoSleep"), policy);
    }
}

/// The most users a migration copies at once.
pub const MAX_MIGRATION_CONCURRENCY: u32 = 64;

fn migration(c: &mut Checker, spec: &FieldPath, m: &crate::migration::MigrationSpec) {
    use crate::migration::WORKSPACE_NAME_PLACEHOLDERS;
    let source = spec.key("source");
    let export = &m.source.export;
    if !(export.starts_with("gs://") || export.starts_with("file:///")) {
        c.fail(
            source.key("export"),
            format!("{export:?}: the export is gs://BUCKET/PREFIX or file:///ABSOLUTE/PATH"),
        );
    }
    if let Some(endpoint) = &m.source.endpoint
        && !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
    {
        c.fail(
            source.key("endpoint"),
            format!("{endpoint:?}: the v1 endpoint is an http:// or https:// URL"),
        );
    }
    let target = spec.key("target");
    if let Some(org) = &m.target.organization {
        c.label(target.key("organization"), org, "organization");
    }
    if let Some(team) = &m.target.team {
        c.label(target.key("team"), team, "team");
    }
    let template = &m.target.workspace_name;
    let mut rest = template.clone();
    for p in WORKSPACE_NAME_PLACEHOLDERS {
        rest = rest.replace(p, "x");
    }
    if !template.contains("{login}") {
        c.fail(
            target.key("workspaceName"),
            format!("{template:?} must contain {{login}}: one workspace per user"),
        );
    } else if rest.contains('{') || rest.contains('}') {
        c.fail(
            target.key("workspaceName"),
            format!(
                "{template:?}: only {} may be used",
                WORKSPACE_NAME_PLACEHOLDERS.join(", ")
            ),
        );
    }
    agents(c, &target.key("agents"), &m.target.agents);
    let users = spec.key("users");
    for (field, value) in [
        ("batchSize", m.users.batch_size),
        ("concurrency", m.users.concurrency),
    ] {
        if value == 0 {
            c.fail(users.key(field), format!("{value}: must be at least 1"));
        }
    }
    if m.users.concurrency > MAX_MIGRATION_CONCURRENCY {
        c.fail(
            users.key("concurrency"),
            format!(
                "{}: at most {MAX_MIGRATION_CONCURRENCY} users are copied at once",
                m.users.concurrency
            ),
        );
    }
}

fn workspace(c: &mut Checker, spec: &FieldPath, w: &WorkspaceSpec) {
    c.label(spec.key("owner"), &w.owner, "owner");
    let session = spec.key("session").key("maxDuration");
    c.between(
        session,
        w.session.max_duration,
        Duration::from_secs(60),
        MAX_SESSION,
    );
    let mut names = BTreeSet::new();
    for (i, project) in w.projects.iter().enumerate() {
        let p = spec.key("projects").index(i);
        c.label(p.key("name"), &project.name, "project name");
        if !names.insert(project.name.as_str()) {
            c.fail(
                p.key("name"),
                format!("duplicate project {:?}", project.name),
            );
        }
        match (&project.git, &project.path) {
            (Some(_), Some(_)) => c.fail(p.key("path"), "give either git or path, not both"),
            (None, None) => c.fail(p, "a project needs a source: git (url and ref) or path"),
            (Some(git), None) if git.url.trim().is_empty() => {
                c.fail(p.key("git").key("url"), "must not be empty")
            }
            _ => {}
        }
    }
    agents(c, &spec.key("agents"), &w.agents);
    let mut titles = BTreeSet::new();
    for (i, task) in w.tasks.iter().enumerate() {
        let t = spec.key("tasks").index(i);
        if task.title.trim().is_empty() {
            c.fail(t.key("title"), "must not be empty");
        } else if !titles.insert(task.title.as_str()) {
            c.fail(
                t.key("title"),
                format!(
                    "duplicate task {:?}: titles identify seed tasks",
                    task.title
                ),
            );
        }
        if let Some(agent) = &task.agent
            && !w.agents.is_empty()
            && !w.agents.iter().any(|a| &a.name == agent)
        {
            c.fail(
                t.key("agent"),
                format!("no agent {agent:?} in this workspace"),
            );
        }
    }
    let locks = spec.key("locks");
    c.between(
        locks.key("leaseTtl"),
        w.locks.lease_ttl,
        Duration::from_secs(1),
        Duration::from_secs(3600),
    );
    c.between(
        locks.key("acquireTimeout"),
        w.locks.acquire_timeout,
        Duration::from_millis(0),
        Duration::from_secs(600),
    );
    let sync = spec.key("sync");
    let day = Duration::from_secs(86_400);
    c.between(
        sync.key("databasesInterval"),
        w.sync.databases_interval,
        MIN_SYNC_INTERVAL,
        day,
    );
    c.between(
        sync.key("eventsInterval"),
        w.sync.events_interval,
        MIN_SYNC_INTERVAL,
        day,
    );
    if let Some(policy) = &w.auto_sleep {
        auto_sleep(c, &spec.key("autoSleep"), policy);
    }
    if let Some(token) = &w.api_token {
        credentials(c, &spec.key("apiToken"), token);
    }
}

fn agents(c: &mut Checker, path: &FieldPath, list: &[AgentSpec]) {
    let mut names: BTreeMap<&str, usize> = BTreeMap::new();
    let mut exclusive: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, agent) in list.iter().enumerate() {
        let p = path.index(i);
        c.label(p.key("name"), &agent.name, "agent name");
        if let Some(first) = names.insert(&agent.name, i) {
            c.fail(
                p.key("name"),
                format!(
                    "duplicate agent name {:?} (also agents[{first}])",
                    agent.name
                ),
            );
        }
        if agent.role.is_exclusive() {
            let role = agent.role.as_str();
            if let Some(first) = exclusive.insert(role, i) {
                c.fail(
                    p.key("role"),
                    format!("role {role:?} is exclusive and already held by agents[{first}]"),
                );
            }
        }
        agent_rules(c, &p, agent);
    }
}

fn agent_rules(c: &mut Checker, p: &FieldPath, agent: &AgentSpec) {
    match agent.provider {
        Provider::Offline => {
            if agent.credentials.is_some() {
                c.fail(p.key("credentials"), "the offline provider takes no credentials");
            }
            if agent.base_url.is_some() {
                c.fail(p.key("baseUrl"), "the offline provider makes no network calls; remove baseUrl");
            }
        }
        Provider::OpenaiCompatible if agent.base_url.is_none() => c.fail(
            p.key("baseUrl"),
            "missing required field \"baseUrl\": provider \"openai-compatible\" needs the server's address",
        ),
        _ => {}
    }
    if let Some(budget) = agent.reasoning.as_ref().and_then(|r| r.budget_tokens)
        && budget < 1024
    {
        c.fail(
            p.key("reasoning").key("budgetTokens"),
            format!("a thinking budget of {budget} tokens is below the providers' minimum of 1024"),
        );
    }
    if let Some(url) = &agent.base_url {
        let valid = ["http://", "https://"]
            .iter()
            .any(|s| url.strip_prefix(s).is_some_and(|rest| !rest.is_empty()));
        if !valid {
            c.fail(
                p.key("baseUrl"),
                format!("invalid URL {url:?}: expected http:// or https://"),
            );
        }
    }
    if let Some(creds) = &agent.credentials {
        credentials(c, &p.key("credentials"), creds);
    }
    if agent.budget.max_steps == 0 {
        c.fail(p.key("budget").key("maxSteps"), "must be at least 1");
    }
}

fn credentials(c: &mut Checker, p: &FieldPath, creds: &crate::Credentials) {
    match (&creds.env, &creds.secret_ref) {
        (Some(_), Some(_)) => c.fail(p.key("secretRef"), "give either env or secretRef, not both"),
        (None, None) => c.fail(
            p.clone(),
            "give env (a variable name) or secretRef (name and key)",
        ),
        (Some(env), None) => {
            let valid = !env.is_empty()
                && !env.starts_with(|ch: char| ch.is_ascii_digit())
                && env
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || ch == '_');
            if !valid {
                c.fail(
                    p.key("env"),
                    format!("invalid environment variable name {env:?}"),
                );
            }
        }
        (None, Some(s)) => c.label(p.key("secretRef").key("name"), &s.name, "secret name"),
    }
}

fn auto_sleep(c: &mut Checker, p: &FieldPath, policy: &AutoSleepPolicy) {
    c.between(
        p.key("idleAfter"),
        policy.idle_after,
        Duration::from_secs(60),
        Duration::from_secs(7 * 86_400),
    );
    let Some(schedule) = &policy.schedule else {
        return;
    };
    let sp = p.key("schedule");
    for (i, window) in schedule.keep_awake.iter().enumerate() {
        let wp = sp.key("keepAwake").index(i);
        let from = minutes(&window.from);
        let to = minutes(&window.to);
        if from.is_none() {
            c.fail(
                wp.key("from"),
                format!("invalid time {:?}: expected HH:MM", window.from),
            );
        }
        if to.is_none() {
            c.fail(
                wp.key("to"),
                format!("invalid time {:?}: expected HH:MM", window.to),
            );
        }
        if let (Some(f), Some(t)) = (from, to)
            && f >= t
        {
            c.fail(
                wp.key("to"),
                format!("{} is not after {}", window.to, window.from),
            );
        }
        if window.days.is_empty() {
            c.fail(wp.key("days"), "name at least one day");
        }
    }
}

fn minutes(hhmm: &str) -> Option<u32> {
    let (h, m) = hhmm.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then_some(h * 60 + m)
}

/// What the control plane already holds, for reference checks of a new apply.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    objects: BTreeMap<ObjectKey, Resource>,
}

impl Catalog {
    /// A catalog of the given objects.
    pub fn new(objects: impl IntoIterator<Item = Resource>) -> Self {
        Catalog {
            objects: objects.into_iter().map(|r| (r.key(), r)).collect(),
        }
    }

    /// The object with this key.
    pub fn get(&self, key: &ObjectKey) -> Option<&Resource> {
        self.objects.get(key)
    }

    /// Every object.
    pub fn iter(&self) -> impl Iterator<Item = &Resource> {
        self.objects.values()
    }
}

/// The key of an organization or of a team in an organization.
pub(crate) fn scope_key(kind: Kind, organization: Option<&str>, name: &str) -> ObjectKey {
    ObjectKey {
        kind,
        organization: organization.map(str::to_string),
        name: name.to_string(),
    }
}

/// Checks a set of documents applied together: no two declare the same object, and every
/// organization and team they name is declared in the set or known to `known`.
pub fn check_set(docs: &[Document], known: &Catalog) -> Vec<Diagnostic> {
    let resources: Vec<&Resource> = docs.iter().map(|d| &d.resource).collect();
    let mut out: Vec<Diagnostic> = check_objects(&resources, known)
        .into_iter()
        .map(|p| {
            let mut v = p.violation;
            if let Some(first) = p.duplicate_of {
                let pos = docs[first]
                    .tree
                    .locate(&FieldPath::parse("metadata.name"), false);
                v.message.push_str(&format!(
                    " (first declared at {}:{}:{})",
                    docs[first].file, pos.line, pos.column
                ));
            }
            docs[p.index].diagnose(v)
        })
        .collect();
    out.sort();
    out
}

/// A problem found by [`check_objects`].
#[derive(Debug, Clone, PartialEq)]
pub struct SetViolation {
    /// The object it is about (its index in the applied set).
    pub index: usize,
    /// What is wrong, and where in the object.
    pub violation: Violation,
    /// For a duplicate: the index of the first declaration.
    pub duplicate_of: Option<usize>,
}

/// [`check_set`] for objects without source positions (API requests).
pub fn check_objects(objects: &[&Resource], known: &Catalog) -> Vec<SetViolation> {
    let mut out = Vec::new();
    let mut declared: BTreeMap<ObjectKey, usize> = BTreeMap::new();
    for (i, r) in objects.iter().enumerate() {
        let key = r.key();
        if let Some(first) = declared.get(&key) {
            out.push(SetViolation {
                index: i,
                violation: Violation::at(
                    FieldPath::parse("metadata.name"),
                    format!("duplicate {key}"),
                ),
                duplicate_of: Some(*first),
            });
        } else {
            declared.insert(key, i);
        }
    }
    let find = |key: &ObjectKey| -> Option<&Resource> {
        declared
            .get(key)
            .map(|i| objects[*i])
            .or_else(|| known.get(key))
    };
    for (i, r) in objects.iter().enumerate() {
        let meta = r.metadata();
        let Some(org) = meta.organization.as_deref() else {
            continue;
        };
        if find(&scope_key(Kind::Organization, None, org)).is_none() {
            out.push(SetViolation {
                index: i,
                violation: Violation::at(
                    FieldPath::parse("metadata.organization"),
                    format!(
                        "organization {org:?} is not declared in this apply and does not exist"
                    ),
                ),
                duplicate_of: None,
            });
            continue;
        }
        let (Resource::Workspace(ws), Some(team)) = (r, meta.team.as_deref()) else {
            continue;
        };
        let Some(Resource::Team(t)) = find(&scope_key(Kind::Team, Some(org), team)) else {
            out.push(SetViolation {
                index: i,
                violation: Violation::at(
                    FieldPath::parse("metadata.team"),
                    format!("team {team:?} of organization {org:?} is not declared in this apply and does not exist"),
                ),
                duplicate_of: None,
            });
            continue;
        };
        let spec = &t.spec;
        if !spec.members.is_empty() && !spec.members.iter().any(|m| m.user == ws.spec.owner) {
            out.push(SetViolation {
                index: i,
                violation: Violation::at(
                    FieldPath::parse("spec.owner"),
                    format!("{:?} is not a member of team {team:?}", ws.spec.owner),
                ),
                duplicate_of: None,
            });
        }
        if ws.spec.agents.is_empty() && spec.workspace_defaults.agents.is_empty() {
            out.push(SetViolation {
                index: i,
                violation: Violation::at(
                    FieldPath::parse("spec.agents"),
                    format!("a workspace needs at least one agent, and team {team:?} has no workspaceDefaults.agents"),
                ),
                duplicate_of: None,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns1123_labels() {
        for good in ["a", "acme", "alice-main", "a1", &"x".repeat(63)] {
            assert!(is_dns1123_label(good), "{good}");
        }
        for bad in ["", "Acme", "-a", "a-", "a_b", "a.b", &"x".repeat(64)] {
            assert!(!is_dns1123_label(bad), "{bad}");
        }
    }

    #[test]
    fn a_mirror_may_be_an_s3_bucket_and_a_bad_one_is_named() {
        let text = |mirror: &str| {
            format!(
                "apiVersion: coditect.io/v1\nkind: Organization\nmetadata:\n  name: acme\nspec:\n  storage:\n    bucket: gs://acme-ws\n    mirror: {mirror}\n"
            )
        };
        let (docs, diags) = crate::load::parse_str(
            "org.yaml",
            std::path::Path::new("."),
            &text("s3://acme-mirror/ws"),
        );
        assert!(diags.is_empty(), "{diags:?}");
        assert!(check_document(&docs[0].resource).is_empty());
        let (_, diags) =
            crate::load::parse_str("org.yaml", std::path::Path::new("."), &text("s3://A_B"));
        assert!(
            diags
                .iter()
                .any(|d| d.path == FieldPath::parse("spec.storage.mirror")
                    && d.message.contains("s3://BUCKET")),
            "{diags:?}"
        );
    }

    #[test]
    fn mirror_access_needs_an_s3_mirror_an_endpoint_and_both_keys() {
        let text = |mirror: &str, access: &str| {
            format!(
                "apiVersion: coditect.io/v1\nkind: Organization\nmetadata:\n  name: acme\nspec:\n  storage:\n    bucket: gs://acme-ws\n    mirror: {mirror}\n    mirrorAccess:\n{access}"
            )
        };
        let good = "      endpoint: https://acct.r2.cloudflarestorage.com\n      accessKeyId: {secretRef: {name: r2, key: id}}\n      secretAccessKey: {env: R2_SECRET}\n";
        let (docs, diags) = crate::load::parse_str(
            "org.yaml",
            std::path::Path::new("."),
            &text("s3://acme-mirror", good),
        );
        assert!(diags.is_empty(), "{diags:?}");
        assert!(check_document(&docs[0].resource).is_empty());
        if let Resource::Organization(o) = &docs[0].resource {
            let a = o.spec.storage.mirror_access.as_ref().unwrap();
            assert_eq!(a.region, "auto", "R2's region by default");
        }
        let failures = |mirror: &str, access: &str| {
            let (_, diags) = crate::load::parse_str(
                "org.yaml",
                std::path::Path::new("."),
                &text(mirror, access),
            );
            diags
                .into_iter()
                .map(|d| (d.path.to_string(), d.message))
                .collect::<Vec<_>>()
        };
        let on_gs = failures("gs://other", good);
        assert!(
            on_gs
                .iter()
                .any(|(p, m)| p == "spec.storage.mirrorAccess" && m.contains("s3://")),
            "{on_gs:?}"
        );
        let half = failures(
            "s3://acme-mirror",
            "      endpoint: r2.example\n      accessKeyId: {env: R2_ID}\n",
        );
        assert!(
            half.iter()
                .any(|(p, _)| p == "spec.storage.mirrorAccess.endpoint"),
            "{half:?}"
        );
        assert!(
            half.iter().any(
                |(p, m)| p == "spec.storage.mirrorAccess.secretAccessKey" && m.contains("both")
            ),
            "{half:?}"
        );
    }

    #[test]
    fn times() {
        assert_eq!(minutes("08:30"), Some(510));
        assert_eq!(minutes("24:00"), None);
        assert_eq!(minutes("8:30"), None);
    }
}
