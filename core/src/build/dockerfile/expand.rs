//! Docker's variable expansion ("Environment replacement"): `$V`, `${V}`,
//! `${V:-word}`, `${V:+word}`, the escape character and quote removal.
//!
//! This follows the rules of BuildKit's shell lexer (`ProcessWord` and
//! `ProcessWords`): single quotes stop expansion, double quotes do not, the
//! escape character makes the next character literal (inside double quotes
//! too), an escape at the very end is dropped, `$` before something that is
//! not a name stays a literal `$`, and unset variables expand to nothing.
//!
//! Supported modifiers: `:-` and `:+` (docker's classic builder has only
//! these) and `-` and `+` without the colon (unset rather than unset-or-empty,
//! as BuildKit does). BuildKit also knows `:?`, `?`, `#`, `##`, `%`, `%%`,
//! `/`, `//` and `:offset`; those are refused with [`ExpandError::Unsupported`]
//! naming the modifier rather than silently expanded differently.

use std::cell::RefCell;

/// The instructions docker expands variables in (ARG defaults too). RUN,
/// CMD and ENTRYPOINT are not: their shell does it when it runs.
pub const EXPANDED_IN: &[&str] = &[
    "ADD",
    "ARG",
    "COPY",
    "ENV",
    "EXPOSE",
    "FROM",
    "LABEL",
    "ONBUILD",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

/// Why a word could not be expanded; each names the text it was given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpandError {
    #[error("`{text}`: `${{` without its closing `}}`")]
    UnterminatedBrace { text: String },
    #[error("`{text}`: a {quote} quote without its closing one")]
    UnterminatedQuote { text: String, quote: char },
    #[error("`{text}`: `${{}}` names no variable (write `${{NAME}}`)")]
    EmptyName { text: String },
    #[error(
        "`{text}`: the modifier `{modifier}` in `${{...}}` is not supported (use `:-` or `:+`)"
    )]
    Unsupported { text: String, modifier: String },
}

type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Expands one word and removes its quotes: an ENV value, WORKDIR, USER, a
/// COPY path. Unquoted whitespace is kept.
pub fn expand_word(raw: &str, escape: char, lookup: Lookup<'_>) -> Result<String, ExpandError> {
    let mut lexer = Lexer::new(raw, escape, lookup);
    let (word, _) = lexer.process_until(None)?;
    Ok(word)
}

/// Expands and splits on unquoted whitespace, including whitespace a `$V`
/// outside quotes brought in (as a shell does): EXPOSE, VOLUME, flag lists.
pub fn expand_words(
    raw: &str,
    escape: char,
    lookup: Lookup<'_>,
) -> Result<Vec<String>, ExpandError> {
    let mut lexer = Lexer::new(raw, escape, lookup);
    let (_, words) = lexer.process_until(None)?;
    Ok(words.finish())
}

/// The names a raw string refers to ($V, ${V...}), each once, in order of
/// first use: the cache records which build args a step uses. Default and
/// alternative words are looked into whether or not they would be used; on
/// malformed text the names before the fault are returned.
pub fn referenced_names(raw: &str, escape: char) -> Vec<String> {
    let names = RefCell::new(Vec::<String>::new());
    let record = |name: &str| {
        // `$1`, `$@` and the like are the shell's, never a build arg.
        let is_variable = name.starts_with(|c: char| c.is_alphabetic() || c == '_');
        let mut names = names.borrow_mut();
        if is_variable && !names.iter().any(|known| known == name) {
            names.push(name.to_string());
        }
        None
    };
    let mut lexer = Lexer::new(raw, escape, &record);
    let _ = lexer.process_until(None);
    names.into_inner()
}

/// Words as a shell splits them: whitespace from literal text or from an
/// unquoted expansion ends a word; quoted or escaped characters never do.
#[derive(Default)]
struct Words {
    done: Vec<String>,
    current: String,
    in_word: bool,
}

impl Words {
    fn add_splittable(&mut self, c: char) {
        if c.is_whitespace() {
            if self.in_word {
                self.done.push(std::mem::take(&mut self.current));
                self.in_word = false;
            }
        } else {
            self.add_raw(c);
        }
    }

    fn add_raw(&mut self, c: char) {
        self.current.push(c);
        self.in_word = true;
    }

    fn finish(mut self) -> Vec<String> {
        if self.in_word {
            self.done.push(self.current);
        }
        self.done
    }
}

struct Lexer<'a> {
    text: &'a str,
    chars: Vec<char>,
    pos: usize,
    escape: char,
    lookup: Lookup<'a>,
}

impl<'a> Lexer<'a> {
    fn new(text: &'a str, escape: char, lookup: Lookup<'a>) -> Self {
        Lexer {
            text,
            chars: text.chars().collect(),
            pos: 0,
            escape,
            lookup,
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += 1;
        Some(c)
    }

    /// Processes up to `stop` (consumed) or the end, giving the expanded
    /// text and its words. With a `stop`, reaching the end is an error: the
    /// only caller with one is the word inside `${...}`.
    fn process_until(&mut self, stop: Option<char>) -> Result<(String, Words), ExpandError> {
        let mut result = String::new();
        let mut words = Words::default();
        while let Some(c) = self.peek() {
            if Some(c) == stop {
                self.pos += 1;
                return Ok((result, words));
            }
            match c {
                '\'' => {
                    let quoted = self.single_quoted()?;
                    quoted.chars().for_each(|q| words.add_raw(q));
                    result.push_str(&quoted);
                }
                '"' => {
                    let quoted = self.double_quoted()?;
                    quoted.chars().for_each(|q| words.add_raw(q));
                    result.push_str(&quoted);
                }
                '$' => {
                    let value = self.dollar()?;
                    value.chars().for_each(|v| words.add_splittable(v));
                    result.push_str(&value);
                }
                _ => {
                    self.pos += 1;
                    if c == self.escape {
                        // An escape at the very end escapes nothing and goes.
                        let Some(escaped) = self.next() else { break };
                        words.add_raw(escaped);
                        result.push(escaped);
                    } else {
                        words.add_splittable(c);
                        result.push(c);
                    }
                }
            }
        }
        match stop {
            Some(_) => Err(ExpandError::UnterminatedBrace {
                text: self.text.to_string(),
            }),
            None => Ok((result, words)),
        }
    }

    fn single_quoted(&mut self) -> Result<String, ExpandError> {
        self.pos += 1;
        let mut quoted = String::new();
        loop {
            match self.next() {
                Some('\'') => return Ok(quoted),
                Some(c) => quoted.push(c),
                None => return Err(self.unterminated_quote('\'')),
            }
        }
    }

    fn double_quoted(&mut self) -> Result<String, ExpandError> {
        self.pos += 1;
        let mut quoted = String::new();
        loop {
            match self.peek() {
                None => return Err(self.unterminated_quote('"')),
                Some('"') => {
                    self.pos += 1;
                    return Ok(quoted);
                }
                Some('$') => quoted.push_str(&self.dollar()?),
                Some(c) => {
                    self.pos += 1;
                    if c != self.escape {
                        quoted.push(c);
                    } else if let Some(escaped) = self.next() {
                        quoted.push(escaped);
                    }
                }
            }
        }
    }

    fn unterminated_quote(&self, quote: char) -> ExpandError {
        ExpandError::UnterminatedQuote {
            text: self.text.to_string(),
            quote,
        }
    }

    /// At a `$`: a name, `${...}`, or a literal `$` when neither follows.
    fn dollar(&mut self) -> Result<String, ExpandError> {
        self.pos += 1;
        if self.peek() == Some('{') {
            self.pos += 1;
            return self.braced();
        }
        let name = self.name();
        if name.is_empty() {
            return Ok("$".to_string());
        }
        Ok((self.lookup)(&name).unwrap_or_default())
    }

    /// A variable name as BuildKit reads one: letters, digits and `_` not
    /// starting with a digit; or a run of digits (positional, always unset
    /// here); or one of the shell's special parameters.
    fn name(&mut self) -> String {
        let mut name = String::new();
        match self.peek() {
            Some(c) if c.is_ascii_digit() => {
                while let Some(d) = self.peek().filter(char::is_ascii_digit) {
                    name.push(d);
                    self.pos += 1;
                }
                return name;
            }
            Some(c) if "@*#?-$!".contains(c) => {
                self.pos += 1;
                return c.to_string();
            }
            _ => {}
        }
        while let Some(c) = self.peek().filter(|c| c.is_alphanumeric() || *c == '_') {
            name.push(c);
            self.pos += 1;
        }
        name
    }

    /// After `${`: the name, then `}` or a modifier and its word.
    fn braced(&mut self) -> Result<String, ExpandError> {
        let name = self.name();
        let first = self.next().ok_or_else(|| ExpandError::UnterminatedBrace {
            text: self.text.to_string(),
        })?;
        if name.is_empty() {
            return Err(ExpandError::EmptyName {
                text: self.text.to_string(),
            });
        }
        let value = (self.lookup)(&name);
        let (modifier, empty_counts_as_unset) = match first {
            '}' => return Ok(value.unwrap_or_default()),
            ':' => match self.next() {
                Some(m @ ('-' | '+')) => (m, true),
                other => return Err(self.unsupported(other.map(|m| format!(":{m}")))),
            },
            '-' | '+' => (first, false),
            other => return Err(self.unsupported(Some(other.to_string()))),
        };
        // The word is read whatever the value, as the lexer must get past it.
        let (word, _) = self.process_until(Some('}'))?;
        let is_set = match &value {
            Some(v) => !(empty_counts_as_unset && v.is_empty()),
            None => false,
        };
        Ok(match (modifier, is_set) {
            ('-', true) => value.unwrap_or_default(),
            ('-', false) => word,
            (_, true) => word,
            (_, false) => String::new(),
        })
    }

    fn unsupported(&self, modifier: Option<String>) -> ExpandError {
        match modifier {
            Some(modifier) => ExpandError::Unsupported {
                text: self.text.to_string(),
                modifier,
            },
            None => ExpandError::UnterminatedBrace {
                text: self.text.to_string(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(name: &str) -> Option<String> {
        match name {
            "V" => Some("val".into()),
            "EMPTY" => Some(String::new()),
            "B" => Some("bee".into()),
            "SPACED" => Some("a  b".into()),
            "HOME_2_x" => Some("h2".into()),
            "USER" => Some("ann".into()),
            _ => None,
        }
    }

    fn word(raw: &str) -> String {
        expand_word(raw, '\\', &vars).unwrap()
    }

    #[test]
    fn each_rule_expands_as_docker_does() {
        let table: &[(&str, &str, &str)] = &[
            ("plain $V", "$V", "val"),
            ("braced ${V}", "${V}", "val"),
            ("in text", "a${V}b", "avalb"),
            ("name ends at a non-name char", "$V.txt", "val.txt"),
            ("unset is empty", "x${NOPE}y", "xy"),
            ("unset plain is empty", "x$NOPE", "x"),
            (":- set", "${V:-w}", "val"),
            (":- unset", "${NOPE:-w}", "w"),
            (":- empty", "${EMPTY:-w}", "w"),
            ("- empty stays empty", "${EMPTY-w}", ""),
            ("- unset", "${NOPE-w}", "w"),
            (":+ set", "${V:+w}", "w"),
            (":+ unset", "${NOPE:+w}", ""),
            (":+ empty", "${EMPTY:+w}", ""),
            ("+ empty counts as set", "${EMPTY+w}", "w"),
            ("nested default", "${NOPE:-${B}}", "bee"),
            ("nested in alternative", "${V:+<${B}>}", "<bee>"),
            ("word has quotes removed", "${NOPE:-'a b'}", "a b"),
            ("escaped dollar", "\\$V", "$V"),
            ("escaped brace dollar", "\\${V}", "${V}"),
            ("single quotes stop expansion", "'$V'", "$V"),
            ("double quotes expand", "\"$V\"", "val"),
            ("quotes removed", "\"a b\"'c'", "a bc"),
            ("escape inside double quotes", "\"a\\\"b\\$V\"", "a\"b$V"),
            ("escaped space", "a\\ b", "a b"),
            ("escape then letter", "a\\b", "ab"),
            ("escape at the end is dropped", "ab\\", "ab"),
            ("dollar at the end", "a$", "a$"),
            ("dollar before non-name", "a$/b", "a$/b"),
            ("digits and underscores", "$HOME_2_x-${HOME_2_x}", "h2-h2"),
            ("positional is unset", "$1x", "x"),
            ("whitespace kept in one word", "a  $SPACED", "a  a  b"),
        ];
        for (rule, raw, want) in table {
            assert_eq!(&word(raw), want, "{rule}: {raw}");
        }
    }

    #[test]
    fn backtick_escape_leaves_backslashes_alone() {
        let got = expand_word("C:\\Users\\$USER\\`$V", '`', &vars).unwrap();
        assert_eq!(got, "C:\\Users\\ann\\$V");
    }

    #[test]
    fn words_split_on_unquoted_whitespace_only() {
        let table: &[(&str, &[&str])] = &[
            ("80 443/tcp", &["80", "443/tcp"]),
            ("  a\tb  ", &["a", "b"]),
            ("\"a b\" c", &["a b", "c"]),
            ("a\\ b c", &["a b", "c"]),
            ("$SPACED", &["a", "b"]),
            ("\"$SPACED\"", &["a  b"]),
            ("x$NOPE y", &["x", "y"]),
            ("$NOPE", &[]),
            ("", &[]),
        ];
        for (raw, want) in table {
            assert_eq!(&expand_words(raw, '\\', &vars).unwrap(), want, "{raw}");
        }
    }

    #[test]
    fn malformed_text_is_an_error_naming_it() {
        let table: &[(&str, &str)] = &[
            ("${V", "without its closing"),
            ("${", "without its closing"),
            ("${V:-abc", "without its closing"),
            ("${}", "names no variable"),
            ("'abc", "quote without"),
            ("\"abc", "quote without"),
            ("${V:?err}", "modifier `:?`"),
            ("${V#pat}", "modifier `#`"),
            ("${V%pat}", "modifier `%`"),
            ("${V/a/b}", "modifier `/`"),
            ("${V:0:2}", "modifier `:0`"),
        ];
        for (raw, want) in table {
            let message = expand_word(raw, '\\', &vars).unwrap_err().to_string();
            assert!(message.contains(want), "{raw}: {message}");
            assert!(message.contains(raw), "{raw}: {message}");
        }
    }

    #[test]
    fn referenced_names_finds_every_name_once() {
        let table: &[(&str, &[&str])] = &[
            ("$A ${B} $A", &["A", "B"]),
            ("${A:-${B:+$C}}", &["A", "B", "C"]),
            ("'$A' \\$B \"$C\"", &["C"]),
            ("no vars $ here", &[]),
            ("$1 $@ ${#} $_x", &["_x"]),
            ("$A ${B", &["A"]),
        ];
        for (raw, want) in table {
            assert_eq!(&referenced_names(raw, '\\'), want, "{raw}");
        }
    }

    #[test]
    fn expanded_in_lists_docker_instructions() {
        for name in ["COPY", "ENV", "FROM", "WORKDIR", "ONBUILD", "ARG"] {
            assert!(EXPANDED_IN.contains(&name), "{name}");
        }
        assert!(!EXPANDED_IN.contains(&"RUN"));
    }
}
