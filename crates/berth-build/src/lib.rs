//! The Dockerfile front end: a line AST ([`parser`]), typed instructions and their variable
//! expansion ([`instructions`]), the shell-word lexer with Docker's expansion rules
//! ([`shell`]), the stage plan ([`stages`]) and `.dockerignore` matching ([`dockerignore`]).
//! The daemon's builder drives them:
//!
//! ```text
//! Plan::new(text, "Dockerfile", &opts)      parse, type, split into stages, pick the target
//!   for i in plan.order                      stages the target needs, dependencies first
//!     plan.stages[i].base                    Source::Stage(n) or Source::Image(ref)
//!     for l in &plan.stages[i].instructions
//!       plan.expand(l, &stage_env)           variables substituted where Docker does
//! ```

pub mod dockerignore;
pub mod instructions;
pub mod parser;
pub mod shell;
pub mod stages;

pub use instructions::{
    dump, instruction, instructions, ArgDecl, Command, Copy, From, Health, Instruction, Located,
    Mount, MountType, Network, Run, Script, Security, Sharing,
};
pub use stages::{Plan, PlanOptions, Source, Stage, PLATFORM_ARGS, PREDEFINED_ARGS};

/// Errors of the Dockerfile front end.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// A problem at a line of the Dockerfile (`Dockerfile:3: unknown instruction: FOO`).
    #[error("{file}:{line}: {msg}")]
    Parse {
        file: String,
        line: usize,
        msg: String,
    },
    /// Variable expansion failed (`failed to process "${X:?}": X: is not allowed to be unset`).
    #[error("failed to process {word:?}: {msg}")]
    Expand { word: String, msg: String },
    /// A problem without a line (`target stage "x" could not be found`, bad mount values).
    #[error("{0}")]
    Invalid(String),
    /// An invalid `.dockerignore` pattern.
    #[error("{0}")]
    Pattern(String),
}
