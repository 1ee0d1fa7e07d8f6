//! The line AST: directives, comments, continuations and heredocs turned into one node per
//! instruction, each with its keyword, flags, arguments and line numbers.

use crate::BuildError;

/// A heredoc attached to an instruction (`RUN <<EOF … EOF`).
#[derive(Debug, Clone, PartialEq)]
pub struct Heredoc {
    pub name: String,
    pub content: String,
    /// False when the delimiter was quoted: no expansion.
    pub expand: bool,
}

/// One instruction as written.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Upper-case keyword (`RUN`).
    pub keyword: String,
    /// `--name=value` flags before the arguments.
    pub flags: Vec<String>,
    /// The arguments after the flags, continuation lines joined.
    pub args: String,
    /// The instruction as written on its first line(s), for `Step N/M : …`.
    pub original: String,
    pub heredocs: Vec<Heredoc>,
    pub start_line: usize,
    pub end_line: usize,
}

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq)]
pub struct Ast {
    pub escape: char,
    pub syntax: Option<String>,
    pub nodes: Vec<Node>,
}

fn is_comment(line: &str) -> bool {
    line.trim_start().starts_with('#')
}

/// Splits leading `--flag[=value]` words off the arguments.
pub fn split_flags(rest: &str) -> (Vec<String>, String) {
    let mut flags = Vec::new();
    let mut s = rest.trim_start();
    while s.starts_with("--") {
        let end = s.find(char::is_whitespace).unwrap_or(s.len());
        flags.push(s[..end].to_string());
        s = s[end..].trim_start();
    }
    (flags, s.to_string())
}

/// Heredoc markers (`<<EOF`, `<<-EOF`, `<<"EOF"`) in an instruction's arguments.
fn heredoc_markers(args: &str) -> Vec<(String, bool, bool)> {
    let mut out = Vec::new();
    let b = args.as_bytes();
    let mut i = 0;
    while i + 2 < b.len() {
        if &b[i..i + 2] == b"<<" && (i == 0 || b[i - 1] != b'<') {
            let mut j = i + 2;
            let chomp = b.get(j) == Some(&b'-');
            if chomp {
                j += 1;
            }
            let quote = match b.get(j) {
                Some(b'"') => Some(b'"'),
                Some(b'\'') => Some(b'\''),
                _ => None,
            };
            if quote.is_some() {
                j += 1;
            }
            let start = j;
            while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
                j += 1;
            }
            if j > start {
                let name = args[start..j].to_string();
                if let Some(q) = quote {
                    if b.get(j) == Some(&q) {
                        j += 1;
                    }
                }
                out.push((name, chomp, quote.is_none()));
                i = j;
                continue;
            }
        }
        i += 1;
    }
    out
}

/// Parses Dockerfile text; `file` names it in errors.
pub fn parse(text: &str, file: &str) -> Result<Ast, BuildError> {
    let lines: Vec<&str> = text.lines().collect();
    let mut escape = '\\';
    let mut syntax = None;
    let mut i = 0;
    // Directives: only in the leading comment block, before anything else.
    while i < lines.len() {
        let l = lines[i].trim();
        let Some(body) = l.strip_prefix('#') else {
            break;
        };
        let Some((k, v)) = body.split_once('=') else {
            break;
        };
        let k = k.trim().to_ascii_lowercase();
        let v = v.trim();
        match k.as_str() {
            "escape" => {
                escape = match v {
                    "\\" => '\\',
                    "`" => '`',
                    _ => {
                        return Err(BuildError::Parse {
                            file: file.into(),
                            line: i + 1,
                            msg: format!("invalid escape token '{v}' does not match ` or \\"),
                        })
                    }
                }
            }
            "syntax" => syntax = Some(v.to_string()),
            _ => break,
        }
        i += 1;
    }
    let mut nodes = Vec::new();
    while i < lines.len() {
        let raw = lines[i];
        if raw.trim().is_empty() || is_comment(raw) {
            i += 1;
            continue;
        }
        let start = i;
        let mut joined = String::new();
        let mut original = String::new();
        loop {
            let l = lines[i];
            let trimmed = l.trim_end();
            if i > start && (is_comment(l) || l.trim().is_empty()) {
                i += 1;
                if i >= lines.len() {
                    break;
                }
                continue;
            }
            if !original.is_empty() {
                original.push('\n');
            }
            original.push_str(trimmed.strip_suffix(escape).unwrap_or(trimmed));
            if let Some(stripped) = trimmed.strip_suffix(escape) {
                joined.push_str(stripped);
                i += 1;
                if i >= lines.len() {
                    break;
                }
                continue;
            }
            joined.push_str(trimmed);
            i += 1;
            break;
        }
        let end = i;
        let s = joined.trim_start();
        let kw_end = s.find(char::is_whitespace).unwrap_or(s.len());
        let keyword = s[..kw_end].to_ascii_uppercase();
        let rest = s[kw_end..].trim_start();
        let (flags, args) = split_flags(rest);
        let mut heredocs = Vec::new();
        if matches!(keyword.as_str(), "RUN" | "COPY" | "ADD") {
            for (name, chomp, expand) in heredoc_markers(&args) {
                let mut content = String::new();
                let mut found = false;
                while i < lines.len() {
                    let l = lines[i];
                    i += 1;
                    let cmp = if chomp { l.trim_start_matches('\t') } else { l };
                    if cmp == name {
                        found = true;
                        break;
                    }
                    content.push_str(cmp);
                    content.push('\n');
                }
                if !found {
                    return Err(BuildError::Parse {
                        file: file.into(),
                        line: start + 1,
                        msg: format!("unterminated heredoc {name}"),
                    });
                }
                heredocs.push(Heredoc {
                    name,
                    content,
                    expand,
                });
            }
        }
        nodes.push(Node {
            keyword,
            flags,
            args,
            original: original
                .lines()
                .map(str::trim)
                .collect::<Vec<_>>()
                .join(" "),
            heredocs,
            start_line: start + 1,
            end_line: end.max(start + 1),
        });
    }
    Ok(Ast {
        escape,
        syntax,
        nodes,
    })
}
