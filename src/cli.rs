//! The command line as data (clap derive): every subcommand, flag and help text.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "isola",
    version,
    about = "Run the same OCI image as a container or in a minimal KVM guest, and measure the trade-off"
)]
pub struct Cli {
    /// State directory (images, layers, sandboxes)
    #[arg(long, global = true, env = "ISOLA_ROOT", default_value = isola_core::root::DEFAULT_ROOT, value_name = "DIR")]
    pub root: PathBuf,
    /// Show what isola does (-v debug, -vv trace); ISOLA_LOG=filter overrides
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// List stored images
    Images(Json),
    /// Import an image from an OCI layout (directory or tar) or a docker-archive tar
    Import(ImportArgs),
    /// Show an image's digest, config and layers as JSON
    Inspect {
        /// Image name[:tag] or ID
        image: String,
    },
    /// Show how an image was built, layer by layer
    History {
        /// Image name[:tag] or ID
        image: String,
        #[command(flatten)]
        json: Json,
    },
    /// Give an image another name
    Tag {
        /// Image name[:tag] or ID
        source: String,
        /// New name[:tag]
        target: String,
    },
    /// Remove images; blobs and layers no other image uses are deleted
    Rmi {
        /// Image names[:tag] or IDs
        #[arg(required = true)]
        images: Vec<String>,
        /// Remove an image given by ID even if it has several names
        #[arg(short, long)]
        force: bool,
    },
    /// Disk used per image, what is shared between images, and the store's real total
    Du(Json),
    /// Write an image's root filesystem (whiteouts applied) into a directory
    Export {
        /// Image name[:tag] or ID
        image: String,
        /// Destination directory (created; must be empty if it exists)
        dir: PathBuf,
    },
    /// Image maintenance
    #[command(subcommand)]
    Image(ImageCommand),
}

#[derive(Subcommand, Debug)]
pub enum ImageCommand {
    /// Build the default image (isola/busybox:latest) from the host's static busybox
    Default {
        /// Rebuild it even if it exists
        #[arg(long)]
        rebuild: bool,
    },
}

#[derive(clap::Args, Debug)]
pub struct Json {
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct ImportArgs {
    /// OCI layout directory, OCI archive (.tar) or docker-archive (.tar)
    pub path: PathBuf,
    /// Store the image under this name[:tag] (default: the name the archive gives it)
    #[arg(long, value_name = "NAME:TAG")]
    pub name: Option<String>,
    /// Which image to take from an archive holding several (its ref name or repo tag)
    #[arg(long = "ref", value_name = "REF")]
    pub reference: Option<String>,
    /// Platform to take from a multi-arch image
    #[arg(long, default_value = "linux/amd64", value_name = "OS/ARCH")]
    pub platform: String,
    #[command(flatten)]
    pub json: Json,
}
