//! One module per command group; `dispatch` routes a parsed command line to it.

pub mod build;
pub mod container;
pub mod image;
pub mod registry;
pub mod run;
pub mod system;

use crate::cli::{BuilderCmd, Cmd, ContainerCmd, ImageCmd, RegistryCmd, SystemCmd};
use crate::client::Client;
use crate::{CliError, CmdResult};

/// Runs one command; returns the exit status.
pub async fn dispatch(c: &Client, cmd: Cmd) -> CmdResult {
    match cmd {
        Cmd::Run(a) => run::run(c, a).await,
        Cmd::Create(a) => run::create(c, a).await,
        Cmd::Ps(a) => container::ps(c, a).await,
        Cmd::Images(a) => image::images(c, a).await,
        Cmd::Logs(a) => container::logs(c, a).await,
        Cmd::Stop(a) => container::stop(c, a, false).await,
        Cmd::Restart(a) => container::stop(c, a, true).await,
        Cmd::Kill(a) => container::kill(c, a).await,
        Cmd::Rm(a) => container::rm(c, a).await,
        Cmd::Start(a) => container::start(c, a).await,
        Cmd::Wait(a) => container::wait(c, a).await,
        Cmd::Rename(a) => container::rename(c, a).await,
        Cmd::Rmi(a) => image::rmi(c, a).await,
        Cmd::Tag(a) => image::tag(c, a).await,
        Cmd::Inspect(a) => system::inspect(c, a.names, a.format, a.kind, a.size).await,
        Cmd::Version(a) => system::version(c, a).await,
        Cmd::Info(a) => system::info(c, a).await,
        Cmd::Load(a) => image::load(c, a).await,
        Cmd::Save(a) => image::save(c, a).await,
        Cmd::Import(a) => image::import(c, a).await,
        Cmd::Build(a) => build::build(c, a).await,
        Cmd::Builder(BuilderCmd::Build(a)) => build::build(c, a).await,
        Cmd::Builder(BuilderCmd::Prune(a)) => build::prune(c, a).await,
        Cmd::Pull(a) => registry::pull(c, a).await,
        Cmd::Push(a) => registry::push(c, a).await,
        Cmd::Login(a) => registry::login(c, a).await,
        Cmd::Logout(a) => registry::logout(a).await,
        Cmd::Registry(RegistryCmd::Serve(a)) => registry::serve(a).await,
        Cmd::Registry(RegistryCmd::Gc(a)) => registry::gc(a).await,
        Cmd::Container(cc) => match cc {
            ContainerCmd::Ls(a) => container::ps(c, a).await,
            ContainerCmd::Run(a) => run::run(c, a).await,
            ContainerCmd::Create(a) => run::create(c, a).await,
            ContainerCmd::Logs(a) => container::logs(c, a).await,
            ContainerCmd::Stop(a) => container::stop(c, a, false).await,
            ContainerCmd::Restart(a) => container::stop(c, a, true).await,
            ContainerCmd::Kill(a) => container::kill(c, a).await,
            ContainerCmd::Rm(a) => container::rm(c, a).await,
            ContainerCmd::Start(a) => container::start(c, a).await,
            ContainerCmd::Wait(a) => container::wait(c, a).await,
            ContainerCmd::Rename(a) => container::rename(c, a).await,
            ContainerCmd::Inspect(a) => {
                system::inspect(c, a.names, a.format, Some("container".into()), a.size).await
            }
            ContainerCmd::Prune(a) => container::prune(c, a).await,
        },
        Cmd::Image(ic) => match ic {
            ImageCmd::Ls(a) => image::images(c, a).await,
            ImageCmd::Rm(a) => image::rmi(c, a).await,
            ImageCmd::Tag(a) => image::tag(c, a).await,
            ImageCmd::Inspect(a) => {
                system::inspect(c, a.names, a.format, Some("image".into()), false).await
            }
            ImageCmd::Load(a) => image::load(c, a).await,
            ImageCmd::Save(a) => image::save(c, a).await,
            ImageCmd::Import(a) => image::import(c, a).await,
            ImageCmd::Prune(a) => image::prune(c, a).await,
            ImageCmd::Pull(a) => registry::pull(c, a).await,
            ImageCmd::Push(a) => registry::push(c, a).await,
            ImageCmd::Build(a) => build::build(c, a).await,
        },
        Cmd::System(SystemCmd::Info(a)) => system::info(c, a).await,
    }
}

/// Runs `op` on each name: prints the name on success, the error on failure, and fails with
/// status 1 at the end if any failed (docker's behaviour for stop, kill, rm, ...).
pub async fn for_each<F, Fut>(names: &[String], mut op: F) -> CmdResult
where
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = Result<Option<String>, CliError>>,
{
    let mut failed = false;
    for n in names {
        match op(n.clone()).await {
            Ok(Some(line)) => println!("{line}"),
            Ok(None) => {}
            Err(e) => {
                failed = true;
                eprintln!("{e}");
            }
        }
    }
    if failed {
        Err(CliError::Status(1, String::new()))
    } else {
        Ok(0)
    }
}

/// Percent-encodes a path segment (container or image name).
pub fn seg(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z'
            | b'a'..=b'z'
            | b'0'..=b'9'
            | b'-'
            | b'_'
            | b'.'
            | b'~'
            | b':'
            | b'/'
            | b'@' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Writes bytes to stdout and flushes, for streamed output.
pub fn write_out(data: &[u8]) {
    use std::io::Write;
    let mut o = std::io::stdout().lock();
    let _ = o.write_all(data);
    let _ = o.flush();
}

/// Writes bytes to stderr.
pub fn write_err(data: &[u8]) {
    use std::io::Write;
    let mut e = std::io::stderr().lock();
    let _ = e.write_all(data);
    let _ = e.flush();
}
