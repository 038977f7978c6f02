//! An error and its causes as one line, `what: why: ...`, the way the
//! probe's JSON and its stderr carry them.

use std::error::Error;

pub fn chain(error: &dyn Error) -> String {
    let mut line = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        line.push_str(": ");
        line.push_str(&e.to_string());
        cause = e.source();
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("writing the file")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn each_cause_follows_its_effect() {
        let e = Outer(std::io::Error::other("disk full"));
        assert_eq!(chain(&e), "writing the file: disk full");
    }
}
