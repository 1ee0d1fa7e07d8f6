//! `.dockerignore`: Docker's pattern rules. Patterns are cleaned (a leading `/` dropped, `.`
//! and `..` resolved), `#` lines are comments, `!` marks an exception, `**` matches any number
//! of directories, and a path is also excluded when one of its parent directories is. The last
//! matching pattern wins.

/// One pattern.
#[derive(Debug, Clone, PartialEq)]
pub struct Pattern {
    pub exclusion: bool,
    /// Cleaned, `/`-separated components.
    pub parts: Vec<String>,
}

/// Parses a .dockerignore file.
pub fn parse(content: &str) -> Vec<Pattern> {
    let mut out = Vec::new();
    for line in content.lines() {
        let line = line.trim_end_matches('\r');
        if line.starts_with('#') {
            continue;
        }
        let mut p = line.trim();
        if p.is_empty() {
            continue;
        }
        let mut exclusion = false;
        if let Some(rest) = p.strip_prefix('!') {
            exclusion = true;
            p = rest.trim();
        }
        let mut parts: Vec<String> = Vec::new();
        for c in p.split('/') {
            match c {
                "" | "." => {}
                ".." => {
                    parts.pop();
                }
                c => parts.push(c.to_string()),
            }
        }
        if parts.is_empty() {
            continue;
        }
        out.push(Pattern { exclusion, parts });
    }
    out
}

/// Shell glob of one component (`*`, `?`, `[…]`, `\` escapes); `*` does not cross `/`.
pub fn glob_match(pat: &[u8], s: &[u8]) -> bool {
    match pat.first() {
        None => s.is_empty(),
        Some(b'*') => {
            (0..=s.len()).any(|i| !s[..i].contains(&b'/') && glob_match(&pat[1..], &s[i..]))
        }
        Some(b'?') => !s.is_empty() && s[0] != b'/' && glob_match(&pat[1..], &s[1..]),
        Some(b'[') => {
            let Some(&c) = s.first() else { return false };
            let mut i = 1;
            let neg = matches!(pat.get(1), Some(b'!') | Some(b'^'));
            if neg {
                i += 1;
            }
            let start = i;
            let mut hit = false;
            while i < pat.len() && (pat[i] != b']' || i == start) {
                if i + 2 < pat.len() && pat[i + 1] == b'-' && pat[i + 2] != b']' {
                    hit |= pat[i] <= c && c <= pat[i + 2];
                    i += 3;
                } else {
                    hit |= pat[i] == c;
                    i += 1;
                }
            }
            i < pat.len() && hit != neg && glob_match(&pat[i + 1..], &s[1..])
        }
        Some(b'\\') if pat.len() > 1 => {
            s.first() == Some(&pat[1]) && glob_match(&pat[2..], &s[1..])
        }
        Some(p) => s.first() == Some(p) && glob_match(&pat[1..], &s[1..]),
    }
}

/// Matches pattern components against path components; `**` spans any number of them.
fn match_parts(pat: &[String], path: &[&str]) -> bool {
    match pat.first() {
        None => path.is_empty(),
        Some(p) if p == "**" => (0..=path.len()).any(|i| match_parts(&pat[1..], &path[i..])),
        Some(p) => {
            !path.is_empty()
                && glob_match(p.as_bytes(), path[0].as_bytes())
                && match_parts(&pat[1..], &path[1..])
        }
    }
}

/// Decides which context paths are excluded.
#[derive(Debug, Clone, Default)]
pub struct Matcher {
    patterns: Vec<Pattern>,
}

impl Matcher {
    pub fn new(patterns: Vec<Pattern>) -> Matcher {
        Matcher { patterns }
    }

    pub fn from_file(content: &str) -> Matcher {
        Matcher::new(parse(content))
    }

    /// Whether the context-relative path (`a/b/c`) is excluded: by a pattern matching it or
    /// one of its parent directories, unless a later `!` pattern re-includes it.
    pub fn is_excluded(&self, rel: &str) -> bool {
        let parts: Vec<&str> = rel
            .split('/')
            .filter(|c| !c.is_empty() && *c != ".")
            .collect();
        if parts.is_empty() {
            return false;
        }
        let mut excluded = false;
        for p in &self.patterns {
            // A pattern matches the path or any of its parents.
            let hit = (1..=parts.len()).any(|n| match_parts(&p.parts, &parts[..n]));
            if hit {
                excluded = !p.exclusion;
            }
        }
        excluded
    }

    /// Whether a directory can be skipped whole: excluded, and no exception could re-include
    /// anything below it.
    pub fn skip_dir(&self, rel: &str) -> bool {
        self.is_excluded(rel) && !self.patterns.iter().any(|p| p.exclusion)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        // (patterns, path, excluded)
        let rows: &[(&str, &str, bool)] = &[
            ("*.log", "a.log", true),
            ("*.log", "dir/a.log", false),
            ("**/*.log", "dir/a.log", true),
            ("**/*.log", "a.log", true),
            ("dir", "dir/sub/file", true),
            ("/dir/", "dir/file", true),
            ("dir/*", "dir/x", true),
            ("dir/*", "dir", false),
            ("*.md\n!README.md", "README.md", false),
            ("*.md\n!README.md", "NOTES.md", true),
            ("!README.md\n*.md", "README.md", true),
            ("data/*.key", "data/a.key", true),
            ("data/*.key", "data/a", false),
            ("# comment\nx", "x", true),
            ("a/**/b", "a/b", true),
            ("a/**/b", "a/x/y/b", true),
            ("a/**/b", "a/x/y/c", false),
            ("f?le", "file", true),
            ("[a-c]at", "bat", true),
            ("[!a-c]at", "bat", false),
            ("./a/../b", "b", true),
            ("node_modules", "node_modules/x/y.js", true),
            ("Dockerfile", "Dockerfile", true),
        ];
        for (pats, path, want) in rows {
            let m = Matcher::from_file(pats);
            assert_eq!(m.is_excluded(path), *want, "patterns {pats:?} path {path}");
        }
        let m = Matcher::from_file("build\n!build/keep");
        assert!(!m.skip_dir("build"), "an exception could re-include");
        assert!(!m.is_excluded("build/keep"));
        assert!(m.is_excluded("build/other"));
        assert!(Matcher::from_file("build").skip_dir("build"));
    }
}
