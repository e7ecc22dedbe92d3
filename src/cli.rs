//! Command-line arguments (clap derive). Flags that make sense in the environment also
//! read `CODITECT_*` variables.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::output::OutputFormat;

/// Coditect: persistent multi-agent workspaces, run by a declarative control plane.
#[derive(Debug, Parser)]
#[command(name = "coditect", version, about, long_about = None)]
#[command(
    after_help = "Exit codes: 0 ok, 1 invalid input (diff: there are differences), 2 usage error, 3 unavailable (no control plane, or it stopped answering mid-request; a workspace folder owned by another instance; a wait timed out), 4 not found or refused (a missing permission, no valid token), 70 internal error; `auth can-i` answers no with 1."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command takes.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Output format: human text (`wide` for more columns), or JSON / YAML for scripts
    /// (logs always go to stderr).
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = OutputFormat::Text, env = "CODITECT_OUTPUT")]
    pub output: OutputFormat,
    /// The control plane to talk to (default: the config's current context, else
    /// http://127.0.0.1:7420).
    #[arg(long, global = true, env = "CODITECT_SERVER")]
    pub server: Option<String>,
    /// The bearer token (default: the config's current context).
    #[arg(long, global = true, env = "CODITECT_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// The client config file (default: ~/.coditect/config when it exists, else the
    /// admin credential `up` wrote in $CODITECT_DATA_DIR or ./.coditect: admin.yaml).
    #[arg(long, global = true, env = "CODITECT_CONFIG")]
    pub config: Option<PathBuf>,
    /// A context of the config other than its current one.
    #[arg(long, global = true, env = "CODITECT_CONTEXT")]
    pub context: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check manifests: YAML, schema, names, bounds and references, with located errors.
    Validate(ValidateArgs),
    /// Print the JSON Schema of a kind (or of all kinds).
    Schema(SchemaArgs),
    /// Print the version of this binary and the API version it speaks.
    Version,
    /// Run one workspace instance in the foreground (the control plane starts these).
    WorkspaceRuntime(WorkspaceRuntimeArgs),
    /// Start the control plane in the foreground, and apply manifests if given.
    Up(UpArgs),
    /// Print what `kubectl apply -f` takes: the CRDs (`--crds`), the objects of
    /// manifests as Kubernetes objects (`-f`, each organization a namespace), and the
    /// workloads the operator makes of them (`--workloads`).
    Manifests(ManifestsArgs),
    /// Run the control plane on Kubernetes: reconcile Organizations, Teams and
    /// Workspaces into StatefulSets (in the cluster, or with $KUBECONFIG).
    Operator(OperatorArgs),
    /// Run the gateway on Kubernetes: `/w/{org}/{workspace}/…` to the workspace's pod,
    /// callers checked by TokenReview and RBAC, sleeping workspaces woken on connect.
    Gateway(GatewayArgs),
    /// Create or update objects from manifests (all or nothing).
    Apply(ApplyArgs),
    /// List objects, or show one.
    Get(GetArgs),
    /// Show an object in detail: spec, status, conditions, recent events.
    Describe(ObjectArgs),
    /// Show what `apply` would change (exit 1 when it would change something).
    Diff(DiffArgs),
    /// Delete objects by name or by manifest.
    Delete(DeleteArgs),
    /// Wait for a condition on an object.
    Wait(WaitArgs),
    /// Load-test a control plane against KPI thresholds (exit 99 when one fails).
    Loadtest(LoadtestArgs),
    /// A workspace's backups in its bucket: list, verify, restore.
    #[command(subcommand)]
    Backup(BackupCommand),
    /// v1 → v2 migration: `plan` reads the v1 export and says what would be created.
    #[command(subcommand)]
    Migrate(MigrateCommand),
    /// A workspace's agents: what each is doing (state, task, tokens, leases, newest
    /// event), or `check` that each can reach its model.
    Agents(AgentsArgs),
    /// A workspace's event log, oldest first; `-f` follows it live (like `kubectl logs -f`).
    Events(EventsArgs),
    /// A workspace's tasks (newest first), or `submit` / `cancel` one.
    Tasks(TasksArgs),
    /// Who holds which path in a workspace, with tokens and expiry, and who waits.
    Locks(WorkspaceTarget),
    /// One read-only SELECT on one of a workspace's six databases.
    Query(QueryArgs),
    /// The URL of a workspace's page in the browser studio.
    Open(OpenArgs),
    /// Users' tokens: create (the secret is shown once), list, revoke.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Who am I, and may I do something (`auth can-i delete workspace/bob-main`).
    #[command(subcommand)]
    Auth(AuthCommand),
    /// The audit trail of every change: read it, verify its hash chain.
    Audit(AuditArgs),
    /// The client config: contexts (server, token) and the current one, like kubeconfig.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Put a workspace to sleep now: a final sync round, then its instance stops (its data
    /// stays); any request through the gateway wakes it.
    Sleep(SleepArgs),
    /// Wake a sleeping workspace and wait until it is Ready.
    Wake(SleepArgs),
    /// Keep a workspace awake for a while even when idle (like Coder's `schedule extend`).
    Keepalive(KeepaliveArgs),
    /// What workspaces cost: a report priced from measured usage, or a projection for N
    /// users from a usage profile.
    #[command(subcommand)]
    Cost(CostCommand),
}

#[derive(Debug, Subcommand)]
pub enum CostCommand {
    /// What the workspaces cost over a window, from measured usage (awake seconds ×
    /// requested CPU and memory, bytes stored, object operations by billing class, restore
    /// egress, log volume), per workspace, team and organization.
    Report(CostReportArgs),
    /// A month for N users from a usage profile, with and without auto-sleep, beside the
    /// product brief's $9.50 a user before optimisation.
    Project(CostProjectArgs),
}

#[derive(Debug, Args)]
pub struct CostReportArgs {
    /// Only this organization's workspaces.
    #[arg(long)]
    pub org: Option<String>,
    /// The window's start: `30d` (that long ago) or an RFC 3339 time.
    #[arg(long, default_value = "30d")]
    pub since: String,
    /// A pricing file (default: the one shipped, ops/pricing/2026-12.yaml).
    #[arg(long)]
    pub pricing: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CostProjectArgs {
    /// Users (one workspace each).
    #[arg(long, default_value_t = 1000)]
    pub users: u32,
    /// A pricing file (default: the one shipped, ops/pricing/2026-12.yaml).
    #[arg(long)]
    pub pricing: Option<PathBuf>,
    /// vCPUs each workspace requests.
    #[arg(long)]
    pub vcpus: Option<f64>,
    /// GiB of memory each workspace requests.
    #[arg(long)]
    pub memory_gib: Option<f64>,
    /// Hours a month a workspace is awake with auto-sleep (without: 730).
    #[arg(long)]
    pub awake_hours: Option<f64>,
    /// GiB each workspace keeps in the bucket.
    #[arg(long)]
    pub stored_gib: Option<f64>,
}

#[derive(Debug, Args)]
pub struct SleepArgs {
    /// `workspace/NAME` (or just NAME).
    pub workspace: String,
    /// The organization, when the name exists in several.
    #[arg(long)]
    pub org: Option<String>,
    /// How long `wake` waits for Ready.
    #[arg(long, default_value = "60s")]
    pub timeout: coditect_specs::Duration,
}

#[derive(Debug, Args)]
pub struct KeepaliveArgs {
    /// `workspace/NAME` (or just NAME).
    pub workspace: String,
    /// How long (`2h`, `30m`; at most 7d).
    #[arg(long = "for")]
    pub span: coditect_specs::Duration,
    /// The organization, when the name exists in several.
    #[arg(long)]
    pub org: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token for a user (yourself by default); prints the secret once.
    Create(TokenCreateArgs),
    /// List tokens (yours; a cluster admin sees everyone's).
    List(TokenListArgs),
    /// Revoke a token by id; it opens nothing from the next request on.
    Revoke(TokenRevokeArgs),
}

#[derive(Debug, Args)]
pub struct TokenCreateArgs {
    /// The user the token names (as in team members, owners, organization admins).
    #[arg(long)]
    pub user: Option<String>,
    /// How long it lives (`30d`, `12h`); it lives until revoked when absent.
    #[arg(long)]
    pub ttl: Option<String>,
    /// A cluster admin's token (only cluster admins may create one).
    #[arg(long)]
    pub cluster_admin: bool,
    /// What it is for.
    #[arg(long)]
    pub description: Option<String>,
}

#[derive(Debug, Args)]
pub struct TokenListArgs {
    /// Only this user's tokens.
    #[arg(long)]
    pub user: Option<String>,
}

#[derive(Debug, Args)]
pub struct TokenRevokeArgs {
    /// The token's id (`cdt_{id}_…`, as `token list` shows it).
    pub id: String,
}

#[derive(Debug, Subcommand)]
pub enum AuthCommand {
    /// Answers yes or no (exit 0 or 1), like kubectl: may I VERB KIND/NAME?
    CanI(CanIArgs),
    /// The user your credential names.
    Whoami,
}

#[derive(Debug, Args)]
pub struct CanIArgs {
    /// get, list, watch, create, update, delete, or use (write through the gateway).
    pub verb: String,
    /// `workspace/bob-main`, `team/platform`, `organization/acme`.
    pub object: String,
    /// The organization of a team or workspace, when the name exists in several or the
    /// object does not exist yet.
    #[arg(long)]
    pub org: Option<String>,
    /// For a workspace that does not exist yet: its team.
    #[arg(long)]
    pub team: Option<String>,
    /// For a workspace that does not exist yet: its owner.
    #[arg(long)]
    pub owner: Option<String>,
    /// Ask for another user (cluster admins only).
    #[arg(long = "as")]
    pub as_user: Option<String>,
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Entries from this long ago (`1h`, `7d`) or this time (RFC 3339).
    #[arg(long)]
    pub since: Option<String>,
    /// Check the whole hash chain instead (exit 1 when broken).
    #[arg(long)]
    pub verify: bool,
    /// At most this many entries.
    #[arg(long, default_value_t = 1000)]
    pub limit: usize,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// The contexts of the config, the current one marked.
    GetContexts,
    /// The current context's name.
    CurrentContext,
    /// Make a context the current one.
    UseContext(UseContextArgs),
    /// Add or change a context.
    SetContext(SetContextArgs),
}

#[derive(Debug, Args)]
pub struct UseContextArgs {
    /// The context's name.
    pub name: String,
}

/// `config set-context NAME --server URL --token T` (the global flags name what the
/// context holds).
#[derive(Debug, Args)]
pub struct SetContextArgs {
    /// The context's name.
    pub name: String,
    /// A file holding its token (instead of --token).
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// A PEM file of the CA that signs the server's certificate.
    #[arg(long)]
    pub certificate_authority: Option<PathBuf>,
    /// Also make it the current context.
    #[arg(long)]
    pub current: bool,
}

/// The workspace a command works inside (reached through the control plane's gateway with
/// your credential).
#[derive(Debug, Clone, Args)]
pub struct WorkspaceTarget {
    /// `workspace/NAME` (or just NAME).
    pub workspace: String,
    /// The organization, when the name exists in several.
    #[arg(long)]
    pub org: Option<String>,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct AgentsArgs {
    #[command(subcommand)]
    pub command: Option<AgentsCommand>,
    /// `workspace/NAME` (or just NAME): show its agents.
    #[arg(required = true)]
    pub workspace: Option<String>,
    /// The organization, when the name exists in several.
    #[arg(long)]
    pub org: Option<String>,
}

#[derive(Debug, Args)]
pub struct EventsArgs {
    #[command(flatten)]
    pub target: WorkspaceTarget,
    /// Keep printing events as they happen (Ctrl-C ends it); a dropped connection resumes
    /// after the last event printed, with nothing lost or repeated.
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// Only events after this seq.
    #[arg(long, default_value_t = 0)]
    pub since: u64,
    /// Only this agent's events.
    #[arg(long)]
    pub agent: Option<String>,
    /// Only events of this type (`file_edit`, `tool_call`, `task_finished`, …).
    #[arg(long = "type")]
    pub kind: Option<String>,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct TasksArgs {
    #[command(subcommand)]
    pub command: Option<TasksCommand>,
    /// `workspace/NAME` (or just NAME): list its tasks.
    #[arg(required = true)]
    pub workspace: Option<String>,
    /// The organization, when the name exists in several.
    #[arg(long)]
    pub org: Option<String>,
    /// Only tasks in this state (queued, running, done, failed, cancelled).
    #[arg(long)]
    pub state: Option<String>,
    /// Only this agent's tasks.
    #[arg(long)]
    pub agent: Option<String>,
    /// At most this many (newest first).
    #[arg(long, default_value_t = 100)]
    pub limit: u32,
}

#[derive(Debug, Subcommand)]
pub enum TasksCommand {
    /// Queue a task for an agent, or for the least busy agent of a role (or any agent).
    Submit(TaskSubmitArgs),
    /// Cancel a queued or running task.
    Cancel(TaskCancelArgs),
}

#[derive(Debug, Args)]
pub struct TaskSubmitArgs {
    #[command(flatten)]
    pub target: WorkspaceTarget,
    /// The task's title.
    pub title: String,
    /// What to do, in full (default: the title).
    #[arg(long)]
    pub prompt: Option<String>,
    /// The agent to run it.
    #[arg(long, conflicts_with = "role")]
    pub agent: Option<String>,
    /// The least busy agent with this role runs it.
    #[arg(long)]
    pub role: Option<String>,
    /// Higher runs first.
    #[arg(long, default_value_t = 0)]
    pub priority: i64,
}

#[derive(Debug, Args)]
pub struct TaskCancelArgs {
    #[command(flatten)]
    pub target: WorkspaceTarget,
    /// The task's id.
    pub id: i64,
}

#[derive(Debug, Args)]
pub struct QueryArgs {
    #[command(flatten)]
    pub target: WorkspaceTarget,
    /// The database: sessions, messages, artifacts, parsed_sessions, agent_metrics,
    /// workspace_idx.
    pub db: String,
    /// One SELECT statement (anything that writes is refused).
    pub sql: String,
}

#[derive(Debug, Args)]
pub struct OpenArgs {
    #[command(flatten)]
    pub target: WorkspaceTarget,
    /// Print the URL without your token (you then sign in on the page).
    #[arg(long)]
    pub no_token: bool,
}

#[derive(Debug, Subcommand)]
pub enum AgentsCommand {
    /// One small real call per agent whose key is set here: reachable, key accepted, the
    /// model answering, a tool call round trip (exit 1 when one fails). Offline agents
    /// say they are offline; keys come from this shell's environment or `--secrets-dir`.
    Check(AgentsCheckArgs),
}

#[derive(Debug, Args)]
pub struct AgentsCheckArgs {
    /// The workspace's name (its spec is read from the control plane).
    #[arg(required_unless_present = "files", conflicts_with = "files")]
    pub workspace: Option<String>,
    /// The organization, when the name exists in several.
    #[arg(long)]
    pub org: Option<String>,
    /// Check the workspaces of these manifests instead (no control plane needed).
    #[arg(short = 'f', long = "filename")]
    pub files: Vec<PathBuf>,
    /// Where `secretRef` credentials are read from (`{dir}/{name}/{key}`).
    #[arg(
        long,
        env = "CODITECT_SECRETS_DIR",
        default_value = ".coditect/secrets"
    )]
    pub secrets_dir: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum MigrateCommand {
    /// Read the v1 export and print what the migration would create, its merge conflicts
    /// and every problem at its object and line; change nothing (exit 1 on problems).
    Plan(MigratePlanArgs),
    /// A migration's users by phase, the cutover pauses and what to do next; per user
    /// with `--users` or `-o json`; `--watch` follows it with a progress bar.
    Status(MigrateStatusArgs),
    /// Let verified users be cut over (like Argo Rollouts' promote); `--approve` for
    /// users graded Investigate or Poor.
    Promote(MigrateActionArgs),
    /// Cut the named users over now (requires `--users`).
    Cutover(MigrateActionArgs),
    /// Route users back to v1 at once and write what they changed in v2 into the v1
    /// layout.
    Rollback(MigrateActionArgs),
    /// End the rollback window of cut-over users: they stay on v2 for good.
    Complete(MigrateActionArgs),
}

#[derive(Debug, Args)]
pub struct MigrateStatusArgs {
    /// The Migration's name.
    pub name: String,
    /// Show these users' records (comma-separated logins).
    #[arg(long, value_delimiter = ',')]
    pub users: Vec<String>,
    /// Follow the migration until every user is in a final phase or waits on a person.
    #[arg(long, short = 'w')]
    pub watch: bool,
}

#[derive(Debug, Args)]
pub struct MigrateActionArgs {
    /// The Migration's name.
    pub name: String,
    /// Only these users (comma-separated logins); all the action applies to when absent.
    #[arg(long, value_delimiter = ',')]
    pub users: Vec<String>,
    /// Cut over users graded Investigate or Poor too (after looking at their reasons).
    #[arg(long)]
    pub approve: bool,
}

#[derive(Debug, Args)]
pub struct MigratePlanArgs {
    /// The Migration manifest.
    #[arg(short = 'f', long = "filename")]
    pub file: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// What the bucket holds for a workspace: generations, WAL batches, event segments,
    /// project files, and who owns it.
    List(BackupArgs),
    /// Restore into a scratch folder and check everything: every object's SHA-256,
    /// `PRAGMA integrity_check` of each database, the event hash chain (exit 1 if not).
    Verify(BackupArgs),
    /// Restore a workspace from its bucket into a folder (the workspace itself restores
    /// on its own when it starts on an empty folder).
    Restore(RestoreArgs),
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The workspace's name.
    pub workspace: String,
    /// The organization, when the name exists in several.
    #[arg(long)]
    pub org: Option<String>,
    /// The bucket (`file:///…`, `gs://…`, `s3://…`); by default the one in the workspace's
    /// status. An `s3://` bucket is reached through `AWS_ENDPOINT_URL_S3`, `AWS_REGION`,
    /// `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`.
    #[arg(long)]
    pub bucket: Option<String>,
    /// Read the organization's bucket (`primary`, the source of truth) or its hot mirror
    /// (`mirror`, as the workspace's status names it). With `--bucket`, that bucket is read
    /// whichever this says.
    #[arg(long, value_enum, default_value_t = BackupSource::Primary)]
    pub from: BackupSource,
}

/// Which copy of a workspace `coditect backup` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BackupSource {
    /// The organization's bucket.
    Primary,
    /// Its hot mirror.
    Mirror,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub backup: BackupArgs,
    /// The folder to restore into (must be empty or absent).
    #[arg(long)]
    pub to: PathBuf,
    /// Restore as of this time (RFC 3339, e.g. 2026-11-24T10:00:00Z): later database
    /// changes and events are left out.
    #[arg(long)]
    pub to_time: Option<String>,
}

#[derive(Debug, Args)]
pub struct LoadtestArgs {
    /// Start a control plane for the run instead of using --server.
    #[arg(long)]
    pub embedded: bool,
    /// The control plane's data directory (workspace tokens and pids are read from it).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Simulated users.
    #[arg(long, default_value_t = 100)]
    pub users: usize,
    /// Workspaces to create for the run.
    #[arg(long, default_value_t = 10)]
    pub workspaces: usize,
    /// Measured time per scenario.
    #[arg(long, default_value = "10s")]
    pub duration: coditect_specs::Duration,
    /// Unmeasured warm-up before each scenario.
    #[arg(long, default_value = "2s")]
    pub warmup: coditect_specs::Duration,
    /// Open loop: requests per second across all users (closed loop when absent).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Scenarios to run: reconnect, task_start, lock_uncontended, lock_contended, availability,
    /// wake (all when absent); `NAME:USERS:DURATION` overrides the load for one
    /// (`reconnect:200:5s`).
    #[arg(long = "scenario")]
    pub scenarios: Vec<String>,
    /// The thresholds file.
    #[arg(long, default_value = "loadtest/kpis.yaml")]
    pub thresholds: PathBuf,
    /// Reports to write: json, junit, markdown.
    #[arg(long = "report", value_parser = ["json", "junit", "markdown"])]
    pub reports: Vec<String>,
    /// Where reports go.
    #[arg(long, default_value = "loadtest-report")]
    pub report_dir: PathBuf,
    /// Kill a random instance this often during the availability scenario (0s: never).
    #[arg(long, default_value = "2s")]
    pub chaos_interval: coditect_specs::Duration,
    /// No progress bars (also when stderr is not a terminal or CI is set).
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct ManifestsArgs {
    /// Manifests to convert (files, folders, or `-` for stdin).
    #[arg(short = 'f', long = "filename")]
    pub files: Vec<PathBuf>,
    /// Descend into subfolders.
    #[arg(short = 'R', long)]
    pub recursive: bool,
    /// As Kubernetes objects (the only target today; accepted for clarity).
    #[arg(long)]
    pub kubernetes: bool,
    /// The CustomResourceDefinitions of our kinds, first.
    #[arg(long)]
    pub crds: bool,
    /// Also what the operator makes of each workspace (ServiceAccount, ConfigMap,
    /// Service, StatefulSet), as it would apply them.
    #[arg(long, requires = "files")]
    pub workloads: bool,
    /// The `coditect` image the workloads run.
    #[arg(long)]
    pub image: Option<String>,
    /// The storage class of the workspaces' data volumes (the cluster's default if unset).
    #[arg(long)]
    pub storage_class: Option<String>,
}

#[derive(Debug, Args)]
pub struct GatewayArgs {
    /// Where `/w/…`, /healthz and /readyz are served.
    #[arg(long, env = "CODITECT_GATEWAY_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: std::net::SocketAddr,
    /// This replica's name in Events.
    #[arg(long, env = "POD_NAME", default_value = "coditect-gateway")]
    pub identity: String,
}

#[derive(Debug, Args)]
pub struct OperatorArgs {
    /// Where /healthz and /metrics are served.
    #[arg(long, env = "CODITECT_OPERATOR_LISTEN", default_value = "0.0.0.0:8081")]
    pub listen: std::net::SocketAddr,
    /// The namespace of the leader-election Lease (the operator's own).
    #[arg(long, env = "POD_NAMESPACE", default_value = "coditect-system")]
    pub namespace: String,
    /// This replica's name in the Lease and in Events.
    #[arg(long, env = "POD_NAME", default_value = "coditect-operator")]
    pub identity: String,
    /// The `coditect` image workspaces run.
    #[arg(long, env = "CODITECT_IMAGE", default_value = concat!("ghcr.io/coditect/coditect:", env!("CARGO_PKG_VERSION")))]
    pub image: String,
    /// The storage class of the workspaces' data volumes.
    #[arg(long, env = "CODITECT_STORAGE_CLASS")]
    pub storage_class: Option<String>,
    /// How often the auto-sleeper looks at every awake workspace (0s: never).
    #[arg(long, default_value = "5s")]
    pub auto_sleep_every: coditect_specs::Duration,
    /// How often every object is reconciled again.
    #[arg(long, default_value = "5m")]
    pub resync: coditect_specs::Duration,
}

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Manifests to apply once the control plane runs.
    #[arg(short = 'f', long = "filename")]
    pub files: Vec<PathBuf>,
    /// The pricing file budget alerts price usage with (default: the one shipped).
    #[arg(long, env = "CODITECT_PRICING")]
    pub pricing: Option<PathBuf>,
    /// API and gateway address.
    #[arg(long, env = "CODITECT_LISTEN", default_value = "127.0.0.1:7420")]
    pub listen: std::net::SocketAddr,
    /// Where the store, logs and workspace folders live.
    #[arg(long, env = "CODITECT_DATA_DIR", default_value = ".coditect")]
    pub data_dir: PathBuf,
    /// Serve HTTPS with this PEM certificate (chain); needs --tls-key.
    #[arg(long, env = "CODITECT_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, env = "CODITECT_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Listen on a non-loopback address without TLS (something else encrypts).
    #[arg(long)]
    pub insecure: bool,
    /// Requests per second each token may make (bursts of twice that); cluster admins
    /// are exempt.
    #[arg(long, env = "CODITECT_RATE_LIMIT", default_value_t = 100.0)]
    pub rate_limit: f64,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// A manifest file, a folder of them, or `-` for stdin.
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<PathBuf>,
    /// Descend into subfolders.
    #[arg(short = 'R', long)]
    pub recursive: bool,
    /// Validate and report, change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Delete objects matching the selector (`-l`) that the manifests no longer hold.
    #[arg(long, requires = "selector")]
    pub prune: bool,
    /// Label selector for --prune.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
}

#[derive(Debug, Args)]
pub struct GetArgs {
    /// organizations, teams or workspaces (singular and short forms work too).
    pub kind: String,
    /// One object's name.
    pub name: Option<String>,
    /// Label selector (`owner=alice,tier!=demo`).
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// The organization, when a name exists in several.
    #[arg(long)]
    pub org: Option<String>,
}

#[derive(Debug, Args)]
pub struct ObjectArgs {
    /// organization, team or workspace.
    pub kind: String,
    /// The object's name.
    pub name: String,
    /// The organization, when a name exists in several.
    #[arg(long)]
    pub org: Option<String>,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// A manifest file, a folder of them, or `-` for stdin.
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<PathBuf>,
    /// Descend into subfolders.
    #[arg(short = 'R', long)]
    pub recursive: bool,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// organization, team or workspace (or use -f).
    pub kind: Option<String>,
    /// The object's name.
    pub name: Option<String>,
    /// Delete the objects these manifests declare.
    #[arg(short = 'f', long = "filename", conflicts_with_all = ["kind", "name"])]
    pub files: Vec<PathBuf>,
    /// The organization, when a name exists in several.
    #[arg(long)]
    pub org: Option<String>,
    /// Also remove the workspace's data folder (it is kept by default).
    #[arg(long)]
    pub purge: bool,
    /// Return at once instead of waiting for the object to be gone.
    #[arg(long)]
    pub no_wait: bool,
    /// Check that the delete would be allowed and would go ahead; change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct WaitArgs {
    /// `kind/name`, e.g. `workspace/alice-main`.
    pub object: String,
    /// `condition=Ready` (any condition type).
    #[arg(long = "for")]
    pub condition: String,
    /// Give up after this long (`60s`, `2m`).
    #[arg(long, default_value = "60s")]
    pub timeout: coditect_specs::Duration,
    /// The organization, when a name exists in several.
    #[arg(long)]
    pub org: Option<String>,
}

#[derive(Debug, Args)]
pub struct WorkspaceRuntimeArgs {
    /// The Workspace manifest (exactly one Workspace document).
    #[arg(long, env = "CODITECT_SPEC")]
    pub spec: PathBuf,
    /// The storage root; the workspace folder is created below it.
    #[arg(long, env = "CODITECT_ROOT", default_value = ".coditect/workspaces")]
    pub root: PathBuf,
    /// The API address; port 0 picks a free port (printed on stdout when ready).
    #[arg(long, env = "CODITECT_LISTEN", default_value = "127.0.0.1:0")]
    pub listen: std::net::SocketAddr,
    /// The bucket to sync to and restore from (`file:///PATH` or `gs://BUCKET[/PREFIX]`;
    /// `$STORAGE_EMULATOR_HOST` points gs:// at an emulator). Without it nothing syncs.
    #[arg(long, env = "CODITECT_BUCKET")]
    pub bucket: Option<String>,
    /// A hot mirror of the bucket (`s3://BUCKET[/PREFIX]`, or another bucket URL): every
    /// object shipped goes there too, and an empty folder is restored from it when the
    /// bucket does not answer. An `s3://` mirror is reached as the spec's
    /// `coditect.io/mirror-access` annotation says, else through `AWS_ENDPOINT_URL_S3`,
    /// `AWS_REGION`, `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`.
    #[arg(long, env = "CODITECT_MIRROR", requires = "bucket")]
    pub mirror: Option<String>,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// A manifest file, a folder of them, or `-` for stdin.
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<PathBuf>,
    /// Descend into subfolders of a folder.
    #[arg(short = 'R', long)]
    pub recursive: bool,
    /// Print the effective objects, every default filled in.
    #[arg(long)]
    pub show_defaults: bool,
}

#[derive(Debug, Args)]
pub struct SchemaArgs {
    /// organization, team or workspace; all three when omitted.
    pub kind: Option<String>,
}
