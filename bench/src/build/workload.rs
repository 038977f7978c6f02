//! The build the dimension times: the issue's 11-line two-stage Dockerfile
//! over the busybox base (two RUNs, two COPYs, ARG, ENV, WORKDIR, USER,
//! CMD), written with a small context both tools build from.

use std::fs;
use std::io;
use std::path::Path;

/// The base both tools start from: isola's default image, which buildah
/// is handed as `localhost/isola/busybox:latest` (its name for an image
/// pulled from an OCI layout tagged `isola/busybox:latest`).
pub const BASE: &str = "isola/busybox:latest";

/// The tag the built image gets, in both tools.
pub const TAG: &str = "bench/build:latest";

/// What the tables say of the workload.
pub const LABEL: &str =
    "11-line two-stage Dockerfile on busybox (2 RUN, 2 COPY, ARG, ENV, WORKDIR, USER, CMD)";

/// Its Dockerfile: the first stage turns the context's sources into a
/// file, the second copies it and hands it to an unprivileged user.
pub const DOCKERFILE: &str = r#"FROM isola/busybox AS make
ARG GREETING=hello
WORKDIR /src
COPY src/ ./
RUN sh build.sh "$GREETING" > /src/out.txt
FROM isola/busybox
ENV APP_HOME=/app
COPY --from=make /src/out.txt $APP_HOME/
RUN chown -R 1000:1000 $APP_HOME && chmod 0755 $APP_HOME
USER 1000
CMD ["cat", "/app/out.txt"]
"#;

/// The context's files besides the Dockerfile: a script and the text it
/// reads, a few KiB in all, as a small project's sources are.
const SOURCES: [(&str, &str); 2] = [
    (
        "src/build.sh",
        "#!/bin/sh\n# Prints the greeting, then every line of words.txt numbered.\necho \"$1\"\nn=0\nwhile read -r line; do n=$((n + 1)); echo \"$n $line\"; done < words.txt\n",
    ),
    ("src/README", "The benchmark's build context.\n"),
];

/// Lines in `src/words.txt`: the context's one file of some size.
const WORDS: usize = 200;

/// Write the Dockerfile and the sources into `dir` (made if need be).
pub fn write(dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir.join("src"))?;
    fs::write(dir.join("Dockerfile"), DOCKERFILE)?;
    for (name, text) in SOURCES {
        fs::write(dir.join(name), text)?;
    }
    let words: String = (0..WORDS)
        .map(|i| format!("line {i} of the context's words\n"))
        .collect();
    fs::write(dir.join("src/words.txt"), words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dockerfile_is_the_issue_s_eleven_lines_and_two_stages() {
        let lines: Vec<&str> = DOCKERFILE.lines().collect();
        assert_eq!(lines.len(), 11);
        let count = |word: &str| lines.iter().filter(|l| l.starts_with(word)).count();
        assert_eq!(count("FROM isola/busybox"), 2);
        for (word, n) in [
            ("RUN ", 2),
            ("COPY ", 2),
            ("ARG ", 1),
            ("ENV ", 1),
            ("WORKDIR ", 1),
            ("USER ", 1),
            ("CMD ", 1),
        ] {
            assert_eq!(count(word), n, "{word}");
        }
    }

    #[test]
    fn the_context_holds_the_dockerfile_and_the_sources() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path()).unwrap();
        assert_eq!(
            fs::read_to_string(dir.path().join("Dockerfile")).unwrap(),
            DOCKERFILE
        );
        let words = fs::read_to_string(dir.path().join("src/words.txt")).unwrap();
        assert_eq!(words.lines().count(), WORDS);
        assert!(dir.path().join("src/build.sh").is_file());
    }
}
