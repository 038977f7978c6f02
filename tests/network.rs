//! Bridge networks for real, as root, all traffic on this machine: the
//! `network` verbs, a web server reached through `-p` on 127.0.0.1 and by
//! name from a second container, `--network none` unchanged, a hundred
//! sandboxes through one network, bad input (one sentence, nothing made)
//! and a shim killed with its ports published (`prune` frees them). Each
//! test removes its sandboxes and networks, and leaves no link or table.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Output;
use std::time::{Duration, Instant};

use common::Isola;

/// A store with the default image, `ip` and `nft`, or `None` (skipped).
fn isola() -> Option<Isola> {
    if !(common::root_user() && common::tool("nft") && common::tool("ip")) {
        return None;
    }
    let isola = Isola::new();
    isola.ok(["image", "default"]);
    Some(isola)
}

/// Removes the test's sandboxes and networks, passed or not.
struct Cleanup<'a>(&'a Isola);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let ids = text(&self.0.cmd(["ps", "-aq"]).stdout);
        let ids: Vec<&str> = ids.split_whitespace().collect();
        if !ids.is_empty() {
            let mut args = vec!["rm", "-f"];
            args.extend(ids);
            let _ = self.0.cmd(&args);
        }
        let _ = self.0.cmd(["prune"]);
        let nets = self.0.cmd(["network", "ls", "--json"]);
        let nets: serde_json::Value = serde_json::from_slice(&nets.stdout).unwrap_or_default();
        for n in nets.as_array().into_iter().flatten() {
            if let Some(name) = n["name"].as_str() {
                let _ = self.0.cmd(["network", "rm", name]);
            }
        }
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `isola ARGS` must fail with one line saying `says`.
fn refused(isola: &Isola, args: &[&str], says: &str) {
    let out = isola.cmd(args);
    let err = text(&out.stderr);
    assert!(!out.status.success(), "isola {args:?} succeeded");
    assert!(
        err.contains(says),
        "isola {args:?} said {err:?}, not {says:?}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "one sentence: {err}");
}

/// The host's links and isola's tables, to compare before and after.
fn host_network() -> String {
    let links = std::process::Command::new("ip")
        .args(["-o", "link"])
        .output()
        .expect("ip");
    let tables = std::process::Command::new("nft")
        .args(["list", "tables"])
        .output()
        .expect("nft");
    let names: Vec<String> = text(&links.stdout)
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .collect();
    format!("{}\n{}", names.join(" "), text(&tables.stdout))
}

fn ours(host: &str, bridge: &str) -> bool {
    host.contains(bridge)
}

/// An HTTP GET of `path` from 127.0.0.1:`port`, retried while the server
/// starts; the body.
fn get(port: u16, path: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let tried = (|| -> std::io::Result<String> {
            let mut s = TcpStream::connect(("127.0.0.1", port))?;
            s.set_read_timeout(Some(Duration::from_secs(5)))?;
            write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n")?;
            let mut got = String::new();
            s.read_to_string(&mut got)?;
            Ok(got)
        })();
        match tried {
            Ok(got) if got.contains("200 OK") => {
                return got.split("\r\n\r\n").nth(1).unwrap_or_default().to_string()
            }
            other if Instant::now() > deadline => panic!("GET {path} on port {port}: {other:?}"),
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// A port nothing listens on now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

const SERVE: &str = "mkdir -p /www && echo \"hello from $(hostname)\" > /www/index.html && exec httpd -f -p 80 -h /www";

#[test]
fn a_web_server_is_reached_through_its_port_and_by_name() {
    let Some(isola) = isola() else { return };
    let _clean = Cleanup(&isola);
    let net = "webnet";
    isola.ok(["network", "create", net]);
    let port = free_port();
    let publish = format!("127.0.0.1:{port}:80");
    let id = isola.ok([
        "run",
        "-d",
        "--name",
        "web",
        "--hostname",
        "webhost",
        "--network",
        net,
        "--network-alias",
        "www",
        "-p",
        &publish,
        "isola/busybox",
        "sh",
        "-c",
        SERVE,
    ]);
    assert_eq!(
        get(port, "/"),
        "hello from webhost\n",
        "through -p on 127.0.0.1"
    );

    // From a second container: by --name, by alias, by address.
    let inspect = isola.json(["network", "inspect", net]);
    let members = inspect[0]["sandboxes"].as_array().expect("members").clone();
    assert_eq!(members.len(), 1, "{inspect}");
    let ip = members[0]["ip"].as_str().expect("an address").to_string();
    assert_eq!(members[0]["ports"][0]["host_port"], port);
    for host in ["web", "www", ip.as_str()] {
        let out = isola.ok([
            "run",
            "--rm",
            "--network",
            net,
            "isola/busybox",
            "wget",
            "-qO-",
            &format!("http://{host}/"),
        ]);
        assert_eq!(out, "hello from webhost\n", "from a container, by {host}");
    }
    // The second one's own view: eth0 with an address of the subnet, the
    // gateway as its route, and the name files.
    let view = isola.ok([
        "run",
        "--rm",
        "--network",
        net,
        "isola/busybox",
        "sh",
        "-c",
        "ip -4 -o addr show eth0; ip route; cat /etc/hosts",
    ]);
    let subnet = inspect[0]["subnet"].as_str().expect("subnet");
    let prefix = subnet.rsplit_once('.').expect("dotted").0;
    assert!(view.contains(&format!("inet {prefix}.")), "{view}");
    assert!(
        view.contains(&format!(
            "default via {}",
            inspect[0]["gateway"].as_str().unwrap()
        )),
        "{view}"
    );
    assert!(view.contains(&format!("{ip}\twebhost web www")), "{view}");

    // In use: refused by name, and nothing changed.
    refused(&isola, &["network", "rm", net], "is in use by webhost");
    // Port taken, and the same fixed address twice.
    refused(
        &isola,
        &[
            "run",
            "--rm",
            "--network",
            net,
            "-p",
            &publish,
            "isola/busybox",
            "true",
        ],
        &format!("host port 127.0.0.1:{port}/tcp is already in use"),
    );
    isola.ok(["rm", "-f", id.trim()]);
    let bridge = inspect[0]["bridge"].as_str().expect("bridge").to_string();
    // Its rules are gone with it: the port answers no more.
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "port {port} still open"
    );
    isola.ok(["network", "rm", net]);
    assert!(
        !ours(&host_network(), &bridge),
        "{bridge} left: {}",
        host_network()
    );
}

#[test]
fn network_verbs_and_bad_input() {
    let Some(isola) = isola() else { return };
    let _clean = Cleanup(&isola);
    isola.ok(["network", "create", "one"]);
    let one = isola.json(["network", "inspect", "one"]);
    let subnet = one[0]["subnet"].as_str().expect("subnet").to_string();
    let listed = isola.ok(["network", "ls"]);
    assert!(
        listed.contains("one") && listed.contains(&subnet),
        "{listed}"
    );

    refused(
        &isola,
        &["network", "create", "one"],
        "a network named \"one\" exists already",
    );
    refused(
        &isola,
        &["network", "create", "no/slash"],
        "is not a valid network name",
    );
    refused(
        &isola,
        &["network", "create", "--subnet", "10.89.0.7/24", "x"],
        "has host bits set: the subnet is 10.89.0.0/24",
    );
    refused(
        &isola,
        &["network", "create", "--subnet", &subnet, "two"],
        "is already network \"one\"'s",
    );
    // Another root's network with the same subnet meets the first one's
    // bridge among the host's routes.
    let other = Isola::new();
    refused(
        &other,
        &["network", "create", "--subnet", &subnet, "three"],
        &format!(
            "overlaps the host's route to {subnet} (dev {}",
            one[0]["bridge"].as_str().unwrap()
        ),
    );
    refused(
        &isola,
        &["network", "inspect", "nope"],
        "no network named \"nope\"",
    );
    let before = isola.snapshot();
    refused(
        &isola,
        &["run", "--rm", "--network", "nope", "isola/busybox", "true"],
        "no network named \"nope\"",
    );
    refused(
        &isola,
        &["run", "--rm", "-p", "8080:80", "isola/busybox", "true"],
        "-p/-P needs a bridge network",
    );
    refused(
        &isola,
        &[
            "run",
            "--rm",
            "--network",
            "one",
            "-p",
            "80:http",
            "isola/busybox",
            "true",
        ],
        "\"http\" is not a port number",
    );
    refused(
        &isola,
        &[
            "run",
            "--rm",
            "--network",
            "bridge",
            "--ip",
            "10.89.0.9",
            "isola/busybox",
            "true",
        ],
        "--ip needs a network of your own",
    );
    assert_eq!(isola.snapshot(), before, "a refused run changed the store");

    // Two sandboxes asking for one fixed address.
    let prefix = subnet.rsplit_once('.').expect("dotted").0;
    let fixed = format!("{prefix}.77");
    let first = isola.ok([
        "run",
        "-d",
        "--network",
        "one",
        "--ip",
        &fixed,
        "isola/busybox",
        "sleep",
        "60",
    ]);
    refused(
        &isola,
        &[
            "run",
            "--rm",
            "--network",
            "one",
            "--ip",
            &fixed,
            "isola/busybox",
            "true",
        ],
        &format!("--ip {fixed} on network \"one\" is already held by sandbox"),
    );
    refused(
        &isola,
        &[
            "run",
            "--rm",
            "--network",
            "one",
            "--ip",
            "10.1.2.3",
            "isola/busybox",
            "true",
        ],
        "is outside network \"one\"'s subnet",
    );
    let seen = isola.ok([
        "exec",
        first.trim(),
        "ip",
        "-4",
        "-o",
        "addr",
        "show",
        "eth0",
    ]);
    assert!(seen.contains(&format!("inet {fixed}/24")), "{seen}");
    isola.ok(["rm", "-f", first.trim()]);
    isola.ok(["network", "rm", "one"]);
    assert!(isola.ok(["network", "ls", "--json"]).trim() == "[]");
}

#[test]
fn none_is_still_only_lo_and_a_hundred_sandboxes_come_and_go() {
    let Some(isola) = isola() else { return };
    let _clean = Cleanup(&isola);
    let links = isola.ok(["run", "--rm", "isola/busybox", "ls", "/sys/class/net"]);
    assert_eq!(links.split_whitespace().collect::<Vec<_>>(), ["lo"]);
    let links = isola.ok([
        "run",
        "--rm",
        "--network",
        "bridge",
        "isola/busybox",
        "ls",
        "/sys/class/net",
    ]);
    assert_eq!(links.split_whitespace().collect::<Vec<_>>(), ["eth0", "lo"]);
    let inspect = isola.json(["network", "inspect", "bridge"]);
    let bridge = inspect[0]["bridge"].as_str().expect("bridge").to_string();
    let ports = || {
        std::fs::read_dir(format!("/sys/class/net/{bridge}/brif"))
            .map(|d| d.count())
            .unwrap_or(usize::MAX)
    };
    for i in 0..100 {
        let out: Output = isola.cmd([
            "run",
            "--rm",
            "--network",
            "bridge",
            "isola/busybox",
            "true",
        ]);
        assert!(out.status.success(), "run {i}: {}", text(&out.stderr));
    }
    // A veth goes with its sandbox's network namespace, which the kernel
    // frees in its own time, soon after.
    let deadline = Instant::now() + Duration::from_secs(10);
    while ports() != 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(ports(), 0, "a veth is left on {bridge}");
    let inspect = isola.json(["network", "inspect", "bridge"]);
    assert_eq!(
        inspect[0]["sandboxes"],
        serde_json::json!([]),
        "leases left"
    );
    let files = isola.root().join("networks/bridge/files");
    assert_eq!(
        std::fs::read_dir(&files).map(|d| d.count()).unwrap_or(0),
        0,
        "name files left"
    );
    isola.ok(["network", "rm", "bridge"]);
}

#[test]
fn prune_frees_what_a_killed_shim_held() {
    let Some(isola) = isola() else { return };
    let _clean = Cleanup(&isola);
    isola.ok(["network", "create", "k"]);
    let port = free_port();
    let id = isola.ok([
        "run",
        "-d",
        "--network",
        "k",
        "-p",
        &format!("127.0.0.1:{port}:80"),
        "isola/busybox",
        "sh",
        "-c",
        SERVE,
    ]);
    let id = id.trim();
    get(port, "/");
    let pid = isola.json(["inspect", id])["pid"]
        .as_i64()
        .expect("the shim's pid in inspect");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("killing the shim");
    // The container dies with its shim; its veth with its namespace.
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_ok() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let bridge = isola.json(["network", "inspect", "k"])[0]["bridge"]
        .as_str()
        .expect("bridge")
        .to_string();
    let rules = |b: &str| {
        text(
            &std::process::Command::new("nft")
                .args(["list", "table", "ip", b])
                .output()
                .expect("nft")
                .stdout,
        )
    };
    assert!(
        rules(&bridge).contains(&format!("dport {port}")),
        "the rule should still be there"
    );
    let pruned = isola.cmd(["prune"]);
    assert!(
        text(&pruned.stderr).contains(&format!("freed the network address of sandbox {id}")),
        "{}",
        text(&pruned.stderr)
    );
    assert!(
        !rules(&bridge).contains(&format!("dport {port}")),
        "{}",
        rules(&bridge)
    );
    assert_eq!(
        isola.json(["network", "inspect", "k"])[0]["sandboxes"],
        serde_json::json!([])
    );
    assert!(!host_network().contains(&format!("isv{id}")));
    isola.ok(["network", "rm", "k"]);
}

#[test]
fn publish_all_takes_the_ports_the_image_exposes() {
    let Some(isola) = isola() else { return };
    let _clean = Cleanup(&isola);
    let ctx = isola.context("exposing", "FROM isola/busybox\nEXPOSE 80 5353/udp\n", &[]);
    isola.ok([
        "build",
        "-q",
        "-t",
        "exposing:1",
        ctx.to_str().expect("utf-8 path"),
    ]);
    isola.ok(["network", "create", "p"]);
    let id = isola.ok([
        "run",
        "-d",
        "--name",
        "pub",
        "--network",
        "p",
        "-P",
        "exposing:1",
        "sh",
        "-c",
        SERVE,
    ]);
    let id = id.trim();
    let listed = isola.ok(["port", "pub"]);
    assert_eq!(listed.lines().count(), 2, "{listed}");
    assert!(listed.contains("5353/udp -> 0.0.0.0:"), "{listed}");
    let web = isola.ok(["port", id, "80"]);
    let host_port: u16 = web
        .trim()
        .strip_prefix("0.0.0.0:")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("isola port {id} 80 said {web:?}"));
    assert_eq!(get(host_port, "/"), format!("hello from {id}\n"));
    let ps = isola.ok(["ps"]);
    assert!(ps.contains(&format!("0.0.0.0:{host_port}->80/tcp")), "{ps}");
    let inspect = isola.json(["inspect", id]);
    assert_eq!(
        inspect["networks"]["p"]["ports"].as_array().map(Vec::len),
        Some(2),
        "{inspect}"
    );
    refused(&isola, &["port", id, "81"], "does not publish port 81/tcp");
    isola.ok(["rm", "-f", id]);
    isola.ok(["network", "rm", "p"]);
}

#[test]
fn a_vm_and_a_container_on_one_network_talk_both_ways() {
    let Some(isola) = isola() else { return };
    if !common::tool("qemu-system-x86_64")
        || !common::host_has(
            "isola-init built static (make test builds it)",
            common::guest_init().is_file(),
        )
    {
        return;
    }
    let Some(kernel) = common::isola_kernel_for_host() else {
        return;
    };
    let _clean = Cleanup(&isola);
    let run = |args: &[&str]| {
        let out = isola
            .command(args)
            .env("ISOLA_INIT", common::guest_init())
            .stdin(std::process::Stdio::null())
            .output()
            .expect("running isola");
        assert!(
            out.status.success(),
            "isola {args:?}: {}",
            text(&out.stderr)
        );
        text(&out.stdout)
    };
    isola.ok(["network", "create", "mix"]);
    run(&[
        "run",
        "-d",
        "--name",
        "web",
        "--hostname",
        "web",
        "--network",
        "mix",
        "isola/busybox",
        "sh",
        "-c",
        SERVE,
    ]);
    // The guest fetches from the container by name, then serves what it
    // got, through the tap and its virtio-net.
    let port = free_port();
    let script = "mkdir -p /www && echo vm says hi > /www/index.html
        until wget -qO /www/from-web http://web/; do sleep 0.2; done
        ip -4 -o addr show eth0 > /www/addr; exec httpd -f -p 80 -h /www";
    run(&[
        "run",
        "-d",
        "--name",
        "vm1",
        "--backend",
        "vm",
        "--vmm",
        "qemu",
        "--kernel",
        kernel.to_str().expect("utf-8 path"),
        "--network",
        "mix",
        "-p",
        &format!("127.0.0.1:{port}:80"),
        "isola/busybox",
        "sh",
        "-c",
        script,
    ]);
    // Host → VM through the published port.
    assert_eq!(get(port, "/"), "vm says hi\n");
    // Container → VM by name, carrying what the VM got from the container.
    let fetch = "until wget -qO- http://vm1/from-web; do sleep 0.2; done";
    let got = run(&[
        "run",
        "--rm",
        "--network",
        "mix",
        "isola/busybox",
        "sh",
        "-c",
        fetch,
    ]);
    assert_eq!(got, "hello from web\n", "container → VM → container");
    let addr = get(port, "/addr");
    let members = isola.json(["network", "inspect", "mix"]);
    let vm_ip = members[0]["sandboxes"]
        .as_array()
        .and_then(|m| m.iter().find(|l| l["names"][1] == "vm1"))
        .and_then(|l| l["ip"].as_str())
        .expect("the VM's lease")
        .to_string();
    assert!(addr.contains(&format!("inet {vm_ip}/24")), "{addr}");
    isola.ok(["rm", "-f", "vm1", "web"]);
    isola.ok(["network", "rm", "mix"]);
}
