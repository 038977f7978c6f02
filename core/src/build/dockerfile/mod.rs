//! The Dockerfile as the build executes it: stages of instructions with
//! their arguments raw (not expanded), parsed from text with line numbers.
//! Expansion, docker's rules, is in [`expand`] and happens at execution.

pub mod expand;
#[cfg(test)]
mod fuzz;
mod heredoc;
mod parse;
mod text;

pub use expand::{expand_word, expand_words, referenced_names, ExpandError, EXPANDED_IN};
pub use parse::{parse, ParseError};

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerfile {
    /// From `# escape=` (default `\`).
    pub escape: char,
    /// ARGs before the first FROM.
    pub global_args: Vec<ArgDecl>,
    pub stages: Vec<StageDef>,
}

/// One `FROM` and the instructions up to the next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageDef {
    pub index: usize,
    /// `AS name`, lowercased as docker does.
    pub name: Option<String>,
    /// The FROM image text, not expanded (`ubuntu:${V}`).
    pub base: String,
    /// `FROM --platform=`, not expanded.
    pub platform: Option<String>,
    /// 1-based line of the FROM.
    pub line: usize,
    /// The stage's instructions after FROM.
    pub instructions: Vec<Instr>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instr {
    /// 1-based line where the instruction starts.
    pub line: usize,
    /// The instruction as written, continuations joined into one line (for a
    /// heredoc, its first line): for messages and `STEP n/m: ...` output.
    pub text: String,
    pub kind: Kind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgDecl {
    pub name: String,
    /// Raw, not expanded (quotes still in).
    pub default: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandForm {
    /// The JSON array form.
    Exec(Vec<String>),
    /// The shell form: what `SHELL` (by default `/bin/sh -c`) runs.
    Shell(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HereDoc {
    /// The delimiter with its quotes removed (`EOF` for `<<"EOF"`).
    pub delimiter: String,
    /// The lines between the marker and the delimiter line, each ending in
    /// a newline, with leading tabs removed when `strip_tabs`.
    pub body: String,
    /// The delimiter was unquoted: the body is subject to expansion.
    pub expand: bool,
    /// Written `<<-`.
    pub strip_tabs: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopySpec {
    /// Raw path (or URL, for ADD) sources; heredoc sources are in `heredocs`.
    pub sources: Vec<String>,
    /// Raw.
    pub dest: String,
    /// `--from=`.
    pub from: Option<String>,
    /// `--chown=`.
    pub chown: Option<String>,
    /// `--chmod=`.
    pub chmod: Option<String>,
    /// `--link` (accepted, no effect).
    pub link: bool,
    /// `COPY <<EOF /dest`: each heredoc is a source file named by its delimiter.
    pub heredocs: Vec<HereDoc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Healthcheck {
    /// `None` for `HEALTHCHECK NONE`.
    pub test: Option<CommandForm>,
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub start_period: Option<String>,
    pub retries: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Run {
        command: CommandForm,
        /// `--network=`.
        network: Option<String>,
        /// Other flags as written (e.g. `--mount=...`), refused by the executor.
        other_flags: Vec<String>,
    },
    Cmd(CommandForm),
    Entrypoint(CommandForm),
    Copy(CopySpec),
    Add(CopySpec),
    /// Raw key/value pairs (quotes still in); in the legacy `ENV k v w`
    /// form the value is the rest of the line.
    Env(Vec<(String, String)>),
    Arg(Vec<ArgDecl>),
    /// Raw.
    Workdir(String),
    /// Raw.
    User(String),
    /// Raw pairs.
    Label(Vec<(String, String)>),
    /// Raw words.
    Expose(Vec<String>),
    /// The JSON array or the whitespace-separated words, raw.
    Volume(Vec<String>),
    Stopsignal(String),
    Healthcheck(Healthcheck),
    /// The JSON form; anything else is a parse error.
    Shell(Vec<String>),
    /// The trigger instruction's text, e.g. `RUN echo hi`.
    Onbuild(String),
    Maintainer(String),
}
