//! `isola build`'s arguments, shared by the `isola` binary (for its help
//! and parsing) and `isola-build`, which carries the build out.

use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct BuildArgs {
    /// Name the image NAME[:TAG] (repeatable); without, it is known by its ID
    #[arg(short, long = "tag", value_name = "NAME[:TAG]")]
    pub tags: Vec<String>,
    /// The Dockerfile (default: CONTEXT/Dockerfile, else CONTEXT/Containerfile; - reads standard input)
    #[arg(short, long, value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Give an ARG a value; KEY alone takes it from isola's environment
    #[arg(long = "build-arg", value_name = "KEY=VALUE")]
    pub build_args: Vec<String>,
    /// Build this stage (by its AS name or index) and what it needs, not the last one
    #[arg(long, value_name = "STAGE")]
    pub target: Option<String>,
    /// Make every step afresh (the results are still cached for later builds)
    #[arg(long)]
    pub no_cache: bool,
    /// Pull each base image first, even when the store has it
    #[arg(long)]
    pub pull: bool,
    /// Add a label to the image (repeatable)
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Write the image ID to this file
    #[arg(long, value_name = "FILE")]
    pub iidfile: Option<PathBuf>,
    /// Print only the image ID: no steps, no output of RUN steps
    #[arg(short, long)]
    pub quiet: bool,
    /// Where RUN steps run: container (vm comes with the VM devices)
    #[arg(long, default_value = "container", value_name = "BACKEND")]
    pub backend: String,
    /// Network of RUN steps: none (only a loopback) or host
    #[arg(long, default_value = "none", value_name = "MODE")]
    pub network: String,
    /// Memory limit of each RUN step, e.g. 512m
    #[arg(short, long, value_name = "SIZE")]
    pub memory: Option<String>,
    /// CPU time limit of each RUN step in CPUs, e.g. 1.5
    #[arg(long, value_name = "N")]
    pub cpus: Option<f64>,
    /// The build context: the directory COPY and ADD read from
    #[arg(value_name = "CONTEXT")]
    pub context: PathBuf,
}
