//! An error and its causes as one line, `what: why: ...`, where no anyhow
//! is there to print it: results.json's errors, isola-runtime's keeper,
//! the VM monitor's report (the terminal shows anyhow's chain the same
//! way).

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
    #[error("removing its kept sandbox")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn each_cause_follows_its_effect() {
        let e = Outer(std::io::Error::other("isola rm failed"));
        assert_eq!(chain(&e), "removing its kept sandbox: isola rm failed");
    }
}
