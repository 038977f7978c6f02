//! `--restart no|on-failure[:N]|always|unless-stopped`, as docker has it:
//! whether an ended workload starts again, and after how long (a back-off
//! that doubles from 100 ms up to a minute, and starts over once a run
//! lasted 10 s).

use std::time::Duration;

use anyhow::{bail, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartPolicy {
    No,
    /// On a non-zero exit, at most N times (0: no limit).
    OnFailure(u32),
    Always,
    /// As `always` here: the difference is what a daemon does at its own
    /// start, and isola has no daemon.
    UnlessStopped,
}

const FIRST: Duration = Duration::from_millis(100);
const MOST: Duration = Duration::from_secs(60);
/// A run this long counts as a success for the back-off.
const STEADY: Duration = Duration::from_secs(10);

impl RestartPolicy {
    pub fn parse(text: &str) -> Result<RestartPolicy> {
        Ok(match text.split_once(':') {
            None if text == "no" || text.is_empty() => RestartPolicy::No,
            None if text == "always" => RestartPolicy::Always,
            None if text == "unless-stopped" => RestartPolicy::UnlessStopped,
            None if text == "on-failure" => RestartPolicy::OnFailure(0),
            Some(("on-failure", n)) => match n.parse() {
                Ok(n) => RestartPolicy::OnFailure(n),
                Err(_) => {
                    bail!("--restart on-failure:{n}: the most retries must be a whole number")
                }
            },
            _ => bail!(
                "unknown --restart {text:?}: use no, on-failure[:N], always or unless-stopped"
            ),
        })
    }

    /// After a run that ended with `code` and lasted `ran_for`, having been
    /// restarted `restarts` times: the wait before starting it again, or
    /// `None` to leave it ended. A stop by the user always ends it.
    pub fn again(
        self,
        code: i32,
        restarts: u32,
        stopped_by_user: bool,
        ran_for: Duration,
    ) -> Option<Duration> {
        if stopped_by_user {
            return None;
        }
        let restart = match self {
            RestartPolicy::No => false,
            RestartPolicy::OnFailure(most) => code != 0 && (most == 0 || restarts < most),
            RestartPolicy::Always | RestartPolicy::UnlessStopped => true,
        };
        if !restart {
            return None;
        }
        if ran_for >= STEADY {
            return Some(FIRST);
        }
        let doubled = FIRST.saturating_mul(1u32 << restarts.min(16));
        Some(doubled.min(MOST))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_parse_as_docker_writes_them() {
        assert_eq!(RestartPolicy::parse("no").unwrap(), RestartPolicy::No);
        assert_eq!(
            RestartPolicy::parse("on-failure:3").unwrap(),
            RestartPolicy::OnFailure(3)
        );
        assert_eq!(
            RestartPolicy::parse("on-failure").unwrap(),
            RestartPolicy::OnFailure(0)
        );
        assert_eq!(
            RestartPolicy::parse("always").unwrap(),
            RestartPolicy::Always
        );
        for bad in ["sometimes", "on-failure:x", "always:3"] {
            assert!(RestartPolicy::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_back_off_doubles_is_capped_and_starts_over_after_a_steady_run() {
        let quick = Duration::from_millis(50);
        let p = RestartPolicy::Always;
        assert_eq!(p.again(0, 0, false, quick), Some(FIRST));
        assert_eq!(p.again(0, 3, false, quick), Some(FIRST * 8));
        assert_eq!(p.again(0, 30, false, quick), Some(MOST));
        assert_eq!(p.again(0, 30, false, STEADY), Some(FIRST));
        assert_eq!(p.again(1, 0, true, quick), None);
        let f = RestartPolicy::OnFailure(2);
        assert_eq!(f.again(0, 0, false, quick), None);
        assert!(f.again(3, 1, false, quick).is_some());
        assert_eq!(f.again(3, 2, false, quick), None);
        assert_eq!(RestartPolicy::No.again(1, 0, false, quick), None);
    }
}
