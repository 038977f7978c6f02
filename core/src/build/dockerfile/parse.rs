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
    ArgDecl, CommandForm, CopySpec, Dockerfile, HereDoc, Healthcheck, Instr, Kind, StageDef,
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
    #[error("{file}:{line}: SHELL takes a JSON array, e.g. SHELL [\"/bin/sh\", \"-c\"] (`{text}`)")]
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
            name: from
                .as_
                .as_ref()
                .map(|(_, name)| name.value.to_lowercase()),
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
            name_value_pairs(raw, escape).map_err(|why| self.invalid(offset, format!("{name} {why}")))
        };
        Ok(match instruction {
            Instruction::Run(run) => self.run(offset, run)?,
            Instruction::Cmd(cmd) => Kind::Cmd(self.command(offset, &cmd.arguments)?),
            Instruction::Entrypoint(entrypoint) => {
                Kind::Entrypoint(self.command(offset, &entrypoint.arguments)?)
            }
            Instruction::Copy(copy) => {
                Kind::Copy(self.copy_spec(offset, "COPY", &copy.options, &copy.src, &copy.dest.value)?)
            }
            Instruction::Add(add) => {
                Kind::Add(self.copy_spec(offset, "ADD", &add.options, &add.src, &add.dest.value)?)
            }
            Instruction::Env(env) => Kind::Env(pairs(&env.arguments.value, "ENV")?),
            Instruction::Label(label) => Kind::Label(pairs(&label.arguments.value, "LABEL")?),
            Instruction::Arg(arg) => Kind::Arg(self.args(offset, &arg.arguments.value)?),
            Instruction::Workdir(workdir) => Kind::Workdir(workdir.arguments.value.to_string()),
            Instruction::User(user) => Kind::User(user.arguments.value.to_string()),
            Instruction::Expose(expose) => {
                Kind::Expose(expose.arguments.iter().map(|w| w.value.to_string()).collect())
            }
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
            Instruction::Shell(shell) => {
                Kind::Shell(shell.arguments.iter().map(|w| w.value.to_string()).collect())
            }
            Instruction::Onbuild(onbuild) => self.onbuild(offset, onbuild.onbuild.span.end, &onbuild.instruction)?,
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
        let read = run.here_docs.iter().zip(&markers).map(|(doc, marker)| {
            heredoc_from(marker, &doc.value, doc.expand)
        });
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
                    spec.heredocs.push(heredoc_from(marker, &doc.value, doc.expand));
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
