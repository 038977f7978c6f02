//! Dockerfile text as docker reads it: lines, continuations (comment lines
//! inside one dropped), the `escape` directive, and `name=value` word lists.

use super::ArgDecl;

/// The 1-based line that byte `offset` of `text` is on.
pub(super) fn line_of(text: &str, offset: usize) -> usize {
    let before = text.get(..offset).unwrap_or(text);
    before.bytes().filter(|&b| b == b'\n').count() + 1
}

/// The text of 1-based `line`, trimmed, for messages.
pub(super) fn line_text(text: &str, line: usize) -> String {
    text.lines()
        .nth(line.saturating_sub(1))
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// The offset just past the newline that ends the line `offset` is on, or
/// the end of the text.
pub(super) fn next_line_start(text: &str, offset: usize) -> usize {
    let rest = text.get(offset..).unwrap_or_default();
    rest.find('\n')
        .map_or(text.len(), |newline| offset + newline + 1)
}

/// Whether a physical line continues onto the next: its last non-blank
/// character is the escape (BuildKit accepts blanks after it).
fn continues(line: &str, escape: char) -> bool {
    line.trim_end().ends_with(escape)
}

/// Lines that a continuation skips over: blank lines and comments.
fn skipped_in_continuation(line: &str) -> bool {
    let trimmed = line.trim_start();
    trimmed.is_empty() || trimmed.starts_with('#')
}

/// The end (before its newline) of the logical line that starts at `from`,
/// following continuations.
pub(super) fn logical_line_end(text: &str, from: usize, escape: char) -> usize {
    let mut start = from;
    let mut continued = false;
    while start < text.len() {
        let end = next_line_start(text, start);
        let line = text.get(start..end).unwrap_or_default();
        let content_end = start + line.trim_end_matches(['\n', '\r']).len();
        if continued && skipped_in_continuation(line) && end < text.len() {
            start = end;
            continue;
        }
        if !continues(line, escape) || end >= text.len() {
            return content_end;
        }
        continued = true;
        start = end;
    }
    text.len()
}

/// Joins a raw slice spanning continued lines into one line as docker does:
/// each continued line loses its escape, comment and blank lines between
/// them go, and the rest is put together with nothing in between.
pub(super) fn join_continuations(raw: &str, escape: char) -> String {
    let mut joined = String::new();
    let mut continued = false;
    for line in raw.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if continued && skipped_in_continuation(line) {
            continue;
        }
        let trimmed = line.trim_end();
        match trimmed.strip_suffix(escape) {
            Some(kept) => {
                joined.push_str(kept);
                continued = true;
            }
            None => {
                joined.push_str(line);
                continued = false;
            }
        }
    }
    joined.trim().to_string()
}

/// The `escape` parser directive of a Dockerfile, or `\`: directives are
/// `# key=value` comments before anything else.
pub(super) fn escape_directive(text: &str) -> char {
    for line in text.lines() {
        let Some(comment) = line.trim().strip_prefix('#') else {
            break;
        };
        let Some((key, value)) = comment.split_once('=') else {
            break;
        };
        if key.trim().eq_ignore_ascii_case("escape") {
            return match value.trim() {
                "`" => '`',
                _ => '\\',
            };
        }
    }
    '\\'
}

/// Splits on whitespace outside quotes, keeping quotes and escapes in the
/// words (docker's `parseWords`, used for ENV, LABEL and ARG).
pub(super) fn split_words(raw: &str, escape: char) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        match quote {
            None if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
                continue;
            }
            None if c == '\'' || c == '"' => quote = Some(c),
            Some(q) if c == q => quote = None,
            _ => {}
        }
        in_word = true;
        // An escape (outside single quotes) carries the next character into
        // the word whatever it is, a quote or a blank.
        if c == escape && quote != Some('\'') {
            if let Some(next) = chars.next() {
                word.push(c);
                word.push(next);
            }
            continue;
        }
        word.push(c);
    }
    if in_word {
        words.push(word);
    }
    words
}

/// `ENV` and `LABEL` arguments: `k=v k2="v 2"`, or the legacy `k v w` where
/// the value is the rest. Raw: quotes and escapes stay in.
pub(super) fn name_value_pairs(raw: &str, escape: char) -> Result<Vec<(String, String)>, String> {
    let words = split_words(raw, escape);
    let Some(first) = words.first() else {
        return Err("needs at least one name=value pair".to_string());
    };
    if !first.contains('=') {
        let trimmed = raw.trim();
        let (name, value) = trimmed
            .split_once(char::is_whitespace)
            .ok_or_else(|| format!("{first} has no value: write {first}=value"))?;
        return Ok(vec![(name.to_string(), value.trim_start().to_string())]);
    }
    words
        .iter()
        .map(|word| match word.split_once('=') {
            Some(("", _)) => Err(format!("{word}: a name must come before '='")),
            Some((name, value)) => Ok((name.to_string(), value.to_string())),
            None => Err(format!(
                "can't find = in {word}: each pair must be name=value"
            )),
        })
        .collect()
}

/// `ARG` arguments: `name` or `name=default`, several on a line.
pub(super) fn arg_decls(raw: &str, escape: char) -> Result<Vec<ArgDecl>, String> {
    let words = split_words(raw, escape);
    if words.is_empty() {
        return Err("needs a name".to_string());
    }
    words
        .into_iter()
        .map(|word| {
            let (name, default) = match word.split_once('=') {
                Some((name, default)) => (name.to_string(), Some(default.to_string())),
                None => (word.clone(), None),
            };
            if name.is_empty() {
                return Err(format!("{word}: a name must come before '='"));
            }
            Ok(ArgDecl { name, default })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_counted_from_one() {
        let text = "a\nb\nc";
        assert_eq!(line_of(text, 0), 1);
        assert_eq!(line_of(text, 2), 2);
        assert_eq!(line_of(text, 4), 3);
        assert_eq!(line_of(text, 99), 3);
        assert_eq!(line_text("x\n  y  \n", 2), "y");
    }

    #[test]
    fn logical_lines_follow_continuations_and_skip_comments() {
        let text = "RUN a \\\n# note\n\n  b\nNEXT";
        let end = logical_line_end(text, 0, '\\');
        assert_eq!(&text[..end], "RUN a \\\n# note\n\n  b");
        assert_eq!(join_continuations(&text[..end], '\\'), "RUN a   b");
        let backtick = "RUN a `\n b\n";
        let end = logical_line_end(backtick, 0, '`');
        assert_eq!(join_continuations(&backtick[..end], '`'), "RUN a  b");
        assert_eq!(logical_line_end("RUN x \\", 0, '\\'), 7);
    }

    #[test]
    fn escape_directive_is_read_from_the_top_only() {
        assert_eq!(escape_directive("# escape=`\nFROM x"), '`');
        assert_eq!(escape_directive("#ESCAPE = `\n"), '`');
        assert_eq!(escape_directive("FROM x\n# escape=`"), '\\');
        assert_eq!(escape_directive("# a comment\n# escape=`"), '\\');
    }

    #[test]
    fn words_keep_quotes_and_escapes() {
        let table: &[(&str, &[&str])] = &[
            ("a=1 b=2", &["a=1", "b=2"]),
            ("a=\"x y\" b='p q'", &["a=\"x y\"", "b='p q'"]),
            ("a=x\\ y", &["a=x\\ y"]),
            ("a='it\\'", &["a='it\\'"]),
            ("  ", &[]),
        ];
        for (raw, want) in table {
            assert_eq!(&split_words(raw, '\\'), want, "{raw}");
        }
    }

    #[test]
    fn pairs_in_both_forms() {
        let pair = |k: &str, v: &str| (k.to_string(), v.to_string());
        assert_eq!(
            name_value_pairs("A=1 B=\"two words\"", '\\').unwrap(),
            vec![pair("A", "1"), pair("B", "\"two words\"")]
        );
        assert_eq!(
            name_value_pairs("K  some value here", '\\').unwrap(),
            vec![pair("K", "some value here")]
        );
        assert!(name_value_pairs("K", '\\')
            .unwrap_err()
            .contains("no value"));
        assert!(name_value_pairs("A=1 B", '\\')
            .unwrap_err()
            .contains("can't find ="));
        assert!(name_value_pairs("=1", '\\')
            .unwrap_err()
            .contains("name must"));
    }

    #[test]
    fn args_with_and_without_defaults() {
        let decls = arg_decls("A B=2 C=\"x y\"", '\\').unwrap();
        let named: Vec<_> = decls
            .iter()
            .map(|d| (d.name.as_str(), d.default.as_deref()))
            .collect();
        assert_eq!(
            named,
            [("A", None), ("B", Some("2")), ("C", Some("\"x y\""))]
        );
        assert!(arg_decls("=x", '\\').is_err());
    }
}
