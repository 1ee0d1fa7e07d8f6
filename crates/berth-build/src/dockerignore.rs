//! `.dockerignore`: Docker's pattern rules (moby `patternmatcher` and `ignorefile`).
//!
//! - Lines starting with `#` are comments; others are trimmed, and empty ones skipped.
//! - `!` marks an exception; the pattern is cleaned as Go's `filepath.Clean` does (`.` and
//!   `..` resolved, duplicate `/` dropped) and a leading `/` removed.
//! - `*` matches any run of characters but `/`, `?` one character but `/`, `[a-z]` / `[^a-z]`
//!   a class, `\` escapes the next character, `**` any number of directories (`**/x` also
//!   matches `x`; a trailing `**` matches everything below).
//! - A path is excluded when a pattern matches it or one of its parent directories; the last
//!   pattern that matches decides (so `!` re-includes what an earlier pattern excluded).

use crate::BuildError;

/// One pattern, cleaned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    /// The cleaned pattern, without the `!`.
    pub text: String,
    /// An exception (`!pattern`): re-includes what it matches.
    pub exclusion: bool,
}

/// Go's `filepath.Clean` on a `/`-separated path.
pub fn clean(p: &str) -> String {
    if p.is_empty() {
        return ".".into();
    }
    let rooted = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            c => parts.push(c),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

/// Parses a `.dockerignore` file into patterns (Docker's `ignorefile.ReadAll`).
pub fn parse(content: &str) -> Vec<Pattern> {
    let content = content.strip_prefix('\u{feff}').unwrap_or(content);
    let mut out = Vec::new();
    for line in content.lines() {
        if line.starts_with('#') {
            continue;
        }
        let mut p = line.trim();
        if p.is_empty() {
            continue;
        }
        let exclusion = p.starts_with('!');
        if exclusion {
            p = p[1..].trim();
        }
        let mut text = String::new();
        if !p.is_empty() {
            text = clean(p);
            if text.len() > 1 && text.starts_with('/') {
                text.remove(0);
            }
        }
        out.push(Pattern { text, exclusion });
    }
    out
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Lit(char),
    /// `*`: any run without `/`.
    Star,
    /// `?`: one character but `/`.
    Any,
    /// `**` (with its `/`) before more pattern: nothing, or anything ending in `/`.
    Dirs,
    /// A trailing `**`: anything.
    All,
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

#[derive(Debug, Clone)]
enum Kind {
    Exact(String),
    Prefix(String),
    Suffix(String),
    Glob(Vec<Tok>),
}

#[derive(Debug, Clone)]
struct Compiled {
    exclusion: bool,
    kind: Kind,
}

fn compile(p: &str) -> Result<Kind, BuildError> {
    #[derive(PartialEq)]
    enum T {
        Exact,
        Prefix,
        Suffix,
        Regex,
    }
    let bad = || BuildError::Pattern(format!("syntax error in pattern: {p}"));
    let chars: Vec<char> = p.chars().collect();
    let mut toks = Vec::new();
    let mut t = T::Exact;
    let mut i = 0;
    let mut first = true;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '*' if chars.get(i) == Some(&'*') => {
                i += 1;
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                if i >= chars.len() {
                    if t == T::Exact {
                        t = T::Prefix;
                    } else {
                        toks.push(Tok::All);
                        t = T::Regex;
                    }
                } else {
                    toks.push(Tok::Dirs);
                    t = T::Regex;
                }
                if first {
                    t = T::Suffix;
                }
            }
            '*' => {
                toks.push(Tok::Star);
                t = T::Regex;
            }
            '?' => {
                toks.push(Tok::Any);
                t = T::Regex;
            }
            '\\' => match chars.get(i) {
                Some(&n) => {
                    i += 1;
                    toks.push(Tok::Lit(n));
                    t = T::Regex;
                }
                None => toks.push(Tok::Lit('\\')),
            },
            '[' => {
                let mut negated = false;
                if chars.get(i) == Some(&'^') {
                    negated = true;
                    i += 1;
                }
                let mut ranges = Vec::new();
                loop {
                    let mut lo = *chars.get(i).ok_or_else(bad)?;
                    i += 1;
                    if lo == ']' && !ranges.is_empty() {
                        break;
                    }
                    if lo == '\\' {
                        lo = *chars.get(i).ok_or_else(bad)?;
                        i += 1;
                    }
                    let mut hi = lo;
                    if chars.get(i) == Some(&'-') && chars.get(i + 1).is_some_and(|c| *c != ']') {
                        hi = chars[i + 1];
                        i += 2;
                        if hi == '\\' {
                            hi = *chars.get(i).ok_or_else(bad)?;
                            i += 1;
                        }
                        if hi < lo {
                            return Err(bad());
                        }
                    }
                    ranges.push((lo, hi));
                }
                toks.push(Tok::Class { negated, ranges });
                t = T::Regex;
            }
            c => toks.push(Tok::Lit(c)),
        }
        first = false;
    }
    Ok(match t {
        T::Exact => Kind::Exact(p.to_string()),
        T::Prefix => Kind::Prefix(p[..p.len() - 2].to_string()),
        T::Suffix => Kind::Suffix(p[2..].to_string()),
        T::Regex => Kind::Glob(toks),
    })
}

fn tok_one(t: &Tok, c: char) -> bool {
    match t {
        Tok::Lit(l) => *l == c,
        Tok::Any => c != '/',
        Tok::Class { negated, ranges } => {
            ranges.iter().any(|(lo, hi)| *lo <= c && c <= *hi) != *negated
        }
        _ => false,
    }
}

/// Whether `toks` match all of `s` (`prefix`: whether they can consume all of `s` with
/// pattern left over, i.e. could match some path that starts with `s`).
fn glob(toks: &[Tok], s: &[char], prefix: bool) -> bool {
    let Some(t) = toks.first() else {
        return s.is_empty();
    };
    if prefix && s.is_empty() {
        return true;
    }
    match t {
        Tok::All => true,
        Tok::Dirs => {
            if prefix {
                return true;
            }
            glob(&toks[1..], s, prefix)
                || (0..s.len()).any(|i| s[i] == '/' && glob(&toks[1..], &s[i + 1..], prefix))
        }
        Tok::Star => {
            let mut i = 0;
            loop {
                if glob(&toks[1..], &s[i..], prefix) {
                    return true;
                }
                if i >= s.len() || s[i] == '/' {
                    return false;
                }
                i += 1;
            }
        }
        t => !s.is_empty() && tok_one(t, s[0]) && glob(&toks[1..], &s[1..], prefix),
    }
}

impl Compiled {
    fn matches(&self, path: &str) -> bool {
        match &self.kind {
            Kind::Exact(p) => path == p,
            Kind::Prefix(p) => path.starts_with(p.as_str()),
            Kind::Suffix(sfx) => {
                path.ends_with(sfx.as_str())
                    || sfx.strip_prefix('/').is_some_and(|rest| path == rest)
            }
            Kind::Glob(toks) => glob(toks, &path.chars().collect::<Vec<_>>(), false),
        }
    }

    /// Whether this pattern could match some path under `dir/`.
    fn could_match_under(&self, dir: &str) -> bool {
        let d = format!("{dir}/");
        match &self.kind {
            Kind::Exact(p) => p.starts_with(&d),
            Kind::Prefix(p) => p.starts_with(&d) || d.starts_with(p.as_str()),
            Kind::Suffix(_) => true,
            Kind::Glob(toks) => glob(toks, &d.chars().collect::<Vec<_>>(), true),
        }
    }
}

/// Decides which context paths are excluded.
#[derive(Debug, Clone, Default)]
pub struct Matcher {
    patterns: Vec<Compiled>,
}

impl Matcher {
    /// Compiles patterns; a lone `!` or a malformed `[` class is an error.
    pub fn new(patterns: Vec<Pattern>) -> Result<Matcher, BuildError> {
        let mut out = Vec::new();
        for p in patterns {
            let text = p.text.trim();
            if text.is_empty() {
                if p.exclusion {
                    return Err(BuildError::Pattern(
                        "illegal exclusion pattern: \"!\"".into(),
                    ));
                }
                continue;
            }
            out.push(Compiled {
                exclusion: p.exclusion,
                kind: compile(&clean(text))?,
            });
        }
        Ok(Matcher { patterns: out })
    }

    /// Parses and compiles a `.dockerignore` file.
    pub fn from_file(content: &str) -> Result<Matcher, BuildError> {
        Matcher::new(parse(content))
    }

    /// Whether any pattern is an exception (`!…`).
    pub fn has_exceptions(&self) -> bool {
        self.patterns.iter().any(|p| p.exclusion)
    }

    /// Whether the context-relative, `/`-separated path (`a/b/c`) is excluded.
    pub fn is_excluded(&self, rel: &str) -> bool {
        let file = clean(rel.trim_start_matches('/'));
        if file == "." || file.is_empty() {
            return false;
        }
        let parents: Vec<&str> = match file.rfind('/') {
            Some(i) => file[..i].split('/').collect(),
            None => Vec::new(),
        };
        let mut matched = false;
        for p in &self.patterns {
            if p.exclusion != matched {
                continue;
            }
            let hit =
                p.matches(&file) || (1..=parents.len()).any(|n| p.matches(&parents[..n].join("/")));
            if hit {
                matched = !p.exclusion;
            }
        }
        matched
    }

    /// Whether a directory can be skipped whole when walking the context: it is excluded
    /// and no exception could re-include anything below it.
    pub fn can_skip_dir(&self, rel: &str) -> bool {
        if !self.is_excluded(rel) {
            return false;
        }
        let dir = clean(rel.trim_start_matches('/'));
        !self
            .patterns
            .iter()
            .any(|p| p.exclusion && p.could_match_under(&dir))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleaning() {
        for (i, o) in [
            ("a/./b/../c", "a/c"),
            ("/a//b/", "/a/b"),
            ("../a", "../a"),
            ("/../a", "/a"),
            ("", "."),
            ("./", "."),
        ] {
            assert_eq!(clean(i), o, "{i}");
        }
        let ps = parse("# c\n /a/b \n!/c\n\n!  d/\n/\n");
        let got: Vec<_> = ps.iter().map(|p| (p.text.as_str(), p.exclusion)).collect();
        assert_eq!(
            got,
            [("a/b", false), ("c", true), ("d", true), ("/", false)]
        );
        assert!(Matcher::from_file("!").is_err());
        assert!(Matcher::from_file("[a").is_err());
    }
}
