//! Dockerfile text into the [`Dockerfile`] model: parse-dockerfile reads the
//! syntax; this maps its instructions onto the model, reads what it leaves
//! raw (ENV/LABEL/ARG pairs, continuations, RUN heredocs) and turns its
//! errors into ones that name the file, the line and the text.

use parse_dockerfile::{
    Command, Flag, HealthcheckArguments, Instruction, JsonOrStringArray, Source, Stage,
};

use super::heredoc::{self, CutHeredocs};
use super::text::{
    arg_decls, join_continuations, line_of, line_text, logical_line_end, name_value_pairs,
};
use super::{
    ArgDecl, CommandForm, CopySpec, Dockerfile, Healthcheck, HereDoc, Instr, Kind, StageDef,
};

/// Why a Dockerfile could not be parsed: each names the file, the 1-based
/// line and the text at fault.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("{file}:{line}: unknown instruction: {word} (`{text}`)")]
    UnknownInstruction {
        file: String,
        line: usize,
        word: String,
        text: String,
    },
    #[error("{file}:{line}: only ARG may come before the first FROM (`{text}`)")]
    BeforeFrom {
        file: String,
        line: usize,
        text: String,
    },
    #[error("{file}: no FROM instruction: a Dockerfile needs at least one (FROM image, or FROM scratch)")]
    NoFrom { file: String },
    #[error("{file}:{line}: the here-document <<{delimiter} has no end: add a line `{delimiter}` after its body (`{text}`)")]
    UnterminatedHeredoc {
        file: String,
        line: usize,
        delimiter: String,
        text: String,
    },
    #[error(
        "{file}:{line}: SHELL takes a JSON array, e.g. SHELL [\"/bin/sh\", \"-c\"] (`{text}`)"
    )]
    ShellNotJson {
        file: String,
        line: usize,
        text: String,
    },
    #[error("{file}:{line}: {instruction} does not support the flag --{flag} (`{text}`)")]
    UnsupportedFlag {
        file: String,
        line: usize,
        instruction: String,
        flag: String,
        text: String,
    },
    #[error("{file}:{line}: {why} (`{text}`)")]
    Invalid {
        file: String,
        line: usize,
        why: String,
        text: String,
    },
    #[error("{file}:{line}: syntax error (`{text}`)")]
    Syntax {
        file: String,
        line: usize,
        text: String,
        #[source]
        source: parse_dockerfile::Error,
    },
}

/// Parses a Dockerfile; `file_name` is only for messages.
pub fn parse(text: &str, file_name: &str) -> Result<Dockerfile, ParseError> {
    // The crate drops a byte order mark too; dropping it here keeps its
    // offsets and ours the same.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let cut = heredoc::cut_run_heredocs(text).map_err(|unterminated| {
        let line = line_of(text, unterminated.run_offset);
        ParseError::UnterminatedHeredoc {
            file: file_name.to_string(),
            line,
            delimiter: unterminated.delimiter,
            text: line_text(text, line),
        }
    })?;
    let parsed = parse_dockerfile::parse(&cut.text)
        .map_err(|error| from_crate_error(error, text, file_name))?;
    let escape = parsed
        .parser_directives
        .escape
        .as_ref()
        .map_or('\\', |directive| directive.value.value);
    let reader = Reader {
        text: &cut.text,
        file: file_name,
        escape,
        cut: &cut,
    };
    let global_args = parsed
        .global_args()
        .map(|arg| reader.args(arg.arg.span.start, &arg.arguments.value))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .flatten()
        .collect();
    let stages = parsed
        .stages()
        .enumerate()
        .map(|(index, stage)| reader.stage(index, &stage))
        .collect::<Result<_, _>>()?;
    Ok(Dockerfile {
        escape,
        global_args,
        stages,
    })
}

/// The crate's errors carry a message and a line; the kinds the build
/// reports in its own words are told apart by their message.
fn from_crate_error(error: parse_dockerfile::Error, text: &str, file: &str) -> ParseError {
    let message = format!("{error:#}");
    let line = error.line();
    let file = file.to_string();
    let line_text = line_text(text, line);
    if message == "expected at least one FROM instruction" {
        return ParseError::NoFrom { file };
    }
    if let Some(word) = message
        .strip_prefix("unknown instruction '")
        .and_then(|rest| rest.strip_suffix('\''))
    {
        return ParseError::UnknownInstruction {
            file,
            line,
            word: word.to_string(),
            text: line_text,
        };
    }
    if message == "expected FROM" {
        return ParseError::BeforeFrom {
            file,
            line,
            text: line_text,
        };
    }
    if let Some(delimiter) = message
        .strip_prefix("expected end of here-document (")
        .and_then(|rest| rest.split_once("), but"))
        .map(|(delimiter, _)| delimiter.to_string())
    {
        let line = heredoc_start_line(text, &delimiter, line);
        return ParseError::UnterminatedHeredoc {
            file,
            line,
            delimiter,
            text: super::text::line_text(text, line),
        };
    }
    let is_shell = line_text
        .get(..5)
        .is_some_and(|word| word.eq_ignore_ascii_case("SHELL"));
    if is_shell && (message == "expected JSON array" || message == "invalid JSON") {
        return ParseError::ShellNotJson {
            file,
            line,
            text: line_text,
        };
    }
    ParseError::Syntax {
        file,
        line,
        text: line_text,
        source: error,
    }
}

/// The crate reports a missing heredoc end where the text ends; the line
/// worth showing is the last one before it that opens that heredoc.
fn heredoc_start_line(text: &str, delimiter: &str, end_line: usize) -> usize {
    text.lines()
        .take(end_line)
        .enumerate()
        .filter(|(_, line)| {
            heredoc::markers(line)
                .iter()
                .any(|marker| marker.delimiter == delimiter)
        })
        .last()
        .map_or(end_line, |(index, _)| index + 1)
}

struct Reader<'a> {
    text: &'a str,
    file: &'a str,
    escape: char,
    cut: &'a CutHeredocs,
}

impl Reader<'_> {
    fn line(&self, offset: usize) -> usize {
        line_of(self.text, offset)
    }

    /// The instruction at `offset` as one line, for messages and output.
    fn instruction_text(&self, offset: usize) -> String {
        let end = logical_line_end(self.text, offset, self.escape);
        join_continuations(self.text.get(offset..end).unwrap_or_default(), self.escape)
    }

    fn invalid(&self, offset: usize, why: String) -> ParseError {
        ParseError::Invalid {
            file: self.file.to_string(),
            line: self.line(offset),
            why,
            text: self.instruction_text(offset),
        }
    }

    fn unsupported_flag(&self, offset: usize, instruction: &str, flag: &Flag<'_>) -> ParseError {
        ParseError::UnsupportedFlag {
            file: self.file.to_string(),
            line: self.line(offset),
            instruction: instruction.to_string(),
            flag: flag.name.value.to_string(),
            text: self.instruction_text(offset),
        }
    }

    fn args(&self, offset: usize, raw: &str) -> Result<Vec<ArgDecl>, ParseError> {
        arg_decls(raw, self.escape).map_err(|why| self.invalid(offset, format!("ARG {why}")))
    }

    fn stage(&self, index: usize, stage: &Stage<'_, '_>) -> Result<StageDef, ParseError> {
        let from = stage.from;
        let offset = from.from.span.start;
        let mut platform = None;
        for flag in &from.options {
            match &*flag.name.value {
                "platform" => platform = Some(flag_value(flag)),
                _ => return Err(self.unsupported_flag(offset, "FROM", flag)),
            }
        }
        let instructions = stage
            .instructions
            .iter()
            .map(|instruction| self.instr(instruction))
            .collect::<Result<_, _>>()?;
        Ok(StageDef {
            index,
            name: from.as_.as_ref().map(|(_, name)| name.value.to_lowercase()),
            base: from.image.value.to_string(),
            platform,
            line: self.line(offset),
            instructions,
        })
    }

    fn instr(&self, instruction: &Instruction<'_>) -> Result<Instr, ParseError> {
        let offset = keyword_offset(instruction)
            .ok_or_else(|| self.invalid(0, "an instruction isola does not know".into()))?;
        Ok(Instr {
            line: self.line(offset),
            text: self.instruction_text(offset),
            kind: self.kind(offset, instruction)?,
        })
    }

    fn kind(&self, offset: usize, instruction: &Instruction<'_>) -> Result<Kind, ParseError> {
        let escape = self.escape;
        let pairs = |raw: &str, name: &str| {
            name_value_pairs(raw, escape)
                .map_err(|why| self.invalid(offset, format!("{name} {why}")))
        };
        Ok(match instruction {
            Instruction::Run(run) => self.run(offset, run)?,
            Instruction::Cmd(cmd) => Kind::Cmd(self.command(offset, &cmd.arguments)?),
            Instruction::Entrypoint(entrypoint) => {
                Kind::Entrypoint(self.command(offset, &entrypoint.arguments)?)
            }
            Instruction::Copy(copy) => Kind::Copy(self.copy_spec(
                offset,
                "COPY",
                &copy.options,
                &copy.src,
                &copy.dest.value,
            )?),
            Instruction::Add(add) => {
                Kind::Add(self.copy_spec(offset, "ADD", &add.options, &add.src, &add.dest.value)?)
            }
            Instruction::Env(env) => Kind::Env(pairs(&env.arguments.value, "ENV")?),
            Instruction::Label(label) => Kind::Label(pairs(&label.arguments.value, "LABEL")?),
            Instruction::Arg(arg) => Kind::Arg(self.args(offset, &arg.arguments.value)?),
            Instruction::Workdir(workdir) => Kind::Workdir(workdir.arguments.value.to_string()),
            Instruction::User(user) => Kind::User(user.arguments.value.to_string()),
            Instruction::Expose(expose) => Kind::Expose(
                expose
                    .arguments
                    .iter()
                    .map(|w| w.value.to_string())
                    .collect(),
            ),
            Instruction::Volume(volume) => Kind::Volume(match &volume.arguments {
                JsonOrStringArray::Json(array) => {
                    array.value.iter().map(|w| w.value.to_string()).collect()
                }
                JsonOrStringArray::String(words) => {
                    words.iter().map(|w| w.value.to_string()).collect()
                }
            }),
            Instruction::Stopsignal(signal) => Kind::Stopsignal(signal.arguments.value.to_string()),
            Instruction::Healthcheck(check) => {
                Kind::Healthcheck(self.healthcheck(offset, &check.options, &check.arguments)?)
            }
            Instruction::Shell(shell) => Kind::Shell(
                shell
                    .arguments
                    .iter()
                    .map(|w| w.value.to_string())
                    .collect(),
            ),
            Instruction::Onbuild(onbuild) => {
                self.onbuild(offset, onbuild.onbuild.span.end, &onbuild.instruction)?
            }
            Instruction::Maintainer(maintainer) => {
                Kind::Maintainer(maintainer.name.value.to_string())
            }
            Instruction::From(_) => {
                return Err(self.invalid(offset, "FROM is not allowed here".into()))
            }
            _ => return Err(self.invalid(offset, "an instruction isola does not know".into())),
        })
    }

    /// Shell form text as written, continuations joined; the JSON form's words.
    fn command(&self, offset: usize, command: &Command<'_>) -> Result<CommandForm, ParseError> {
        Ok(match command {
            Command::Exec(array) => {
                CommandForm::Exec(array.value.iter().map(|w| w.value.to_string()).collect())
            }
            Command::Shell(shell) => {
                CommandForm::Shell(join_continuations(shell.value, self.escape))
            }
            _ => return Err(self.invalid(offset, "a command form isola does not know".into())),
        })
    }

    fn run(
        &self,
        offset: usize,
        run: &parse_dockerfile::RunInstruction<'_>,
    ) -> Result<Kind, ParseError> {
        let mut network = None;
        let mut other_flags = Vec::new();
        for flag in &run.options {
            match &*flag.name.value {
                "network" => network = Some(flag_value(flag)),
                _ => other_flags.push(flag_text(flag)),
            }
        }
        let command = match &run.arguments {
            Command::Shell(_) => {
                let command_line = heredoc::run_command_line(self.text, run, self.escape);
                let heredocs = self.run_heredocs(offset, run, &command_line);
                if heredocs.is_empty() {
                    CommandForm::Shell(command_line)
                } else {
                    CommandForm::Shell(heredoc::script(&command_line, &heredocs))
                }
            }
            other => self.command(offset, other)?,
        };
        Ok(Kind::Run {
            command,
            network,
            other_flags,
        })
    }

    /// The heredocs the crate read (named by the markers of the command
    /// line) followed by those cut out before it ran.
    fn run_heredocs(
        &self,
        offset: usize,
        run: &parse_dockerfile::RunInstruction<'_>,
        command_line: &str,
    ) -> Vec<HereDoc> {
        let markers = heredoc::markers(command_line);
        let read = run
            .here_docs
            .iter()
            .zip(&markers)
            .map(|(doc, marker)| heredoc_from(marker, &doc.value, doc.expand));
        let cut = self.cut.by_run.get(&offset).into_iter().flatten().cloned();
        read.chain(cut).collect()
    }

    fn copy_spec(
        &self,
        offset: usize,
        instruction: &str,
        flags: &[Flag<'_>],
        sources: &[Source<'_>],
        dest: &str,
    ) -> Result<CopySpec, ParseError> {
        let mut spec = CopySpec {
            sources: Vec::new(),
            dest: dest.to_string(),
            from: None,
            chown: None,
            chmod: None,
            link: false,
            heredocs: Vec::new(),
        };
        for flag in flags {
            match (&*flag.name.value, instruction) {
                ("from", "COPY") => spec.from = Some(flag_value(flag)),
                ("chown", _) => spec.chown = Some(flag_value(flag)),
                ("chmod", _) => spec.chmod = Some(flag_value(flag)),
                ("link", _) => spec.link = flag.value.as_ref().is_none_or(|v| v.value != "false"),
                _ => return Err(self.unsupported_flag(offset, instruction, flag)),
            }
        }
        let markers = heredoc::markers(&self.instruction_text(offset));
        let mut markers = markers.iter();
        for source in sources {
            match source {
                Source::Path(path) => spec.sources.push(path.value.to_string()),
                Source::HereDoc(doc) => {
                    let marker = markers.next().ok_or_else(|| {
                        self.invalid(offset, "a here-document without its <<marker".into())
                    })?;
                    spec.heredocs
                        .push(heredoc_from(marker, &doc.value, doc.expand));
                }
                _ => return Err(self.invalid(offset, "a source isola does not know".into())),
            }
        }
        Ok(spec)
    }

    fn healthcheck(
        &self,
        offset: usize,
        flags: &[Flag<'_>],
        arguments: &HealthcheckArguments<'_>,
    ) -> Result<Healthcheck, ParseError> {
        let mut check = Healthcheck {
            test: None,
            interval: None,
            timeout: None,
            start_period: None,
            retries: None,
        };
        for flag in flags {
            let slot = match &*flag.name.value {
                "interval" => &mut check.interval,
                "timeout" => &mut check.timeout,
                "start-period" => &mut check.start_period,
                "retries" => &mut check.retries,
                _ => return Err(self.unsupported_flag(offset, "HEALTHCHECK", flag)),
            };
            *slot = Some(flag_value(flag));
        }
        check.test = match arguments {
            HealthcheckArguments::Cmd { arguments, .. } => Some(self.command(offset, arguments)?),
            HealthcheckArguments::None { .. } => None,
            _ => return Err(self.invalid(offset, "HEALTHCHECK takes CMD or NONE".into())),
        };
        Ok(check)
    }

    /// ONBUILD keeps its trigger as text; the instruction was parsed only
    /// to check it, and FROM and MAINTAINER are refused as docker does.
    fn onbuild(
        &self,
        offset: usize,
        after_keyword: usize,
        trigger: &Instruction<'_>,
    ) -> Result<Kind, ParseError> {
        if matches!(trigger, Instruction::From(_) | Instruction::Maintainer(_)) {
            return Err(self.invalid(offset, "ONBUILD may not trigger FROM or MAINTAINER".into()));
        }
        let end = logical_line_end(self.text, offset, self.escape).max(after_keyword);
        let trigger_text = self.text.get(after_keyword..end).unwrap_or_default();
        Ok(Kind::Onbuild(join_continuations(trigger_text, self.escape)))
    }
}

fn heredoc_from(marker: &heredoc::Marker, body: &str, expand: bool) -> HereDoc {
    HereDoc {
        delimiter: marker.delimiter.clone(),
        body: body.to_string(),
        expand,
        strip_tabs: marker.strip_tabs,
    }
}

fn flag_value(flag: &Flag<'_>) -> String {
    flag.value
        .as_ref()
        .map(|value| value.value.to_string())
        .unwrap_or_default()
}

fn flag_text(flag: &Flag<'_>) -> String {
    match &flag.value {
        Some(value) => format!("--{}={}", flag.name.value, value.value),
        None => format!("--{}", flag.name.value),
    }
}

/// Where an instruction's keyword starts.
fn keyword_offset(instruction: &Instruction<'_>) -> Option<usize> {
    let keyword = match instruction {
        Instruction::Add(i) => &i.add,
        Instruction::Arg(i) => &i.arg,
        Instruction::Cmd(i) => &i.cmd,
        Instruction::Copy(i) => &i.copy,
        Instruction::Entrypoint(i) => &i.entrypoint,
        Instruction::Env(i) => &i.env,
        Instruction::Expose(i) => &i.expose,
        Instruction::From(i) => &i.from,
        Instruction::Healthcheck(i) => &i.healthcheck,
        Instruction::Label(i) => &i.label,
        Instruction::Maintainer(i) => &i.maintainer,
        Instruction::Onbuild(i) => &i.onbuild,
        Instruction::Run(i) => &i.run,
        Instruction::Shell(i) => &i.shell,
        Instruction::Stopsignal(i) => &i.stopsignal,
        Instruction::User(i) => &i.user,
        Instruction::Volume(i) => &i.volume,
        Instruction::Workdir(i) => &i.workdir,
        _ => return None,
    };
    Some(keyword.span.start)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> Dockerfile {
        parse(text, "Dockerfile").unwrap()
    }

    /// The first stage's instructions after FROM.
    fn instrs(text: &str) -> Vec<Instr> {
        parsed(text).stages.remove(0).instructions
    }

    fn kinds(text: &str) -> Vec<Kind> {
        instrs(text).into_iter().map(|i| i.kind).collect()
    }

    fn kind(text: &str) -> Kind {
        kinds(text).remove(0)
    }

    fn shell(s: &str) -> CommandForm {
        CommandForm::Shell(s.into())
    }

    fn exec(words: &[&str]) -> CommandForm {
        CommandForm::Exec(words.iter().map(|w| w.to_string()).collect())
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn error(text: &str) -> String {
        parse(text, "dir/Dockerfile").unwrap_err().to_string()
    }

    #[test]
    fn each_instruction_becomes_its_kind() {
        let from = "FROM base\n";
        let table: Vec<(&str, Kind)> = vec![
            (
                "RUN make all",
                Kind::Run {
                    command: shell("make all"),
                    network: None,
                    other_flags: vec![],
                },
            ),
            ("CMD [\"a\", \"b\"]", Kind::Cmd(exec(&["a", "b"]))),
            (
                "ENTRYPOINT [\"/bin/app\"]",
                Kind::Entrypoint(exec(&["/bin/app"])),
            ),
            (
                "COPY a b /dst/",
                Kind::Copy(CopySpec {
                    sources: strings(&["a", "b"]),
                    dest: "/dst/".into(),
                    from: None,
                    chown: None,
                    chmod: None,
                    link: false,
                    heredocs: vec![],
                }),
            ),
            (
                "ADD x.tar /opt",
                Kind::Add(CopySpec {
                    sources: strings(&["x.tar"]),
                    dest: "/opt".into(),
                    from: None,
                    chown: None,
                    chmod: None,
                    link: false,
                    heredocs: vec![],
                }),
            ),
            ("ENV A=1", Kind::Env(pairs(&[("A", "1")]))),
            (
                "ARG V=1",
                Kind::Arg(vec![ArgDecl {
                    name: "V".into(),
                    default: Some("1".into()),
                }]),
            ),
            ("WORKDIR /src/$D", Kind::Workdir("/src/$D".into())),
            ("USER app:app", Kind::User("app:app".into())),
            ("LABEL a=b", Kind::Label(pairs(&[("a", "b")]))),
            ("EXPOSE 80 53/udp", Kind::Expose(strings(&["80", "53/udp"]))),
            ("VOLUME /a /b", Kind::Volume(strings(&["/a", "/b"]))),
            ("VOLUME [\"/a b\"]", Kind::Volume(strings(&["/a b"]))),
            ("STOPSIGNAL SIGTERM", Kind::Stopsignal("SIGTERM".into())),
            (
                "HEALTHCHECK CMD curl -f http://x/",
                Kind::Healthcheck(Healthcheck {
                    test: Some(shell("curl -f http://x/")),
                    interval: None,
                    timeout: None,
                    start_period: None,
                    retries: None,
                }),
            ),
            (
                "SHELL [\"/bin/bash\", \"-o\", \"pipefail\", \"-c\"]",
                Kind::Shell(strings(&["/bin/bash", "-o", "pipefail", "-c"])),
            ),
            ("ONBUILD RUN echo hi", Kind::Onbuild("RUN echo hi".into())),
            ("MAINTAINER Ann <a@x>", Kind::Maintainer("Ann <a@x>".into())),
        ];
        for (line, want) in table {
            assert_eq!(kind(&format!("{from}{line}\n")), want, "{line}");
        }
    }

    #[test]
    fn from_gives_stages_with_lowercased_names_and_raw_bases() {
        let file = parsed(
            "ARG V=12\nARG \"Q\"\nFROM --platform=linux/arm64 debian:${V} AS Build\nRUN x\n\nfrom scratch\n",
        );
        assert_eq!(
            file.global_args,
            vec![
                ArgDecl {
                    name: "V".into(),
                    default: Some("12".into())
                },
                ArgDecl {
                    name: "\"Q\"".into(),
                    default: None
                },
            ]
        );
        let [build, last] = &file.stages[..] else {
            panic!("two stages: {:?}", file.stages)
        };
        assert_eq!(build.index, 0);
        assert_eq!(build.name.as_deref(), Some("build"));
        assert_eq!(build.base, "debian:${V}");
        assert_eq!(build.platform.as_deref(), Some("linux/arm64"));
        assert_eq!(build.line, 3);
        assert_eq!(build.instructions.len(), 1);
        assert_eq!(last.index, 1);
        assert_eq!(last.name, None);
        assert_eq!(last.base, "scratch");
        assert_eq!(last.line, 6);
        assert!(last.instructions.is_empty());
        assert_eq!(file.escape, '\\');
    }

    #[test]
    fn shell_and_json_forms() {
        let text = "FROM x\n\
                    RUN [\"echo\", \"a b\"]\n\
                    RUN echo \"a b\"\n\
                    CMD echo $HOME\n\
                    ENTRYPOINT [\"sh\", \"-c\"]\n\
                    CMD [\"broken\", json]\n\
                    ENTRYPOINT ['single']\n";
        let got = kinds(text);
        let run = |command| Kind::Run {
            command,
            network: None,
            other_flags: vec![],
        };
        assert_eq!(got[0], run(exec(&["echo", "a b"])));
        assert_eq!(got[1], run(shell("echo \"a b\"")));
        assert_eq!(got[2], Kind::Cmd(shell("echo $HOME")));
        assert_eq!(got[3], Kind::Entrypoint(exec(&["sh", "-c"])));
        // Docker runs JSON that does not parse as a shell command.
        assert_eq!(got[4], Kind::Cmd(shell("[\"broken\", json]")));
        assert_eq!(got[5], Kind::Entrypoint(shell("['single']")));
    }

    #[test]
    fn run_flags_are_kept_for_the_executor() {
        let got =
            kind("FROM x\nRUN --network=none --mount=type=cache,target=/c --privileged make\n");
        assert_eq!(
            got,
            Kind::Run {
                command: shell("make"),
                network: Some("none".into()),
                other_flags: strings(&["--mount=type=cache,target=/c", "--privileged"]),
            }
        );
    }

    #[test]
    fn continuations_join_and_drop_comment_lines() {
        let text = "FROM x\n\
                    RUN apt-get update && \\\n\
                    # a comment docker drops\n\
                    \x20   apt-get install -y gcc\n\
                    ENV A=1 \\\n\
                    \x20   B=2\n\
                    USER nobody\n";
        let got = instrs(text);
        assert_eq!(got[0].line, 2);
        assert_eq!(
            got[0].kind,
            Kind::Run {
                command: shell("apt-get update &&     apt-get install -y gcc"),
                network: None,
                other_flags: vec![],
            }
        );
        assert_eq!(
            got[0].text,
            "RUN apt-get update &&     apt-get install -y gcc"
        );
        assert_eq!(got[1].line, 5);
        assert_eq!(got[1].kind, Kind::Env(pairs(&[("A", "1"), ("B", "2")])));
        assert_eq!(got[2].line, 7);
        assert_eq!(got[2].text, "USER nobody");
    }

    #[test]
    fn backtick_escape_directive() {
        let file = parsed("# escape=`\nFROM mcr/windows\nRUN dir C:\\ `\n  /b\nWORKDIR C:\\app\n");
        assert_eq!(file.escape, '`');
        let got: Vec<_> = file.stages[0]
            .instructions
            .iter()
            .map(|i| &i.kind)
            .collect();
        assert_eq!(
            got[0],
            &Kind::Run {
                command: shell("dir C:\\   /b"),
                network: None,
                other_flags: vec![],
            }
        );
        assert_eq!(got[1], &Kind::Workdir("C:\\app".into()));
    }

    #[test]
    fn several_pairs_with_quotes_and_the_legacy_env_form() {
        let got = kinds(
            "FROM x\n\
             ENV A=1 B=\"two words\" C=three\\ words\n\
             ENV LEGACY some value here\n\
             LABEL \"com.x.v\"=\"1\" other='a b'\n\
             ARG ONE TWO=2 THREE=\"3 3\"\n",
        );
        assert_eq!(
            got[0],
            Kind::Env(pairs(&[
                ("A", "1"),
                ("B", "\"two words\""),
                ("C", "three\\ words")
            ]))
        );
        assert_eq!(got[1], Kind::Env(pairs(&[("LEGACY", "some value here")])));
        assert_eq!(
            got[2],
            Kind::Label(pairs(&[("\"com.x.v\"", "\"1\""), ("other", "'a b'")]))
        );
        let Kind::Arg(args) = &got[3] else {
            panic!("{:?}", got[3])
        };
        let named: Vec<_> = args
            .iter()
            .map(|a| (a.name.as_str(), a.default.as_deref()))
            .collect();
        assert_eq!(
            named,
            [
                ("ONE", None),
                ("TWO", Some("2")),
                ("THREE", Some("\"3 3\""))
            ]
        );
    }

    #[test]
    fn healthcheck_with_flags_and_none() {
        let got = kinds(
            "FROM x\n\
             HEALTHCHECK --interval=5s --timeout=2s --start-period=1m --retries=3 CMD [\"/ok\"]\n\
             HEALTHCHECK NONE\n",
        );
        assert_eq!(
            got[0],
            Kind::Healthcheck(Healthcheck {
                test: Some(exec(&["/ok"])),
                interval: Some("5s".into()),
                timeout: Some("2s".into()),
                start_period: Some("1m".into()),
                retries: Some("3".into()),
            })
        );
        assert_eq!(
            got[1],
            Kind::Healthcheck(Healthcheck {
                test: None,
                interval: None,
                timeout: None,
                start_period: None,
                retries: None,
            })
        );
    }

    #[test]
    fn onbuild_keeps_its_trigger_text() {
        let got = kinds("FROM x\nONBUILD COPY . \\\n  /app\nONBUILD run echo $X\n");
        assert_eq!(got[0], Kind::Onbuild("COPY .   /app".into()));
        assert_eq!(got[1], Kind::Onbuild("run echo $X".into()));
        assert!(error("FROM x\nONBUILD FROM y\n").contains("may not trigger FROM"));
    }

    #[test]
    fn copy_and_add_flags() {
        let got = kinds(
            "FROM x\n\
             COPY --from=build --chown=1:2 --chmod=0755 --link /out /bin/\n\
             ADD --chown=app --link=false [\"a b\", \"/d/\"]\n",
        );
        let Kind::Copy(copy) = &got[0] else {
            panic!("{:?}", got[0])
        };
        assert_eq!(copy.from.as_deref(), Some("build"));
        assert_eq!(copy.chown.as_deref(), Some("1:2"));
        assert_eq!(copy.chmod.as_deref(), Some("0755"));
        assert!(copy.link);
        assert_eq!(copy.sources, strings(&["/out"]));
        assert_eq!(copy.dest, "/bin/");
        let Kind::Add(add) = &got[1] else {
            panic!("{:?}", got[1])
        };
        assert_eq!(add.chown.as_deref(), Some("app"));
        assert!(!add.link);
        assert_eq!(add.sources, strings(&["a b"]));
        assert_eq!(add.dest, "/d/");
    }

    fn run_script(text: &str) -> String {
        match kind(text) {
            Kind::Run {
                command: CommandForm::Shell(script),
                ..
            } => script,
            other => panic!("not a shell RUN: {other:?}"),
        }
    }

    #[test]
    fn run_heredoc_as_the_whole_command_is_the_script() {
        let script = run_script("FROM x\nRUN <<EOF\napt-get update\necho done\nEOF\n");
        assert_eq!(script, "apt-get update\necho done\n");
    }

    #[test]
    fn run_heredoc_in_a_command_is_a_here_document_for_the_shell() {
        let script = run_script("FROM x\nRUN cat <<EOF > /f\nhello $X\nEOF\n");
        assert_eq!(script, "cat <<EOF > /f\nhello $X\nEOF");
        let two = run_script("FROM x\nRUN cat <<A <<'B'\na\nA\nb\nB\n");
        assert_eq!(two, "cat <<A <<'B'\na\nA\nb\nB");
        let first_then_more = run_script("FROM x\nRUN <<A cat - <<B\na\nA\nb\nB\n");
        assert_eq!(first_then_more, "<<A cat - <<B\na\nA\nb\nB");
    }

    #[test]
    fn heredoc_tab_stripping_and_quoted_delimiters() {
        let script = run_script("FROM x\nRUN <<-EOF\n\techo a\n\t\techo b\n\tEOF\n");
        assert_eq!(script, "echo a\necho b\n");
        let got = kind("FROM x\nCOPY <<-\"END\" /etc/motd\n\thi $NAME\n\tEND\n");
        let Kind::Copy(copy) = got else {
            panic!("{got:?}")
        };
        assert_eq!(
            copy.heredocs,
            vec![HereDoc {
                delimiter: "END".into(),
                body: "hi $NAME\n".into(),
                expand: false,
                strip_tabs: true,
            }]
        );
    }

    #[test]
    fn copy_heredocs_are_named_sources() {
        let got = kind("FROM x\nCOPY <<one <<two /dst/\nfirst\none\nsecond\ntwo\n");
        let Kind::Copy(copy) = got else {
            panic!("{got:?}")
        };
        assert!(copy.sources.is_empty());
        assert_eq!(copy.dest, "/dst/");
        let named: Vec<_> = copy
            .heredocs
            .iter()
            .map(|h| (h.delimiter.as_str(), h.body.as_str(), h.expand))
            .collect();
        assert_eq!(named, [("one", "first\n", true), ("two", "second\n", true)]);
    }

    #[test]
    fn lines_stay_right_after_continuations_and_heredocs() {
        let got = instrs(
            "FROM x\n\
             RUN a \\\n  b\n\
             RUN cat <<EOF >/f\nl1\nl2\nEOF\n\
             COPY <<EOF /g\nbody\nEOF\n\
             RUN <<EOF\nx\nEOF\n\
             # comment\n\
             USER u\n",
        );
        let lines: Vec<_> = got.iter().map(|i| i.line).collect();
        assert_eq!(lines, [2, 4, 8, 11, 15]);
        assert_eq!(got[1].text, "RUN cat <<EOF >/f");
        assert_eq!(got[4].text, "USER u");
    }

    #[test]
    fn unknown_instruction_names_file_line_and_text() {
        let message = error("FROM x\n\nFRUM ubuntu\n");
        assert!(
            message.starts_with("dir/Dockerfile:3: unknown instruction: FRUM"),
            "{message}"
        );
        assert!(message.contains("FRUM ubuntu"), "{message}");
    }

    #[test]
    fn only_arg_may_come_before_from() {
        let message = error("ARG A\nRUN echo\nFROM x\n");
        assert!(
            message.starts_with("dir/Dockerfile:2: only ARG"),
            "{message}"
        );
        assert!(message.contains("RUN echo"), "{message}");
    }

    #[test]
    fn a_dockerfile_needs_a_from() {
        for text in ["", "# just a comment\n", "ARG A=1\n"] {
            let message = error(text);
            assert!(message.starts_with("dir/Dockerfile: no FROM"), "{message}");
        }
    }

    #[test]
    fn a_heredoc_needs_its_end() {
        for (text, line) in [
            ("FROM x\nRUN <<EOF\necho a\n", 2),
            ("FROM x\nRUN cat <<EOF >/f\necho a\n", 2),
            ("FROM x\nRUN true\nCOPY <<END /f\nbody\nEN\n", 3),
        ] {
            let message = error(text);
            assert!(
                message.starts_with(&format!("dir/Dockerfile:{line}: the here-document <<")),
                "{text:?}: {message}"
            );
            assert!(message.contains("has no end"), "{message}");
        }
    }

    #[test]
    fn shell_must_be_json() {
        for bad in ["SHELL /bin/bash -c", "SHELL [\"/bin/bash\", -c]"] {
            let message = error(&format!("FROM x\n{bad}\n"));
            assert!(
                message.starts_with("dir/Dockerfile:2: SHELL takes a JSON array"),
                "{message}"
            );
            assert!(message.contains(bad), "{message}");
        }
    }

    #[test]
    fn other_syntax_errors_name_the_line_and_keep_the_cause() {
        let parse_error = parse("FROM x\nCOPY onlyone\n", "Dockerfile").unwrap_err();
        let message = parse_error.to_string();
        assert!(
            message.starts_with("Dockerfile:2: syntax error (`COPY onlyone`)"),
            "{message}"
        );
        let cause = std::error::Error::source(&parse_error).map(ToString::to_string);
        assert!(cause.is_some_and(|c| c.contains("at least two arguments")));
        let message = error("FROM x\nENV A=1 B\n");
        assert!(
            message.starts_with("dir/Dockerfile:2: ENV can't find = in B"),
            "{message}"
        );
        let message = error("FROM x\nCOPY --parents a /b\n");
        assert!(
            message.starts_with("dir/Dockerfile:2: COPY does not support the flag --parents"),
            "{message}"
        );
        let message = error("FROM --nope=1 x\n");
        assert!(
            message.contains("FROM does not support the flag --nope"),
            "{message}"
        );
    }

    #[test]
    fn instructions_are_case_insensitive_and_bom_is_dropped() {
        let file = parsed("\u{feff}from x as Y\nrun echo\n");
        assert_eq!(file.stages[0].name.as_deref(), Some("y"));
        assert_eq!(file.stages[0].instructions[0].line, 2);
    }
}
