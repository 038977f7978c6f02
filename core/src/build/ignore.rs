//! `.dockerignore`: which paths of a build context are left out, by docker's
//! rules (moby's patternmatcher): Go's `filepath.Match` per pattern plus `**`.
//!
//! Docker still sends the Dockerfile and `.dockerignore` itself even when a
//! pattern names them; isola's executor reads both from the context directory
//! before any filtering, so it never needs them kept out of a pattern here.

/// One bad line of a `.dockerignore`: docker refuses the whole file for it,
/// so the build stops rather than send paths the user meant to keep out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(".dockerignore line {line}: pattern {pattern:?} {why}; fix or remove the line")]
pub struct IgnoreError {
    pub line: usize,
    pub pattern: String,
    pub why: &'static str,
}

/// The patterns of one `.dockerignore`, in file order.
#[derive(Debug, Clone, Default)]
pub struct Ignore {
    rules: Vec<Rule>,
}

#[derive(Debug, Clone)]
struct Rule {
    /// `!pattern`: re-includes what earlier lines excluded.
    exception: bool,
    pattern: Pattern,
}

impl Ignore {
    /// Parse the text of a `.dockerignore`: one pattern a line; a line whose
    /// first column is `#` is a comment; surrounding whitespace is trimmed and
    /// blank lines skipped; each pattern is cleaned as Go's `filepath.Clean`
    /// cleans it (`./a/../b` is `b`, `x/` is `x`) and a leading `/` dropped, so
    /// every pattern is relative to the context root; `!` marks an exception.
    /// A pattern `filepath.Match` would refuse (an unclosed `[`, a bare `!`, a
    /// trailing `\`) is an error, as in docker.
    pub fn parse(text: &str) -> Result<Ignore, IgnoreError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut rules = Vec::new();
        for (index, line) in text.lines().enumerate() {
            if line.starts_with('#') {
                continue;
            }
            let trimmed = line.trim();
            if trimmed.is_empty() {
                continue;
            }
            let bad = |why| IgnoreError {
                line: index + 1,
                pattern: trimmed.to_string(),
                why,
            };
            let (exception, body) = match trimmed.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, trimmed),
            };
            if body.is_empty() {
                return Err(bad("is an exception of nothing"));
            }
            let cleaned = clean(body);
            let relative = match cleaned.strip_prefix('/') {
                Some(rest) if !rest.is_empty() => rest.to_string(),
                _ => cleaned,
            };
            let pattern = Pattern::compile(&relative).map_err(bad)?;
            rules.push(Rule { exception, pattern });
        }
        Ok(Ignore { rules })
    }

    /// Whether `rel` (relative to the context root, `/`-separated) is left
    /// out. The last pattern that matches `rel` or one of its parent
    /// directories decides, so `dir` excludes `dir/x` and a later `!dir/x`
    /// brings it back. `is_dir` is not consulted: docker's cleaning drops a
    /// trailing `/`, so `x/` excludes a file named `x` as well.
    pub fn excludes(&self, rel: &str, is_dir: bool) -> bool {
        let _ = is_dir;
        let rel = clean(rel);
        let mut excluded = false;
        for rule in &self.rules {
            // A rule that cannot change the verdict needs no matching.
            if rule.exception != excluded {
                continue;
            }
            if rule.pattern.matches_self_or_parent(&rel) {
                excluded = !rule.exception;
            }
        }
        excluded
    }

    /// Whether the excluded directory `rel_dir` must still be walked: an
    /// exception after the last pattern that excluded it could match a path
    /// below it (`dir` then `!dir/keep`, or `!**/keep`). When this is false
    /// nothing under `rel_dir` can be included and the walk may skip it.
    ///
    /// Docker's own walker only looks at exceptions whose text starts with
    /// `rel_dir/`, so it never finds `dir/keep` for `!**/keep`; this answer
    /// is a superset, and `excludes` still decides each path by the
    /// documented rule.
    pub fn may_reinclude_under(&self, rel_dir: &str) -> bool {
        let rel_dir = clean(rel_dir);
        // Exceptions before the last rule matching the directory (or a
        // parent) are overridden by it for everything below, too.
        let start = self
            .rules
            .iter()
            .rposition(|r| r.pattern.matches_self_or_parent(&rel_dir))
            .map_or(0, |i| i + 1);
        let below = format!("{rel_dir}/");
        self.rules[start..]
            .iter()
            .any(|r| r.exception && r.pattern.could_match_with_prefix(&below))
    }

    /// Whether any line is a `!` exception.
    pub fn has_exceptions(&self) -> bool {
        self.rules.iter().any(|r| r.exception)
    }
}

/// Go's `path.Clean`: the shortest lexically equal path.
fn clean(path: &str) -> String {
    if path.is_empty() {
        return ".".to_string();
    }
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => match parts.last() {
                Some(&last) if last != ".." => {
                    parts.pop();
                }
                _ if rooted => {}
                _ => parts.push(".."),
            },
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Literal(char),
    /// `?`: one character other than `/`.
    One,
    /// `*`: any run of characters other than `/`.
    Star,
    /// `**` (with the `/` after it, if any) inside a pattern: nothing, or
    /// anything ending in `/` — any number of whole directories.
    Dirs,
    /// `**` at the end: anything at all.
    Rest,
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

impl Token {
    /// Whether this token consumes `c` and moves on (the single-character tokens).
    fn takes(&self, c: char) -> bool {
        match self {
            Token::Literal(l) => *l == c,
            Token::One => c != '/',
            Token::Class { negated, ranges } => {
                ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *negated
            }
            Token::Star | Token::Dirs | Token::Rest => false,
        }
    }
}

/// A compiled pattern, matched as a small NFA so no pattern (however many
/// stars) costs more than its length times the path's.
#[derive(Debug, Clone)]
struct Pattern {
    tokens: Vec<Token>,
}

/// An NFA state: the token index, and whether we are inside a `**`'s
/// directory run (which may only end right after a `/`).
type States = Vec<bool>;

impl Pattern {
    fn compile(text: &str) -> Result<Pattern, &'static str> {
        let chars: Vec<char> = text.chars().collect();
        let mut tokens = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            i += 1;
            match c {
                '*' if chars.get(i) == Some(&'*') => {
                    i += 1;
                    if chars.get(i) == Some(&'/') {
                        i += 1;
                    }
                    tokens.push(if i == chars.len() {
                        Token::Rest
                    } else {
                        Token::Dirs
                    });
                }
                '*' => tokens.push(Token::Star),
                '?' => tokens.push(Token::One),
                '\\' => {
                    let escaped = chars.get(i).ok_or("ends with a lone `\\`")?;
                    i += 1;
                    tokens.push(Token::Literal(*escaped));
                }
                '[' => {
                    let (class, next) = parse_class(&chars, i)?;
                    tokens.push(class);
                    i = next;
                }
                other => tokens.push(Token::Literal(other)),
            }
        }
        Ok(Pattern { tokens })
    }

    fn matches_self_or_parent(&self, rel: &str) -> bool {
        if self.matches(rel) {
            return true;
        }
        rel.match_indices('/')
            .any(|(at, _)| self.matches(&rel[..at]))
    }

    fn matches(&self, path: &str) -> bool {
        let end = self.tokens.len();
        self.run(path).is_some_and(|states| states[2 * end])
    }

    /// Whether some path starting with `prefix` could match: the NFA is
    /// still alive once `prefix` is consumed.
    fn could_match_with_prefix(&self, prefix: &str) -> bool {
        self.run(prefix).is_some_and(|states| {
            let end = self.tokens.len();
            // Having ended exactly at the prefix's `/` names no path below it.
            states.iter().enumerate().any(|(s, &on)| on && s != 2 * end)
        })
    }

    /// Run the NFA over `input`; `None` once no state is left.
    fn run(&self, input: &str) -> Option<States> {
        let mut states = vec![false; 2 * (self.tokens.len() + 1)];
        states[0] = true;
        self.close(&mut states);
        for c in input.chars() {
            states = self.step(&states, c);
            if !states.iter().any(|&on| on) {
                return None;
            }
        }
        Some(states)
    }

    /// Add the states reachable without consuming a character. State `2*i`
    /// is "at token i", `2*i+1` is "inside token i's directory run".
    fn close(&self, states: &mut States) {
        for i in 0..self.tokens.len() {
            if !states[2 * i] {
                continue;
            }
            match self.tokens[i] {
                Token::Star | Token::Rest => states[2 * (i + 1)] = true,
                Token::Dirs => {
                    states[2 * (i + 1)] = true;
                    states[2 * i + 1] = true;
                }
                _ => {}
            }
        }
    }

    fn step(&self, states: &States, c: char) -> States {
        let mut next = vec![false; states.len()];
        for (i, token) in self.tokens.iter().enumerate() {
            if states[2 * i] {
                match token {
                    Token::Star if c != '/' => next[2 * i] = true,
                    Token::Rest => next[2 * i] = true,
                    t if t.takes(c) => next[2 * (i + 1)] = true,
                    _ => {}
                }
            }
            if states[2 * i + 1] {
                next[2 * i + 1] = true;
                if c == '/' {
                    next[2 * (i + 1)] = true;
                }
            }
        }
        self.close(&mut next);
        next
    }
}

/// Parse a class after its `[` as `filepath.Match` does: an optional `^`,
/// then one or more `c` or `lo-hi` items (`\` escapes), then `]`. Returns the
/// token and the index after the `]`.
fn parse_class(chars: &[char], mut i: usize) -> Result<(Token, usize), &'static str> {
    const UNCLOSED: &str = "has a `[` without its `]`";
    let negated = chars.get(i) == Some(&'^');
    if negated {
        i += 1;
    }
    let mut ranges = Vec::new();
    loop {
        match chars.get(i) {
            None => return Err(UNCLOSED),
            Some(']') if !ranges.is_empty() => {
                return Ok((Token::Class { negated, ranges }, i + 1))
            }
            _ => {}
        }
        let (lo, after_lo) = class_char(chars, i)?;
        i = after_lo;
        let mut hi = lo;
        if chars.get(i) == Some(&'-') {
            let (end, after_hi) = class_char(chars, i + 1)?;
            hi = end;
            i = after_hi;
            if hi < lo {
                return Err("has a class range that runs backwards");
            }
        }
        ranges.push((lo, hi));
    }
}

/// One character of a class, unescaped; `-` and `]` must be escaped there.
fn class_char(chars: &[char], i: usize) -> Result<(char, usize), &'static str> {
    match chars.get(i) {
        None => Err("has a `[` without its `]`"),
        Some('-') | Some(']') => Err("has an unescaped `-` or `]` inside a class"),
        Some('\\') => match chars.get(i + 1) {
            Some(&c) => Ok((c, i + 2)),
            None => Err("has a `[` without its `]`"),
        },
        Some(&c) => Ok((c, i + 1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn excluded(patterns: &str, path: &str) -> bool {
        Ignore::parse(patterns).unwrap().excludes(path, false)
    }

    #[test]
    fn each_rule() {
        #[rustfmt::skip]
        let table: &[(&str, &str, bool)] = &[
            // comments and blank lines
            ("# a\n\n   \n", "# a", false),
            ("#a", "#a", false),
            (" #a", "#a", true), // only column 1 starts a comment
            ("  a  \n", "a", true),
            // literal names, anchored at the root
            ("a", "a", true),
            ("a", "b/a", false),
            ("a/b", "a/b", true),
            ("a/b", "a", false),
            // a pattern matching a parent excludes what is below it
            ("dir", "dir/x/y", true),
            ("dir", "dirx", false),
            ("dir/*", "dir/x/y", true),
            // `*` within one component
            ("*", "a", true),
            ("*", "a/b", true), // through the parent rule
            ("*.md", "README.md", true),
            ("*.md", "docs/x.md", false),
            ("*/temp*", "somedir/temporary.txt", true),
            ("*/*/temp*", "somedir/subdir/temporary.txt", true),
            ("*/*/temp*", "somedir/temporary.txt", false),
            // `**`
            ("**/*.go", "main.go", true),
            ("**/*.go", "a/b/c.go", true),
            ("**/*.go", "a/b/c.goo", false),
            ("a/**/b", "a/b", true),
            ("a/**/b", "a/x/y/b", true),
            ("a/**/b", "a/xb", false),
            ("a/**/b", "b", false),
            ("**", "anything/at/all", true),
            ("a/**", "a/x", true),
            ("a/**", "a", false),
            ("a**b", "ab", true),
            ("a**b", "ax/b", true),
            // `?` and classes
            ("temp?", "tempa", true),
            ("temp?", "temp", false),
            ("temp?", "tempab", false),
            ("a?b", "a/b", false),
            ("[a-c]x", "bx", true),
            ("[a-c]x", "dx", false),
            ("[^a]x", "bx", true),
            ("[^a]x", "ax", false),
            ("[!a]x", "!x", true), // `!` is a member, `^` negates
            ("[\\]]", "]", true),
            // exceptions, in both orders
            ("*.md\n!README.md", "README.md", false),
            ("*.md\n!README.md", "CHANGES.md", true),
            ("!README.md\n*.md", "README.md", true),
            ("*.md\n!README*.md\nREADME-secret.md", "README-secret.md", true),
            ("*.md\n!README*.md\nREADME-secret.md", "README-x.md", false),
            ("*.md\nREADME-secret.md\n!README*.md", "README-secret.md", false),
            ("dir\n!dir/keep", "dir/keep", false),
            ("dir\n!dir/keep", "dir/keep/inner", false),
            ("dir\n!dir/keep", "dir/other", true),
            ("*\n!src", "src/main.rs", false),
            ("*\n!src", "target/x", true),
            // patterns are cleaned
            ("./x", "x", true),
            ("/x", "x", true),
            ("x/", "x", true),
            ("x/", "x/y", true),
            ("a/../b", "b", true),
            ("a//b/./c", "a/b/c", true),
            ("!./x\n", "x", false),
            // escapes
            ("\\*", "*", true),
            ("\\*", "a", false),
            ("a\\?", "a?", true),
            ("a\\?", "ab", false),
        ];
        for (patterns, path, want) in table {
            assert_eq!(
                excluded(patterns, path),
                *want,
                "patterns {patterns:?}, path {path:?}"
            );
        }
    }

    #[test]
    fn reinclusion_under_an_excluded_directory() {
        let ignore = Ignore::parse("dir\n!dir/keep").unwrap();
        assert!(ignore.excludes("dir", true));
        assert!(ignore.may_reinclude_under("dir"));
        assert!(!ignore.may_reinclude_under("other"));
        assert!(!ignore.may_reinclude_under("dir/keep2"));

        let anywhere = Ignore::parse("dir\n!**/keep").unwrap();
        assert!(anywhere.may_reinclude_under("dir"));
        assert!(!anywhere.excludes("dir/a/keep", false));

        // An exception before the exclusion is overridden for all below it.
        let overridden = Ignore::parse("!dir/keep\ndir").unwrap();
        assert!(!overridden.may_reinclude_under("dir"));
        assert!(overridden.excludes("dir/keep", false));

        let none = Ignore::parse("dir").unwrap();
        assert!(!none.may_reinclude_under("dir"));
        assert!(!none.has_exceptions());
        assert!(ignore.has_exceptions());
    }

    #[test]
    fn bad_patterns_are_refused_with_their_line() {
        for (text, line) in [
            ("ok\n!", 2),
            ("[abc", 1),
            ("a\n\n[]", 3),
            ("[z-a]", 1),
            ("[a-]", 1),
            ("x\\", 1),
        ] {
            let err = Ignore::parse(text).unwrap_err();
            assert_eq!(err.line, line, "{text:?}: {err}");
            assert!(err.to_string().contains(".dockerignore line"));
        }
    }

    #[test]
    fn cleans_as_go_does() {
        for (raw, want) in [
            ("", "."),
            ("./", "."),
            ("a/b/..", "a"),
            ("../a", "../a"),
            ("/../a", "/a"),
            ("a/../..", ".."),
            ("//x//", "/x"),
        ] {
            assert_eq!(clean(raw), want, "{raw:?}");
        }
    }

    #[test]
    fn a_byte_order_mark_is_not_part_of_the_first_pattern() {
        assert!(excluded("\u{feff}a", "a"));
    }

    proptest! {
        #[test]
        fn never_panics(text in "(?s).{0,200}", path in "[a-z/.*?\\[\\]!^\\\\-]{0,40}") {
            if let Ok(ignore) = Ignore::parse(&text) {
                let _ = ignore.excludes(&path, false);
                let _ = ignore.may_reinclude_under(&path);
            }
        }

        #[test]
        fn pattern_syntax_never_panics(text in "[a*?\\[\\]^!\\\\/-]{0,30}", path in "[a/]{0,12}") {
            if let Ok(ignore) = Ignore::parse(&text) {
                let _ = ignore.excludes(&path, true);
                let _ = ignore.may_reinclude_under(&path);
            }
        }
    }
}
