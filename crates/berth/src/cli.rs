//! The command grammar: docker's commands, aliases and flags, as clap definitions.

use clap::{ArgAction, Args, Parser, Subcommand};

/// A Docker-compatible container engine client.
#[derive(Parser, Debug)]
#[command(
    name = "berth",
    disable_version_flag = true,
    subcommand_required = false
)]
pub struct Cli {
    /// Daemon socket to connect to
    #[arg(short = 'H', long = "host", value_name = "HOST")]
    pub host: Option<String>,
    /// Enable debug mode
    #[arg(short = 'D', long = "debug")]
    pub debug: bool,
    /// Set the logging level
    #[arg(short = 'l', long = "log-level")]
    pub log_level: Option<String>,
    /// Print version information and quit
    #[arg(short = 'v', long = "version")]
    pub version: bool,
    #[command(subcommand)]
    pub cmd: Option<Cmd>,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Create and run a new container from an image
    Run(RunArgs),
    /// Create a new container
    Create(RunArgs),
    /// List containers
    Ps(PsArgs),
    /// List images
    Images(ImagesArgs),
    /// Fetch the logs of a container
    Logs(LogsArgs),
    /// Stop one or more running containers
    Stop(StopArgs),
    /// Kill one or more running containers
    Kill(KillArgs),
    /// Restart one or more containers
    Restart(StopArgs),
    /// Remove one or more containers
    Rm(RmArgs),
    /// Start one or more stopped containers
    Start(StartArgs),
    /// Block until one or more containers stop, then print their exit codes
    Wait(ContainersArgs),
    /// Rename a container
    Rename(RenameArgs),
    /// Remove one or more images
    Rmi(RmiArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag(TagArgs),
    /// Return low-level information on Docker objects
    Inspect(InspectArgs),
    /// Show the Docker version information
    Version(VersionArgs),
    /// Display system-wide information
    Info(InfoArgs),
    /// Load an image from a tar archive or STDIN
    Load(LoadArgs),
    /// Save one or more images to a tar archive (streamed to STDOUT by default)
    Save(SaveArgs),
    /// Import the contents from a tarball to create a filesystem image
    Import(ImportArgs),
    /// Build an image from a Dockerfile
    Build(BuildArgs),
    /// Manage the build cache
    #[command(subcommand)]
    Builder(BuilderCmd),
    /// Download an image from a registry
    Pull(PullArgs),
    /// Upload an image to a registry
    Push(PushArgs),
    /// Authenticate to a registry
    Login(LoginArgs),
    /// Log out from a registry
    Logout(LogoutArgs),
    /// Run or maintain berth's own OCI registry server
    #[command(subcommand)]
    Registry(RegistryCmd),
    /// Manage containers
    #[command(subcommand)]
    Container(ContainerCmd),
    /// Manage images
    #[command(subcommand)]
    Image(ImageCmd),
    /// Manage Docker
    #[command(subcommand)]
    System(SystemCmd),
}

#[derive(Subcommand, Debug)]
pub enum ContainerCmd {
    /// List containers
    #[command(visible_aliases = ["ps", "list"])]
    Ls(PsArgs),
    Run(RunArgs),
    Create(RunArgs),
    Logs(LogsArgs),
    Stop(StopArgs),
    Kill(KillArgs),
    Restart(StopArgs),
    #[command(visible_alias = "remove")]
    Rm(RmArgs),
    Start(StartArgs),
    Wait(ContainersArgs),
    Rename(RenameArgs),
    Inspect(TypedInspectArgs),
    /// Remove all stopped containers
    Prune(PruneArgs),
}

#[derive(Subcommand, Debug)]
pub enum ImageCmd {
    /// List images
    #[command(visible_alias = "list")]
    Ls(ImagesArgs),
    #[command(visible_alias = "remove")]
    Rm(RmiArgs),
    Tag(TagArgs),
    Inspect(TypedInspectArgs),
    Load(LoadArgs),
    Save(SaveArgs),
    Import(ImportArgs),
    /// Remove unused images
    Prune(PruneArgs),
    /// Download an image from a registry
    Pull(PullArgs),
    /// Upload an image to a registry
    Push(PushArgs),
    /// Build an image from a Dockerfile
    Build(BuildArgs),
}

#[derive(Subcommand, Debug)]
pub enum BuilderCmd {
    /// Build an image from a Dockerfile
    Build(BuildArgs),
    /// Remove build cache
    Prune(BuilderPruneArgs),
}

#[derive(Args, Debug)]
pub struct BuilderPruneArgs {
    /// Remove all unused build cache, not just dangling ones
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Do not prompt for confirmation
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Provide filter values (e.g. "until=24h")
    #[arg(long)]
    pub filter: Vec<String>,
}

#[derive(Args, Debug, Default)]
pub struct BuildArgs {
    /// Name and optionally a tag in the "name:tag" format
    #[arg(short = 't', long = "tag")]
    pub tags: Vec<String>,
    /// Name of the Dockerfile (default: "PATH/Dockerfile"), or - for stdin
    #[arg(short = 'f', long = "file", allow_hyphen_values = true)]
    pub file: Option<String>,
    /// Set build-time variables
    #[arg(long = "build-arg")]
    pub build_args: Vec<String>,
    /// Set the target build stage to build
    #[arg(long)]
    pub target: Option<String>,
    /// Do not use cache when building the image
    #[arg(long = "no-cache")]
    pub no_cache: bool,
    /// Suppress the build output and print image ID on success
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Secret to expose to the build (id=ID,src=PATH)
    #[arg(long = "secret")]
    pub secrets: Vec<String>,
    /// Set metadata for an image
    #[arg(long = "label")]
    pub labels: Vec<String>,
    /// Networking mode for the RUN instructions during build
    #[arg(long)]
    pub network: Option<String>,
    /// Set platform if server is multi-platform capable
    #[arg(long)]
    pub platform: Option<String>,
    /// Always attempt to pull a newer version of the image
    #[arg(long)]
    pub pull: bool,
    /// Build context: a directory, or - for a tar on stdin
    #[arg(allow_hyphen_values = true)]
    pub context: String,
}

#[derive(Subcommand, Debug)]
pub enum RegistryCmd {
    /// Serve the OCI Distribution API (prints `berth registry listening on URL` once bound)
    Serve(RegistryServeArgs),
    /// Delete blobs no manifest references
    Gc(RegistryGcArgs),
}

#[derive(Args, Debug)]
pub struct PullArgs {
    /// Download all tagged images in the repository
    #[arg(short = 'a', long = "all-tags")]
    pub all_tags: bool,
    /// Suppress verbose output
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Set platform if server is multi-platform capable
    #[arg(long)]
    pub platform: Option<String>,
    pub image: String,
}

#[derive(Args, Debug)]
pub struct PushArgs {
    /// Push all tags of an image to the repository
    #[arg(short = 'a', long = "all-tags")]
    pub all_tags: bool,
    /// Suppress verbose output
    #[arg(short = 'q', long)]
    pub quiet: bool,
    pub image: String,
}

#[derive(Args, Debug)]
pub struct LoginArgs {
    /// Username
    #[arg(short = 'u', long)]
    pub username: Option<String>,
    /// Password
    #[arg(short = 'p', long)]
    pub password: Option<String>,
    /// Take the password from stdin
    #[arg(long = "password-stdin")]
    pub password_stdin: bool,
    pub server: Option<String>,
}

#[derive(Args, Debug)]
pub struct LogoutArgs {
    pub server: Option<String>,
}

#[derive(Args, Debug)]
pub struct RegistryServeArgs {
    /// Address to listen on (port 0 picks a free port)
    #[arg(long)]
    pub addr: Option<String>,
    /// Storage root
    #[arg(long)]
    pub root: Option<String>,
    /// JSON config file (flags override it)
    #[arg(long)]
    pub config: Option<String>,
    /// none, htpasswd or token
    #[arg(long)]
    pub auth: Option<String>,
    /// htpasswd file with bcrypt entries (`htpasswd -B`)
    #[arg(long)]
    pub htpasswd: Option<String>,
    /// With --auth token: let anonymous clients pull
    #[arg(long = "anonymous-pull")]
    pub anonymous_pull: bool,
    #[arg(long = "tls-cert")]
    pub tls_cert: Option<String>,
    #[arg(long = "tls-key")]
    pub tls_key: Option<String>,
    /// Refuse every write
    #[arg(long = "read-only")]
    pub read_only: bool,
}

#[derive(Args, Debug)]
pub struct RegistryGcArgs {
    /// Storage root
    #[arg(long)]
    pub root: Option<String>,
    /// Report what would be deleted
    #[arg(long = "dry-run")]
    pub dry_run: bool,
    /// Also delete manifests no tag refers to
    #[arg(long = "delete-untagged")]
    pub delete_untagged: bool,
    /// Keep blobs younger than this many seconds (uploads of a push in progress)
    #[arg(long = "grace", default_value_t = 3600)]
    pub grace_secs: u64,
}

#[derive(Subcommand, Debug)]
pub enum SystemCmd {
    Info(InfoArgs),
}

/// Flags of `run` and `create`.
#[derive(Args, Debug, Clone, Default)]
#[command(disable_help_flag = true)]
pub struct RunArgs {
    #[arg(long, action = ArgAction::Help)]
    pub help: Option<bool>,
    /// Run container in background and print container ID
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Keep STDIN open even if not attached
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Automatically remove the container and its associated anonymous volumes when it exits
    #[arg(long)]
    pub rm: bool,
    /// Assign a name to the container
    #[arg(long)]
    pub name: Option<String>,
    /// Set environment variables
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Read in a file of environment variables
    #[arg(long = "env-file")]
    pub env_file: Vec<String>,
    /// Working directory inside the container
    #[arg(short = 'w', long = "workdir")]
    pub workdir: Option<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>])
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Overwrite the default ENTRYPOINT of the image
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Memory limit
    #[arg(short = 'm', long)]
    pub memory: Option<String>,
    /// Swap limit equal to memory plus swap: '-1' to enable unlimited swap
    #[arg(long = "memory-swap", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Number of CPUs
    #[arg(long)]
    pub cpus: Option<String>,
    /// CPU shares (relative weight)
    #[arg(short = 'c', long = "cpu-shares")]
    pub cpu_shares: Option<i64>,
    /// Tune container pids limit (set -1 for unlimited)
    #[arg(long = "pids-limit", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// Connect a container to a network
    #[arg(long = "network", alias = "net")]
    pub network: Option<String>,
    /// Mount the container's root filesystem as read only
    #[arg(long = "read-only")]
    pub read_only: bool,
    /// Container host name
    #[arg(short = 'h', long)]
    pub hostname: Option<String>,
    /// Set meta data on a container
    #[arg(short = 'l', long = "label")]
    pub label: Vec<String>,
    /// Give extended privileges to this container
    #[arg(long)]
    pub privileged: bool,
    /// Add Linux capabilities
    #[arg(long = "cap-add")]
    pub cap_add: Vec<String>,
    /// Drop Linux capabilities
    #[arg(long = "cap-drop")]
    pub cap_drop: Vec<String>,
    /// Ulimit options
    #[arg(long)]
    pub ulimit: Vec<String>,
    /// Size of /dev/shm
    #[arg(long = "shm-size")]
    pub shm_size: Option<String>,
    /// Signal to stop the container
    #[arg(long = "stop-signal")]
    pub stop_signal: Option<String>,
    /// Timeout (in seconds) to stop a container
    #[arg(long = "stop-timeout")]
    pub stop_timeout: Option<i64>,
    /// Restart policy to apply when a container exits
    #[arg(long)]
    pub restart: Option<String>,
    /// Bind mount a volume
    #[arg(short = 'v', long = "volume")]
    pub volume: Vec<String>,
    /// Publish a container's port(s) to the host
    #[arg(short = 'p', long = "publish")]
    pub publish: Vec<String>,
    /// Run an init inside the container
    #[arg(long)]
    pub init: bool,
    /// Set platform if server is multi-platform capable
    #[arg(long)]
    pub platform: Option<String>,
    /// Pull image before running ("always", "missing", "never")
    #[arg(long)]
    pub pull: Option<String>,
    /// Suppress the pull output
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Attach to STDIN, STDOUT or STDERR
    #[arg(short = 'a', long)]
    pub attach: Vec<String>,
    /// Add a custom host-to-IP mapping (host:ip)
    #[arg(long = "add-host")]
    pub add_host: Vec<String>,
    /// Set custom DNS servers
    #[arg(long)]
    pub dns: Vec<String>,
    /// Security Options
    #[arg(long = "security-opt")]
    pub security_opt: Vec<String>,
    /// Add a host device to the container
    #[arg(long)]
    pub device: Vec<String>,
    /// Mount a tmpfs directory
    #[arg(long)]
    pub tmpfs: Vec<String>,
    /// Runtime to use for this container
    #[arg(long)]
    pub runtime: Option<String>,
    /// The image, then the command and its arguments
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "IMAGE [COMMAND] [ARG...]"
    )]
    pub image_and_cmd: Vec<String>,
}

#[derive(Args, Debug)]
pub struct PsArgs {
    /// Show all containers (default shows just running)
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Only display container IDs
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Display total file sizes
    #[arg(short = 's', long)]
    pub size: bool,
    /// Show n last created containers (includes all states)
    #[arg(short = 'n', long = "last", default_value_t = -1, allow_hyphen_values = true)]
    pub last: i64,
    /// Show the latest created container (includes all states)
    #[arg(short = 'l', long)]
    pub latest: bool,
    /// Don't truncate output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Filter output based on conditions provided
    #[arg(short = 'f', long)]
    pub filter: Vec<String>,
    /// Format output using a custom template
    #[arg(long)]
    pub format: Option<String>,
}

#[derive(Args, Debug)]
pub struct ImagesArgs {
    /// Show all images (default hides intermediate images)
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Only show image IDs
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Don't truncate output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Show digests
    #[arg(long)]
    pub digests: bool,
    /// Filter output based on conditions provided
    #[arg(short = 'f', long)]
    pub filter: Vec<String>,
    /// Format output using a custom template
    #[arg(long)]
    pub format: Option<String>,
    /// REPOSITORY[:TAG]
    pub reference: Option<String>,
}

#[derive(Args, Debug)]
pub struct LogsArgs {
    /// Follow log output
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Show timestamps
    #[arg(short = 't', long)]
    pub timestamps: bool,
    /// Number of lines to show from the end of the logs
    #[arg(short = 'n', long, default_value = "all")]
    pub tail: String,
    /// Show logs since timestamp or relative (e.g. 42m)
    #[arg(long)]
    pub since: Option<String>,
    /// Show logs before a timestamp or relative (e.g. 42m)
    #[arg(long)]
    pub until: Option<String>,
    /// Show extra details provided to logs
    #[arg(long)]
    pub details: bool,
    pub container: String,
}

#[derive(Args, Debug)]
pub struct StopArgs {
    /// Signal to send to the container
    #[arg(short = 's', long)]
    pub signal: Option<String>,
    /// Seconds to wait before killing the container
    #[arg(
        short = 't',
        long = "timeout",
        visible_alias = "time",
        allow_hyphen_values = true
    )]
    pub timeout: Option<i64>,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Args, Debug)]
pub struct KillArgs {
    /// Signal to send to the container
    #[arg(short = 's', long)]
    pub signal: Option<String>,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Args, Debug)]
pub struct RmArgs {
    /// Force the removal of a running container (uses SIGKILL)
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Remove anonymous volumes associated with the container
    #[arg(short = 'v', long)]
    pub volumes: bool,
    /// Remove the specified link
    #[arg(short = 'l', long)]
    pub link: bool,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Args, Debug)]
pub struct StartArgs {
    /// Attach STDOUT/STDERR and forward signals
    #[arg(short = 'a', long)]
    pub attach: bool,
    /// Attach container's STDIN
    #[arg(short = 'i', long)]
    pub interactive: bool,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Args, Debug)]
pub struct ContainersArgs {
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Args, Debug)]
pub struct RenameArgs {
    pub container: String,
    pub new_name: String,
}

#[derive(Args, Debug)]
pub struct RmiArgs {
    /// Force removal of the image
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Do not delete untagged parents
    #[arg(long = "no-prune")]
    pub no_prune: bool,
    #[arg(required = true)]
    pub images: Vec<String>,
}

#[derive(Args, Debug)]
pub struct TagArgs {
    pub source: String,
    pub target: String,
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// Format output using a custom template
    #[arg(short = 'f', long)]
    pub format: Option<String>,
    /// Return JSON for specified type
    #[arg(long = "type")]
    pub kind: Option<String>,
    /// Display total file sizes if the type is container
    #[arg(short = 's', long)]
    pub size: bool,
    #[arg(required = true)]
    pub names: Vec<String>,
}

#[derive(Args, Debug)]
pub struct TypedInspectArgs {
    /// Format output using a custom template
    #[arg(short = 'f', long)]
    pub format: Option<String>,
    /// Display total file sizes
    #[arg(short = 's', long)]
    pub size: bool,
    #[arg(required = true)]
    pub names: Vec<String>,
}

#[derive(Args, Debug)]
pub struct VersionArgs {
    /// Format output using a custom template
    #[arg(short = 'f', long)]
    pub format: Option<String>,
}

#[derive(Args, Debug)]
pub struct InfoArgs {
    /// Format output using a custom template
    #[arg(short = 'f', long)]
    pub format: Option<String>,
}

#[derive(Args, Debug)]
pub struct LoadArgs {
    /// Read from tar archive file, instead of STDIN
    #[arg(short = 'i', long)]
    pub input: Option<String>,
    /// Suppress the load output
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct SaveArgs {
    /// Write to a file, instead of STDOUT
    #[arg(short = 'o', long)]
    pub output: Option<String>,
    #[arg(required = true)]
    pub images: Vec<String>,
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// Apply Dockerfile instruction to the created image
    #[arg(short = 'c', long)]
    pub change: Vec<String>,
    /// Set commit message for imported image
    #[arg(short = 'm', long)]
    pub message: Option<String>,
    /// Set platform if server is multi-platform capable
    #[arg(long)]
    pub platform: Option<String>,
    /// file|URL|-
    pub file: String,
    /// REPOSITORY[:TAG]
    pub reference: Option<String>,
}

#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Do not prompt for confirmation
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Remove all unused images, not just dangling ones (images only)
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Provide filter values (e.g. "until=<timestamp>")
    #[arg(long)]
    pub filter: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(args).unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    #[test]
    fn run_grammar_stops_at_image() {
        let c = parse(&[
            "berth",
            "-H",
            "unix:///x",
            "run",
            "--rm",
            "-e",
            "A=1",
            "-h",
            "box",
            "alpine",
            "ls",
            "-l",
            "--rm",
        ]);
        assert_eq!(c.host.as_deref(), Some("unix:///x"));
        let Some(Cmd::Run(r)) = c.cmd else { panic!() };
        assert!(r.rm);
        assert_eq!(r.hostname.as_deref(), Some("box"));
        assert_eq!(r.image_and_cmd, vec!["alpine", "ls", "-l", "--rm"]);
        let c = parse(&["berth", "run", "-it", "alpine", "-x"]);
        let Some(Cmd::Run(r)) = c.cmd else { panic!() };
        assert!(r.interactive && r.tty);
        assert_eq!(r.image_and_cmd, vec!["alpine", "-x"]);
    }

    #[test]
    fn aliases() {
        assert!(matches!(
            parse(&["berth", "container", "ps", "-a"]).cmd,
            Some(Cmd::Container(ContainerCmd::Ls(_)))
        ));
        assert!(matches!(
            parse(&["berth", "image", "remove", "x"]).cmd,
            Some(Cmd::Image(ImageCmd::Rm(_)))
        ));
        assert!(matches!(
            parse(&["berth", "stop", "--time", "3", "a"]).cmd,
            Some(Cmd::Stop(StopArgs {
                timeout: Some(3),
                ..
            }))
        ));
        assert!(Cli::try_parse_from(["berth", "ps", "--bogus"]).is_err());
        assert!(matches!(
            parse(&["berth", "image", "pull", "-q", "x"]).cmd,
            Some(Cmd::Image(ImageCmd::Pull(PullArgs { quiet: true, .. })))
        ));
        assert!(matches!(
            parse(&["berth", "image", "push", "x"]).cmd,
            Some(Cmd::Image(ImageCmd::Push(_)))
        ));
        assert!(matches!(
            parse(&["berth", "image", "build", "."]).cmd,
            Some(Cmd::Image(ImageCmd::Build(_)))
        ));
        assert!(matches!(
            parse(&["berth", "builder", "build", "-"]).cmd,
            Some(Cmd::Builder(BuilderCmd::Build(_)))
        ));
    }

    #[test]
    fn build_grammar() {
        let c = parse(&[
            "berth",
            "build",
            "-t",
            "a:1",
            "--tag",
            "b",
            "-f",
            "-",
            "--build-arg",
            "X=1",
            "--secret",
            "id=s,src=/f",
            "--no-cache",
            "--pull",
            "-q",
            "-",
        ]);
        let Some(Cmd::Build(b)) = c.cmd else { panic!() };
        assert_eq!(b.tags, ["a:1", "b"]);
        assert_eq!(b.file.as_deref(), Some("-"));
        assert_eq!(b.build_args, ["X=1"]);
        assert_eq!(b.secrets, ["id=s,src=/f"]);
        assert!(b.no_cache && b.pull && b.quiet);
        assert_eq!(b.context, "-");
        let c = parse(&["berth", "builder", "prune", "-af", "--filter", "until=1h"]);
        let Some(Cmd::Builder(BuilderCmd::Prune(p))) = c.cmd else {
            panic!()
        };
        assert!(p.all && p.force);
        assert_eq!(p.filter, ["until=1h"]);
        let c = parse(&[
            "berth",
            "login",
            "-u",
            "al",
            "--password-stdin",
            "localhost:5000",
        ]);
        let Some(Cmd::Login(l)) = c.cmd else { panic!() };
        assert_eq!(l.username.as_deref(), Some("al"));
        assert!(l.password_stdin);
        assert_eq!(l.server.as_deref(), Some("localhost:5000"));
    }
}
