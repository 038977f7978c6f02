//! Here-documents (`<<EOF`): finding the markers in a command line, reading
//! the bodies that follow it, and the script RUN hands to its shell.
//!
//! parse-dockerfile reads a heredoc only when it is the first word of a RUN
//! (and only one there) or a COPY/ADD source; for the rest (`RUN cat <<EOF >
//! /f`, several heredocs) the bodies are read here and blanked out of the
//! text the crate sees, so its line numbers and offsets stay right.

use std::collections::HashMap;

use parse_dockerfile::{Command, Instruction, RunInstruction};

use super::text::{escape_directive, join_continuations, logical_line_end, next_line_start};
use super::HereDoc;

/// A `<<[-]WORD` in a command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Marker {
    pub delimiter: String,
    pub strip_tabs: bool,
    pub expand: bool,
}

/// The heredoc markers of a command line, in order: shell words of the
/// form `[n]<<[-]WORD` (BuildKit's rule; `<<<` is a here-string, not one).
pub(super) fn markers(command_line: &str) -> Vec<Marker> {
    super::text::split_words(command_line, '\\')
        .iter()
        .filter_map(|word| marker(word))
        .collect()
}

fn marker(word: &str) -> Option<Marker> {
    let after_fd = word.trim_start_matches(|c: char| c.is_ascii_digit());
    let rest = after_fd.strip_prefix("<<")?;
    let (strip_tabs, raw) = match rest.strip_prefix('-') {
        Some(raw) => (true, raw),
        None => (false, rest),
    };
    if raw.is_empty() || raw.contains('<') {
        return None;
    }
    // Quoting any part of the delimiter (or escaping it) turns expansion off.
    let delimiter: String = raw
        .chars()
        .filter(|c| !matches!(c, '"' | '\'' | '\\'))
        .collect();
    if delimiter.is_empty() {
        return None;
    }
    Some(Marker {
        expand: delimiter.len() == raw.len(),
        delimiter,
        strip_tabs,
    })
}

/// Reads one heredoc's body from `from` up to its delimiter line; gives the
/// heredoc and where the line after the delimiter starts, or `None` when
/// the text ends first.
pub(super) fn read_body(text: &str, from: usize, marker: &Marker) -> Option<(HereDoc, usize)> {
    let mut body = String::new();
    let mut start = from;
    while start < text.len() {
        let end = next_line_start(text, start);
        let line = text.get(start..end).unwrap_or_default();
        let content = line.trim_end_matches('\n');
        let content = if marker.strip_tabs {
            content.trim_start_matches('\t')
        } else {
            content
        };
        if content.trim_end_matches('\r') == marker.delimiter {
            let heredoc = HereDoc {
                delimiter: marker.delimiter.clone(),
                body,
                expand: marker.expand,
                strip_tabs: marker.strip_tabs,
            };
            return Some((heredoc, end));
        }
        body.push_str(content.trim_end_matches('\n'));
        body.push('\n');
        start = end;
    }
    None
}

/// What `/bin/sh -c` runs for a RUN with heredocs: the body itself when the
/// heredoc is the whole command; else the command line followed by each
/// body and its delimiter line, a here-document as a shell reads one.
pub(super) fn script(command_line: &str, heredocs: &[HereDoc]) -> String {
    if let [only] = heredocs {
        if markers(command_line).len() == 1
            && super::text::split_words(command_line, '\\').len() == 1
        {
            return only.body.clone();
        }
    }
    let mut script = command_line.to_string();
    for heredoc in heredocs {
        script.push('\n');
        script.push_str(&heredoc.body);
        script.push_str(&heredoc.delimiter);
    }
    script
}

/// The command line of a RUN (after its flags, continuations joined).
pub(super) fn run_command_line(text: &str, run: &RunInstruction<'_>, escape: char) -> String {
    let after_keyword = run.run.span.end;
    let after_flags = run
        .options
        .iter()
        .map(|flag| flag.span().end)
        .fold(after_keyword, usize::max);
    let end = logical_line_end(text, run.run.span.start, escape).max(after_flags);
    join_continuations(text.get(after_flags..end).unwrap_or_default(), escape)
}

/// A RUN's heredocs that the crate did not read, by the RUN's offset, and
/// the text with their bodies blanked.
#[derive(Debug, Default)]
pub(super) struct CutHeredocs {
    pub text: String,
    pub by_run: HashMap<usize, Vec<HereDoc>>,
}

/// A heredoc marker whose delimiter line never comes.
#[derive(Debug)]
pub(super) struct Unterminated {
    pub run_offset: usize,
    pub delimiter: String,
}

/// Finds the RUNs with heredocs the crate leaves in the text and takes
/// their bodies out. The crate is run again after each cut, as a body it
/// did not skip would read as instructions; its errors are left for the
/// final parse to report.
pub(super) fn cut_run_heredocs(original: &str) -> Result<CutHeredocs, Unterminated> {
    let escape = escape_directive(original);
    let mut cut = CutHeredocs {
        text: original.to_string(),
        by_run: HashMap::new(),
    };
    while let Some((run_offset, range, heredocs)) = next_uncut_run(&cut, escape)? {
        cut.text = blank(&cut.text, range);
        cut.by_run.insert(run_offset, heredocs);
    }
    Ok(cut)
}

type Cut = (usize, std::ops::Range<usize>, Vec<HereDoc>);

fn next_uncut_run(cut: &CutHeredocs, escape: char) -> Result<Option<Cut>, Unterminated> {
    let Ok(instructions) = parse_dockerfile::parse_iter(&cut.text) else {
        return Ok(None);
    };
    for instruction in instructions {
        let Ok(Instruction::Run(run)) = instruction else {
            if instruction.is_err() {
                break;
            }
            continue;
        };
        let run_offset = run.run.span.start;
        if cut.by_run.contains_key(&run_offset) || !matches!(run.arguments, Command::Shell(_)) {
            continue;
        }
        let found = markers(&run_command_line(&cut.text, &run, escape));
        let Some(left) = found
            .get(run.here_docs.len()..)
            .filter(|left| !left.is_empty())
        else {
            continue;
        };
        let after = match (run.here_docs.last(), &run.arguments) {
            (Some(read), _) => read.span.end,
            (None, Command::Shell(shell)) => shell.span.end,
            (None, _) => continue,
        };
        let from = next_line_start(&cut.text, after);
        let mut start = from;
        let mut heredocs = Vec::new();
        for marker in left {
            let (heredoc, next) =
                read_body(&cut.text, start, marker).ok_or_else(|| Unterminated {
                    run_offset,
                    delimiter: marker.delimiter.clone(),
                })?;
            heredocs.push(heredoc);
            start = next;
        }
        return Ok(Some((run_offset, from..start, heredocs)));
    }
    Ok(None)
}

/// `text` with every character in `range` but newlines made spaces of the
/// same byte length, so offsets and line numbers do not move.
fn blank(text: &str, range: std::ops::Range<usize>) -> String {
    let (Some(before), Some(inside), Some(after)) = (
        text.get(..range.start),
        text.get(range.clone()),
        text.get(range.end..),
    ) else {
        return text.to_string();
    };
    let mut blanked = String::with_capacity(text.len());
    blanked.push_str(before);
    for c in inside.chars() {
        if c == '\n' {
            blanked.push('\n');
        } else {
            blanked.extend(std::iter::repeat_n(' ', c.len_utf8()));
        }
    }
    blanked.push_str(after);
    blanked
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marker_of(delimiter: &str, strip_tabs: bool, expand: bool) -> Marker {
        Marker {
            delimiter: delimiter.into(),
            strip_tabs,
            expand,
        }
    }

    #[test]
    fn markers_are_heredoc_words() {
        assert_eq!(markers("cat <<EOF > /f"), [marker_of("EOF", false, true)]);
        assert_eq!(markers("<<-END"), [marker_of("END", true, true)]);
        assert_eq!(markers("cat <<'EOF'"), [marker_of("EOF", false, false)]);
        assert_eq!(
            markers("cat <<\"A\" 3<<B"),
            [marker_of("A", false, false), marker_of("B", false, true)]
        );
        assert!(markers("cat <<<word").is_empty());
        assert!(markers("echo '<<EOF'").is_empty());
        assert!(markers("echo a<<b").is_empty());
    }

    #[test]
    fn bodies_end_at_their_delimiter_line() {
        let text = "one\n\ttwo\nEOF\nafter";
        let (heredoc, next) = read_body(text, 0, &marker_of("EOF", false, true)).unwrap();
        assert_eq!(heredoc.body, "one\n\ttwo\n");
        assert_eq!(&text[next..], "after");
        let tabbed = "\tone\n\t\tEOF\n";
        let (heredoc, _) = read_body(tabbed, 0, &marker_of("EOF", true, true)).unwrap();
        assert_eq!(heredoc.body, "one\n");
        assert!(read_body("one\nEOFX\n", 0, &marker_of("EOF", false, true)).is_none());
    }

    #[test]
    fn scripts_are_what_the_shell_reads() {
        let doc = |delimiter: &str, body: &str| HereDoc {
            delimiter: delimiter.into(),
            body: body.into(),
            expand: true,
            strip_tabs: false,
        };
        assert_eq!(script("<<EOF", &[doc("EOF", "echo hi\n")]), "echo hi\n");
        assert_eq!(
            script("cat <<EOF > /f", &[doc("EOF", "hi\n")]),
            "cat <<EOF > /f\nhi\nEOF"
        );
        assert_eq!(
            script("cat <<A <<B", &[doc("A", "a\n"), doc("B", "b\n")]),
            "cat <<A <<B\na\nA\nb\nB"
        );
    }

    #[test]
    fn blanking_keeps_offsets() {
        let text = "ab\ncé\nd";
        assert_eq!(blank(text, 3..7), "ab\n   \nd");
        assert_eq!(blank(text, 3..99), text);
    }
}
