//! The registry commands' arguments, shared by the `isola` binary (for its
//! help and parsing) and `isola-registry`, which carries them out.

use std::path::PathBuf;

#[derive(clap::Subcommand, Debug)]
pub enum RegistryCommand {
    /// Download an image from a registry (only the layers not already stored)
    Pull(PullArgs),
    /// Upload an image to a registry (only the blobs it lacks)
    Push(PushArgs),
    /// Log in to a registry; the credentials are kept as docker keeps them
    Login(LoginArgs),
    /// Log out of a registry
    Logout(LogoutArgs),
    /// Fetch a URL into a file (isola build's `ADD URL`)
    #[command(hide = true)]
    FetchUrl(FetchUrlArgs),
}

#[derive(clap::Args, Debug)]
pub struct FetchUrlArgs {
    /// Where to write what the URL holds
    #[arg(long, value_name = "FILE")]
    pub output: PathBuf,
    #[arg(value_name = "URL")]
    pub url: String,
}

/// How registry commands connect and authenticate (podman's flags).
#[derive(clap::Args, Debug)]
pub struct RegistryFlags {
    /// Require HTTPS with a verified certificate; false allows plain HTTP and any certificate
    #[arg(long, value_name = "BOOL", default_value_t = true, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub tls_verify: bool,
    /// CA certificates (*.crt) for the registry, in DIR or DIR/HOST:PORT/ (default /etc/containers/certs.d/HOST:PORT/, /etc/docker/certs.d/HOST:PORT/)
    #[arg(long, value_name = "DIR")]
    pub cert_dir: Option<PathBuf>,
    /// Credentials file (default $REGISTRY_AUTH_FILE, else $DOCKER_CONFIG/config.json or ~/.docker/config.json)
    #[arg(long, value_name = "FILE")]
    pub authfile: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
pub struct PullArgs {
    /// [REGISTRY[:PORT]/]REPOSITORY[:TAG|@sha256:DIGEST]; without a registry, Docker Hub
    #[arg(value_name = "REF")]
    pub reference: String,
    /// Platform to take from a multi-platform image (default: this host's)
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    pub platform: Option<String>,
    /// Layers downloaded at once
    #[arg(long, default_value_t = 3, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=64))]
    pub max_concurrent_downloads: u16,
    /// No progress output; only the image ID
    #[arg(short, long)]
    pub quiet: bool,
    /// Fetch and verify the layers the store lacks, then drop them: nothing
    /// unpacked or stored (`isola bench distribution` times it against
    /// `skopeo copy` to an OCI layout)
    #[arg(long, hide = true)]
    pub fetch_only: bool,
    #[command(flatten)]
    pub registry: RegistryFlags,
}

#[derive(clap::Args, Debug)]
pub struct PushArgs {
    /// Stored image name[:tag] or ID
    #[arg(value_name = "IMAGE")]
    pub image: String,
    /// Where to push: REGISTRY[:PORT]/REPOSITORY[:TAG] (default: IMAGE itself)
    #[arg(value_name = "DESTINATION")]
    pub destination: Option<String>,
    /// Re-compress layers that are not already in this format
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub compress: Option<CompressFormat>,
    /// Write the pushed manifest's digest to this file
    #[arg(long, value_name = "FILE")]
    pub digestfile: Option<PathBuf>,
    /// No progress output; only the digest
    #[arg(short, long)]
    pub quiet: bool,
    #[command(flatten)]
    pub registry: RegistryFlags,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum CompressFormat {
    Gzip,
    Zstd,
}

#[derive(clap::Args, Debug)]
pub struct LoginArgs {
    /// Registry host[:port] (default: Docker Hub)
    #[arg(value_name = "REGISTRY")]
    pub registry: Option<String>,
    #[arg(short, long, value_name = "USER")]
    pub username: Option<String>,
    /// The password (visible in `ps`; prefer --password-stdin)
    #[arg(
        short,
        long,
        value_name = "PASSWORD",
        conflicts_with = "password_stdin"
    )]
    pub password: Option<String>,
    /// Read the password from stdin
    #[arg(long)]
    pub password_stdin: bool,
    #[command(flatten)]
    pub registry_flags: RegistryFlags,
}

#[derive(clap::Args, Debug)]
pub struct LogoutArgs {
    /// Registry host[:port] (default: Docker Hub)
    #[arg(value_name = "REGISTRY", conflicts_with = "all")]
    pub registry: Option<String>,
    /// Remove the credentials of every registry
    #[arg(short, long)]
    pub all: bool,
    /// Credentials file (default as for login)
    #[arg(long, value_name = "FILE")]
    pub authfile: Option<PathBuf>,
}
