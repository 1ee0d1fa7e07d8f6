//! The Dockerfile front end: a line AST ([`parser`]), typed instructions and the stage plan
//! ([`instructions`]), the shell-word lexer with Docker's variable expansion ([`shell`]) and
//! `.dockerignore` matching ([`dockerignore`]). The daemon's builder drives them.

pub mod dockerignore;
pub mod instructions;
pub mod parser;
pub mod shell;

pub use instructions::{
    instruction, instructions, plan, Command, CopyArgs, Health, Instruction, Located, Mount, Plan,
    Stage, PREDEFINED_ARGS,
};

/// Errors of the Dockerfile front end. Parse errors name the file and line.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BuildError {
    #[error("{file}:{line}: {msg}")]
    Parse {
        file: String,
        line: usize,
        msg: String,
    },
    #[error("{0}")]
    Expand(String),
    #[error("{0}")]
    Invalid(String),
}

/// A stable, readable dump of typed instructions (one per line), for fixture tests.
pub fn dump(ls: &[Located]) -> String {
    let mut out = String::new();
    for l in ls {
        out.push_str(&format!("{:>3} {:?}\n", l.line, l.inst));
    }
    out
}
