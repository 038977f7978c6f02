//! Fuzz tests: the parser and the expander never panic, whatever the text,
//! and a printed valid Dockerfile parses back to as many instructions.

use proptest::prelude::*;

use super::{expand_word, expand_words, parse, referenced_names};

/// Pieces Dockerfiles are made of, so random text reaches deep paths.
const TOKENS: &[&str] = &[
    "FROM ",
    "RUN ",
    "COPY ",
    "ADD ",
    "ENV ",
    "ARG ",
    "LABEL ",
    "ONBUILD ",
    "SHELL ",
    "HEALTHCHECK ",
    "CMD ",
    "NONE",
    "AS ",
    "x",
    "EOF",
    "<<",
    "<<-",
    "<<EOF",
    "<<'EOF'",
    "\n",
    "\r\n",
    "\t",
    " ",
    "\\",
    "\\\n",
    "`",
    "# escape=`\n",
    "#",
    "\"",
    "'",
    "$",
    "${",
    "}",
    ":-",
    ":+",
    ":?",
    "[",
    "]",
    ",",
    "=",
    "--from=",
    "--mount=",
    "-",
    "é",
    "\u{feff}",
];

fn token_soup() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(TOKENS), 0..60).prop_map(|tokens| tokens.concat())
}

/// One instruction each, some spanning lines; `{w}` is a random word.
const TEMPLATES: &[&str] = &[
    "RUN echo {w}",
    "RUN a \\\n  # dropped\n  b{w}",
    "RUN cat <<EOF > /{w}\nline {w}\nEOF",
    "RUN <<-EOF\n\techo {w}\n\tEOF",
    "CMD [\"{w}\", \"x\"]",
    "ENTRYPOINT {w} --flag",
    "COPY --chown=1:1 a{w} /d/",
    "COPY <<EOF /f{w}\nbody\nEOF",
    "ADD {w}.tar /",
    "ENV K{w}=\"v {w}\" L=2",
    "ENV K {w} legacy",
    "ARG A{w}=1",
    "LABEL l=\"{w}\"",
    "WORKDIR /{w}",
    "USER u{w}",
    "EXPOSE 80 {w}",
    "VOLUME /v{w}",
    "STOPSIGNAL SIGTERM",
    "HEALTHCHECK --retries=3 CMD true {w}",
    "HEALTHCHECK NONE",
    "SHELL [\"/bin/sh\", \"-c\"]",
    "ONBUILD RUN {w}",
    "MAINTAINER {w}",
];

fn printed_dockerfile() -> impl Strategy<Value = (String, usize)> {
    let instruction = (prop::sample::select(TEMPLATES), "[a-z0-9]{1,8}", 0..3usize);
    prop::collection::vec(instruction, 0..25).prop_map(|instructions| {
        let mut text = String::from("FROM base\n");
        for (template, word, filler) in &instructions {
            // Comments and blank lines between instructions count for nothing.
            text.push_str(["", "\n", "# note\n"][*filler]);
            text.push_str(&template.replace("{w}", word));
            text.push('\n');
        }
        (text, instructions.len())
    })
}

fn lookup(name: &str) -> Option<String> {
    (name.len() > 1).then(|| format!("<{name}>"))
}

proptest! {
    #[test]
    fn parse_never_panics(text in ".{0,300}") {
        let _ = parse(&text, "Dockerfile");
    }

    #[test]
    fn parse_never_panics_on_dockerfile_tokens(text in token_soup()) {
        let _ = parse(&text, "Dockerfile");
        let _ = parse(&format!("FROM x\n{text}"), "Dockerfile");
    }

    #[test]
    fn expansion_never_panics(text in ".{0,200}", soup in token_soup()) {
        for raw in [&text, &soup] {
            for escape in ['\\', '`'] {
                let _ = expand_word(raw, escape, &lookup);
                let _ = expand_words(raw, escape, &lookup);
                let _ = referenced_names(raw, escape);
            }
        }
    }

    #[test]
    fn printed_files_parse_back_to_their_instruction_count((text, count) in printed_dockerfile()) {
        let parsed = parse(&text, "Dockerfile");
        prop_assert!(parsed.is_ok(), "{text}\n{parsed:?}");
        if let Ok(file) = parsed {
            prop_assert_eq!(file.stages.len(), 1);
            prop_assert_eq!(file.stages[0].instructions.len(), count, "{}", text);
        }
    }
}
