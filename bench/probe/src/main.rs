//! isola-probe: reports, as JSON on stdout, what a process can see and do
//! from where it runs (host, container, VM), for the benchmark's isolation
//! matrix. Static, so that the same binary runs in any image and guest.

mod facts;
mod reach;
mod status;

const USAGE: &str = "usage: isola-probe [facts]

  facts   what this process can see and do, as one JSON object (the default)";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        [] | ["facts"] => {
            let facts = facts::collect();
            match serde_json::to_string(&facts) {
                Ok(json) => println!("{json}"),
                Err(e) => {
                    eprintln!("isola-probe: {e}");
                    std::process::exit(1);
                }
            }
        }
        ["-h" | "--help"] => println!("{USAGE}"),
        _ => {
            eprintln!("{USAGE}");
            std::process::exit(2);
        }
    }
}
