//! The line AST (buildkit's `frontend/dockerfile/parser` rules): parser directives at the top
//! (`# escape=`, `# syntax=`, `# check=`), comments, empty lines, line continuations (comment
//! and empty lines inside one are skipped), heredocs for RUN/COPY/ADD, leading `--flags`, and
//! JSON (exec) form detection. One [`Node`] per instruction, with its line numbers.

use crate::shell::{self, NoEnv, Options};
use crate::BuildError;

/// A heredoc attached to an instruction (`RUN <<EOF … EOF`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    /// The delimiter word, quotes removed (`EOF`); for COPY/ADD also the file name.
    pub name: String,
    /// The lines between the marker and the delimiter, each ending in `\n`, as written.
    pub content: String,
    /// `<<-EOF`: leading tabs are stripped from the content and the delimiter line.
    pub chomp: bool,
    /// False when the delimiter was quoted (`<<"EOF"`, `<<'EOF'`): no variable expansion.
    pub expand: bool,
    /// The file descriptor before `<<` (`3<<EOF`), 0 when none was given.
    pub fd: u32,
}

impl Heredoc {
    /// The content as the command or file sees it: with `<<-`, leading tabs removed.
    pub fn data(&self) -> String {
        if !self.chomp {
            return self.content.clone();
        }
        let mut out = String::with_capacity(self.content.len());
        for l in self.content.split_inclusive('\n') {
            out.push_str(l.trim_start_matches('\t'));
        }
        out
    }
}

/// One instruction as written.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Upper-case keyword (`RUN`), as the user may write it in any case.
    pub keyword: String,
    /// Leading `--name[=value]` flags, quotes and escapes removed (`--mount=type=cache,…`).
    pub flags: Vec<String>,
    /// The arguments after the flags, continuation lines joined.
    pub args: String,
    /// The arguments in JSON form, for the instructions that accept it, when they are one.
    pub json: Option<Vec<String>>,
    /// The whole instruction as one line (continuations joined), for `Step N/M : …`.
    pub original: String,
    pub heredocs: Vec<Heredoc>,
    /// First and last line (1-based) the instruction occupies, heredoc bodies included.
    pub start_line: usize,
    pub end_line: usize,
}

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq)]
pub struct Ast {
    /// The escape character: `\` or `` ` `` (`# escape=`).
    pub escape: char,
    /// `# syntax=` value, if any (recorded; berth always uses its own front end).
    pub syntax: Option<String>,
    /// `# check=` value, if any.
    pub check: Option<String>,
    pub nodes: Vec<Node>,
}

/// Instructions whose arguments may be a JSON array.
const JSON_FORMS: [&str; 7] = ["RUN", "CMD", "ENTRYPOINT", "SHELL", "COPY", "ADD", "VOLUME"];

/// Message for `["a", 1]`.
pub const NOT_STRING_ARRAY: &str =
    "when using JSON array syntax, arrays must be comprised of strings only";

fn perr(file: &str, line: usize, msg: impl Into<String>) -> BuildError {
    BuildError::Parse {
        file: file.into(),
        line,
        msg: msg.into(),
    }
}

fn is_comment(line: &str) -> bool {
    line.trim_start().starts_with('#')
}

/// A `# key=value` directive line: `(key lower-cased, value)`.
fn directive(line: &str) -> Option<(String, String)> {
    let body = line.trim_start().strip_prefix('#')?.trim_start();
    let key_end = body
        .char_indices()
        .find(|(_, c)| !c.is_ascii_alphanumeric())
        .map(|(i, _)| i)
        .unwrap_or(body.len());
    let key = &body[..key_end];
    if !key.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return None;
    }
    let value = body[key_end..].trim_start().strip_prefix('=')?.trim();
    if value.is_empty() {
        return None;
    }
    Some((key.to_ascii_lowercase(), value.to_string()))
}

/// Removes a trailing escape character (and spaces or tabs after it): `(text, ends_here)`.
fn trim_continuation(line: &str, escape: char) -> (&str, bool) {
    let t = line.trim_end_matches([' ', '\t']);
    match t.strip_suffix(escape) {
        Some(s) => (s, false),
        None => (line, true),
    }
}

/// Splits leading `--flag[=value]` words off the arguments (Docker's `extractBuilderFlags`:
/// quotes and `\` escapes inside a flag are removed; a bare `--` ends the flags).
pub fn split_flags(rest: &str) -> (Vec<String>, String) {
    let chars: Vec<char> = rest.chars().collect();
    let mut flags = Vec::new();
    let mut i = 0;
    loop {
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        if i + 1 >= chars.len() || chars[i] != '-' || chars[i + 1] != '-' {
            return (flags, chars[i.min(chars.len())..].iter().collect());
        }
        let mut word = String::new();
        let mut blank_ok = false;
        let mut quote: Option<char> = None;
        while i < chars.len() {
            let c = chars[i];
            i += 1;
            match quote {
                None if c.is_whitespace() => break,
                None if c == '"' || c == '\'' => {
                    quote = Some(c);
                    blank_ok = true;
                }
                Some(q) if c == q => quote = None,
                _ if c == '\\' => {
                    if i < chars.len() {
                        word.push(chars[i]);
                        i += 1;
                    }
                }
                _ => word.push(c),
            }
        }
        if word == "--" {
            return (flags, chars[i.min(chars.len())..].iter().collect());
        }
        if blank_ok || !word.is_empty() {
            flags.push(word);
        }
    }
}

/// The JSON array form of `args`: `Ok(None)` when it is not one (shell form), an error when
/// it is an array of something other than strings.
pub fn json_array(args: &str) -> Result<Option<Vec<String>>, &'static str> {
    let t = args.trim_start();
    if !t.starts_with('[') {
        return Ok(None);
    }
    match serde_json::from_str::<Vec<serde_json::Value>>(t) {
        Ok(vals) => vals
            .into_iter()
            .map(|v| match v {
                serde_json::Value::String(s) => Ok(s),
                _ => Err(NOT_STRING_ARRAY),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Err(_) => Ok(None),
    }
}

/// A heredoc marker word (`<<EOF`, `<<-"EOF"`, `3<<EOF`): the heredoc without its content.
pub fn parse_heredoc_marker(word: &str) -> Option<Heredoc> {
    let lt = word.find("<<")?;
    let fd = &word[..lt];
    if !fd.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let mut rest = &word[lt + 2..];
    let chomp = rest.starts_with('-');
    if chomp {
        rest = &rest[1..];
    }
    if rest.is_empty() || rest.contains('<') {
        return None;
    }
    let plain = Options {
        skip_unset: true,
        ..Options::default()
    };
    let raw = Options {
        raw_quotes: true,
        ..plain
    };
    let (_, words) = shell::process_with(rest, &NoEnv, '\\', plain).ok()?;
    let [name] = words.as_slice() else {
        return None;
    };
    let (_, raw_words) = shell::process_with(rest, &NoEnv, '\\', raw).ok()?;
    let quotes = |s: &str| s.chars().filter(|c| *c == '"' || *c == '\'').count();
    let expand = raw_words.first().map(|r| quotes(r)) == Some(quotes(name));
    Some(Heredoc {
        name: name.clone(),
        content: String::new(),
        chomp,
        expand,
        fd: fd.parse().unwrap_or(0),
    })
}

fn heredoc_markers(args: &str) -> Vec<Heredoc> {
    let raw = Options {
        raw_quotes: true,
        raw_escapes: true,
        ..Options::default()
    };
    let words = shell::process_with(args, &NoEnv, '\\', raw)
        .map(|(_, w)| w)
        .unwrap_or_default();
    words
        .iter()
        .filter_map(|w| parse_heredoc_marker(w))
        .collect()
}

/// Parses Dockerfile text; `file` names it in errors.
pub fn parse(text: &str, file: &str) -> Result<Ast, BuildError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<&str> = text.lines().collect();
    let mut escape = '\\';
    let mut syntax = None;
    let mut check = None;
    let mut seen: Vec<String> = Vec::new();
    // Directives: only in the leading run of directive lines; anything else ends them, and an
    // unknown directive is a plain comment that ends them too.
    for (i, l) in lines.iter().enumerate() {
        let Some((k, v)) = directive(l) else { break };
        if !matches!(k.as_str(), "escape" | "syntax" | "check") {
            break;
        }
        if seen.contains(&k) {
            return Err(perr(
                file,
                i + 1,
                format!("only one {k} parser directive can be used"),
            ));
        }
        seen.push(k.clone());
        match k.as_str() {
            "escape" => {
                escape = match v.as_str() {
                    "\\" => '\\',
                    "`" => '`',
                    _ => {
                        return Err(perr(
                            file,
                            i + 1,
                            format!("invalid escape token '{v}' does not match ` or \\"),
                        ))
                    }
                }
            }
            "syntax" => syntax = Some(v),
            _ => check = Some(v),
        }
    }

    let mut nodes = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let start = i;
        let first = lines[i];
        i += 1;
        let first = if is_comment(first) {
            ""
        } else {
            first.trim_start()
        };
        let (text, mut ended) = trim_continuation(first, escape);
        if ended && text.trim().is_empty() {
            continue;
        }
        let mut line = text.to_string();
        while !ended && i < lines.len() {
            let l = lines[i];
            i += 1;
            if is_comment(l) || l.trim().is_empty() {
                continue;
            }
            let (t, e) = trim_continuation(l, escape);
            line.push_str(t);
            ended = e;
        }
        let trimmed = line.trim();
        let (kw, rest) = match trimmed.find(|c: char| c.is_whitespace()) {
            Some(p) => (&trimmed[..p], trimmed[p..].trim_start()),
            None => (trimmed, ""),
        };
        let keyword = kw.to_ascii_uppercase();
        let (flags, args) = split_flags(rest);
        let json = if JSON_FORMS.contains(&keyword.as_str()) {
            json_array(&args).map_err(|m| perr(file, start + 1, m))?
        } else {
            None
        };
        let mut heredocs = Vec::new();
        if matches!(keyword.as_str(), "RUN" | "COPY" | "ADD")
            && json.is_none()
            && args.contains("<<")
        {
            for mut h in heredoc_markers(&args) {
                let mut found = false;
                while i < lines.len() {
                    let l = lines[i];
                    i += 1;
                    let cand = if h.chomp {
                        l.trim_start_matches('\t')
                    } else {
                        l
                    };
                    if cand == h.name {
                        found = true;
                        break;
                    }
                    h.content.push_str(l);
                    h.content.push('\n');
                }
                if !found {
                    return Err(perr(file, start + 1, "unterminated heredoc"));
                }
                heredocs.push(h);
            }
        }
        nodes.push(Node {
            keyword,
            flags,
            args,
            json,
            original: trimmed.to_string(),
            heredocs,
            start_line: start + 1,
            end_line: i.max(start + 1),
        });
    }
    Ok(Ast {
        escape,
        syntax,
        check,
        nodes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags() {
        let (f, a) = split_flags("--from=a --mount=\"type=cache,target=/x y\" --link  cmd --x");
        assert_eq!(f, ["--from=a", "--mount=type=cache,target=/x y", "--link"]);
        assert_eq!(a, "cmd --x");
        let (f, a) = split_flags("--a -- --b c");
        assert_eq!(f, ["--a"]);
        assert_eq!(a, "--b c");
    }

    #[test]
    fn heredoc_markers_and_quotes() {
        let hs = heredoc_markers("<<EOF cat <<-'E2' 3<<\"E3\" x<<no");
        let got: Vec<_> = hs
            .iter()
            .map(|h| (h.name.as_str(), h.chomp, h.expand, h.fd))
            .collect();
        assert_eq!(
            got,
            [
                ("EOF", false, true, 0),
                ("E2", true, false, 0),
                ("E3", false, false, 3)
            ]
        );
    }

    #[test]
    fn directives() {
        let ast = parse(
            "#ESCAPE = `\n# syntax=x\n\n# escape=\\\nFROM a",
            "Dockerfile",
        )
        .unwrap();
        assert_eq!(ast.escape, '`');
        assert_eq!(ast.syntax.as_deref(), Some("x"));
        // After a plain comment, a directive is only a comment.
        let ast = parse("# hello\n# escape=`\nFROM a", "Dockerfile").unwrap();
        assert_eq!(ast.escape, '\\');
        let e = parse("# escape=`\n# escape=\\\nFROM a", "Dockerfile").unwrap_err();
        assert_eq!(
            e.to_string(),
            "Dockerfile:2: only one escape parser directive can be used"
        );
    }

    #[test]
    fn continuation_and_lines() {
        let ast = parse("FROM a\nRUN a \\  \n  # c\n\n  b\nCMD x", "Dockerfile").unwrap();
        assert_eq!(ast.nodes[1].args, "a   b");
        assert_eq!((ast.nodes[1].start_line, ast.nodes[1].end_line), (2, 5));
        assert_eq!(ast.nodes[2].start_line, 6);
    }
}
