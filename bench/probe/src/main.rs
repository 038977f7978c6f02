//! isola-probe: reports, as JSON, what a process can see and do from where it
//! runs (host, container, VM). It is written with the benchmark issue.

fn main() {
    eprintln!("isola-probe: not implemented yet (see the benchmark issue)");
    std::process::exit(1);
}
