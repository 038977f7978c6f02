//! `isola volume create|ls|inspect|rm`: named volumes, sparse ext4 images that
//! outlive sandboxes and serve both backends.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Result;
use isola_core::volume::{parse_size, VolumeStore};
use isola_core::Root;

use crate::output;

#[derive(clap::Subcommand, Debug)]
pub enum VolumeCommand {
    /// Create a volume: an ext4 filesystem in a sparse file, so disk space is
    /// taken only as data is written
    Create {
        /// Volume name: letters, digits, '_', '.' and '-', starting with a letter or digit
        name: String,
        /// Size of the filesystem, e.g. 512m, 10g or 1GiB (binary units; at least 8m) [default: 1g]
        #[arg(long, value_name = "SIZE")]
        size: Option<String>,
    },
    /// List volumes
    #[command(visible_alias = "list")]
    Ls {
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Show a volume's size, disk use, image file and whether a sandbox uses it, as JSON
    Inspect {
        /// Volume name
        name: String,
    },
    /// Remove volumes and their data (refused while a sandbox uses one)
    #[command(visible_alias = "remove")]
    Rm {
        /// Volume names
        #[arg(required = true)]
        names: Vec<String>,
    },
}

pub fn run(root: &Root, cmd: &VolumeCommand) -> Result<()> {
    let store = VolumeStore::open(root.clone())?;
    match cmd {
        VolumeCommand::Create { name, size } => {
            let size = size.as_deref().map(parse_size).transpose()?;
            let volume = store.create(name, size)?;
            println!("{}", volume.name);
            Ok(())
        }
        VolumeCommand::Ls { json } => ls(&store, *json),
        VolumeCommand::Inspect { name } => output::json(&store.inspect(name)?),
        VolumeCommand::Rm { names } => output::remove_each(names, |n| store.remove(n)),
    }
}

fn ls(store: &VolumeStore, json: bool) -> Result<()> {
    let volumes = store.list()?;
    if json {
        return output::json(&volumes);
    }
    let now = now();
    let rows: Vec<Vec<String>> = volumes
        .iter()
        .map(|v| {
            vec![
                v.volume.name.clone(),
                output::size(v.volume.size),
                output::size(v.disk_bytes),
                if v.in_use { "yes" } else { "no" }.to_string(),
                ago(now, v.volume.created),
            ]
        })
        .collect();
    output::table(&["NAME", "SIZE", "ON DISK", "IN USE", "CREATED"], &rows);
    Ok(())
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// "5 minutes ago", as `docker volume ls` and `podman volume ls` show it.
fn ago(now: u64, then: u64) -> String {
    let secs = now.saturating_sub(then);
    let (n, unit) = match secs {
        0..60 => (secs, "second"),
        60..3600 => (secs / 60, "minute"),
        3600..86400 => (secs / 3600, "hour"),
        _ => (secs / 86400, "day"),
    };
    let s = if n == 1 { "" } else { "s" };
    format!("{n} {unit}{s} ago")
}

#[cfg(test)]
mod tests {
    use super::ago;

    #[test]
    fn ages_read_like_docker() {
        assert_eq!(ago(100, 100), "0 seconds ago");
        assert_eq!(ago(100, 99), "1 second ago");
        assert_eq!(ago(1000, 100), "15 minutes ago");
        assert_eq!(ago(7200, 0), "2 hours ago");
        assert_eq!(ago(86400 * 3 + 5, 0), "3 days ago");
        // A clock that went backwards is not the future.
        assert_eq!(ago(0, 100), "0 seconds ago");
    }
}
