//! runc's log: `--log FILE --log-format json` lines of `{"level","msg",
//! "time"}` (logrus' shape), the file made even when nothing fails. On a
//! failed call containerd's shim shows the `msg` of the last error line.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use super::cli::LogFormat;

pub struct Log {
    file: Option<Mutex<File>>,
    format: LogFormat,
    debug: bool,
}

impl Log {
    /// Opens (creates) the log file; without one, lines go to stderr.
    pub fn open(path: Option<&Path>, format: LogFormat, debug: bool) -> std::io::Result<Log> {
        let file = match path {
            Some(p) => Some(Mutex::new(
                OpenOptions::new().create(true).append(true).open(p)?,
            )),
            None => None,
        };
        Ok(Log {
            file,
            format,
            debug,
        })
    }

    pub fn error(&self, msg: &str) {
        self.write("error", msg);
    }

    pub fn warn(&self, msg: &str) {
        self.write("warning", msg);
    }

    pub fn debug(&self, msg: &str) {
        if self.debug {
            self.write("debug", msg);
        }
    }

    /// Whether errors reach the user's terminal only through the log
    /// (no file: they already went to stderr).
    pub fn to_stderr(&self) -> bool {
        self.file.is_none()
    }

    fn write(&self, level: &str, msg: &str) {
        let line = format_line(self.format, level, msg, std::time::SystemTime::now());
        match &self.file {
            Some(f) => {
                if let Ok(mut f) = f.lock() {
                    let _ = f.write_all(line.as_bytes());
                }
            }
            None => {
                let _ = std::io::stderr().write_all(line.as_bytes());
            }
        }
    }
}

fn format_line(format: LogFormat, level: &str, msg: &str, at: std::time::SystemTime) -> String {
    let time = humantime::format_rfc3339_seconds(at).to_string();
    match format {
        LogFormat::Json => format!(
            "{}\n",
            serde_json::json!({"level": level, "msg": msg, "time": time})
        ),
        LogFormat::Text => format!(
            "time=\"{time}\" level={level} msg={}\n",
            serde_json::Value::from(msg)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_have_logrus_keys() {
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000);
        let line = format_line(LogFormat::Json, "error", "container \"a\" exists", at);
        assert_eq!(
            line,
            "{\"level\":\"error\",\"msg\":\"container \\\"a\\\" exists\",\"time\":\"2027-01-15T08:00:00Z\"}\n"
        );
        let text = format_line(LogFormat::Text, "debug", "hi", at);
        assert_eq!(
            text,
            "time=\"2027-01-15T08:00:00Z\" level=debug msg=\"hi\"\n"
        );
    }
}
