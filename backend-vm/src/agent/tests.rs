//! The host side against a fake guest agent on a unix socket: the
//! greeting, a process's streams both ways, its signal and its end, a
//! version mismatch and a guest that goes away.

use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixListener;

use isola_core::backend::{ExecSpec, ExitStatus};
use isola_core::spec::{Process, User};
use isola_guest_spec::agent::{self, GuestMessage, HostMessage, Reader, Status};

use super::{start, Client, Dial};

/// A fake guest: answers the hello with `version`, then hands each host
/// message to `serve`, which answers.
fn fake_guest(
    version: u32,
    mut serve: impl FnMut(HostMessage, &mut Vec<u8>) -> bool + Send + 'static,
) -> (
    tempfile::TempDir,
    Dial,
    std::thread::JoinHandle<Vec<HostMessage>>,
) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let guest = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut reader = Reader::default();
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = match s.read(&mut buf) {
                Ok(0) | Err(_) => return seen,
                Ok(n) => n,
            };
            reader.push(&buf[..n]);
            while let Some(m) = reader.next_host().unwrap() {
                let mut out = Vec::new();
                let go_on = match &m {
                    HostMessage::Hello { .. } => {
                        GuestMessage::Hello { version }.encode(&mut out);
                        true
                    }
                    other => serve(other.clone(), &mut out),
                };
                seen.push(m);
                if s.write_all(&out).is_err() || !go_on {
                    return seen;
                }
            }
        }
    });
    (dir, Dial::Socket(path), guest)
}

fn process(stdin: bool) -> Process {
    Process {
        args: vec!["cat".into()],
        env: vec!["A=1".into()],
        cwd: "/w".into(),
        user: User {
            uid: 1000,
            gid: 100,
            groups: vec![10],
        },
        tty: false,
        stdin,
    }
}

#[test]
fn a_process_runs_its_streams_cross_and_its_end_comes_back() {
    let (_dir, dial, guest) = fake_guest(agent::VERSION, |m, out| {
        match m {
            HostMessage::Exec { session, exec } => {
                assert_eq!(exec.args, ["cat"]);
                assert_eq!((exec.uid, exec.gid, exec.groups), (1000, 100, vec![10]));
                assert_eq!(exec.cwd, "/w");
                GuestMessage::Started { session }.encode(out);
            }
            HostMessage::Stdin { session, data } => {
                GuestMessage::StdinWritten { session }.encode(out);
                GuestMessage::Stdout { session, data }.encode(out);
            }
            HostMessage::CloseStdin { session } => {
                GuestMessage::Stderr {
                    session,
                    data: b"done\n".to_vec(),
                }
                .encode(out);
            }
            HostMessage::Signal { session, signal } => {
                GuestMessage::Exited {
                    session,
                    status: Status::Signaled(signal),
                }
                .encode(out);
            }
            _ => {}
        }
        true
    });
    let client = Client::connect(&dial).unwrap();
    let (in_r, in_w) = nix::unistd::pipe().unwrap();
    let (out_r, out_w) = nix::unistd::pipe().unwrap();
    let (err_r, err_w) = nix::unistd::pipe().unwrap();
    let spec = ExecSpec {
        process: process(true),
        privileged: false,
        stdio: Some([in_r.as_fd(), out_w.as_fd(), err_w.as_fd()]),
    };
    let mut execd = start(&client, &spec).unwrap();
    drop((in_r, out_w, err_w));
    assert!(isola_core::backend::Execd::take_terminal(&mut execd).is_none());
    let mut stdin = std::fs::File::from(in_w);
    stdin.write_all(b"hello\n").unwrap();
    let mut got = [0u8; 6];
    std::fs::File::from(out_r.try_clone().unwrap())
        .read_exact(&mut got)
        .unwrap();
    assert_eq!(&got, b"hello\n");
    drop(stdin);
    let mut err = [0u8; 5];
    std::fs::File::from(err_r).read_exact(&mut err).unwrap();
    assert_eq!(&err, b"done\n");
    let execd: Box<dyn isola_core::backend::Execd> = Box::new(execd);
    execd.signal(nix::sys::signal::Signal::SIGTERM).unwrap();
    // The "pidfd" is readable once it has ended.
    let mut fds = [nix::poll::PollFd::new(
        execd.pidfd(),
        nix::poll::PollFlags::POLLIN,
    )];
    nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(5000u16)).unwrap();
    assert!(fds[0].revents().is_some_and(|r| !r.is_empty()));
    assert_eq!(execd.wait().unwrap(), ExitStatus::Signaled(15));
    drop(client);
    let seen = guest.join().unwrap();
    assert!(
        seen.contains(&HostMessage::CloseStdin { session: 1 }),
        "{seen:?}"
    );
}

#[test]
fn another_version_is_refused_naming_both() {
    let (_dir, dial, guest) = fake_guest(agent::VERSION + 1, |_, _| true);
    let e = Client::connect(&dial).err().unwrap().to_string();
    assert!(
        e.contains(&format!("version {}", agent::VERSION + 1)),
        "{e}"
    );
    assert!(e.contains(&format!("version {}", agent::VERSION)), "{e}");
    guest.join().unwrap();
}

#[test]
fn a_signal_for_the_workload_names_session_zero() {
    let (_dir, dial, guest) = fake_guest(agent::VERSION, |_, _| true);
    let client = Client::connect(&dial).unwrap();
    client.signal_workload(15).unwrap();
    drop(client);
    let seen = guest.join().unwrap();
    assert!(
        seen.contains(&HostMessage::Signal {
            session: agent::WORKLOAD,
            signal: 15
        }),
        "{seen:?}"
    );
}

#[test]
fn a_guest_that_goes_away_ends_its_processes_and_refuses_more() {
    let (_dir, dial, guest) = fake_guest(agent::VERSION, |m, out| {
        if let HostMessage::Exec { session, .. } = m {
            GuestMessage::Started { session }.encode(out);
            // And then the guest ends.
            return false;
        }
        true
    });
    let client = Client::connect(&dial).unwrap();
    let (_null_r, null_w) = nix::unistd::pipe().unwrap();
    let spec = ExecSpec {
        process: process(false),
        privileged: false,
        stdio: Some([null_w.as_fd(), null_w.as_fd(), null_w.as_fd()]),
    };
    let execd: Box<dyn isola_core::backend::Execd> = Box::new(start(&client, &spec).unwrap());
    assert_eq!(execd.wait().unwrap(), ExitStatus::Signaled(9));
    guest.join().unwrap();
    assert!(start(&client, &spec).is_err());
    assert!(!client.is_open());
}

#[test]
fn a_hostile_guest_cannot_make_the_host_allocate_or_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let guest = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut hello = Vec::new();
        GuestMessage::Hello {
            version: agent::VERSION,
        }
        .encode(&mut hello);
        s.write_all(&hello).unwrap();
        // A frame claiming 4 GiB.
        let _ = s.write_all(&[0xff, 0xff, 0xff, 0xff, 22, 0, 0, 0, 1]);
        let mut sink = Vec::new();
        let _ = s.read_to_end(&mut sink);
    });
    let client = Client::connect(&Dial::Socket(path)).unwrap();
    for _ in 0..100 {
        if !client.is_open() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(!client.is_open());
    drop(client);
    guest.join().unwrap();
}

#[test]
fn a_process_whose_handle_is_dropped_unwaited_is_killed() {
    let (_dir, dial, guest) = fake_guest(agent::VERSION, |m, out| match m {
        HostMessage::Exec { session, .. } => {
            GuestMessage::Started { session }.encode(out);
            true
        }
        // The kill ends the fake guest's conversation.
        HostMessage::Signal { .. } => false,
        _ => true,
    });
    let client = Client::connect(&dial).unwrap();
    let (_r, w) = nix::unistd::pipe().unwrap();
    let spec = ExecSpec {
        process: process(false),
        privileged: false,
        stdio: Some([w.as_fd(), w.as_fd(), w.as_fd()]),
    };
    drop(start(&client, &spec).unwrap());
    let seen = guest.join().unwrap();
    assert_eq!(
        seen.last(),
        Some(&HostMessage::Signal {
            session: 1,
            signal: 9
        })
    );
}

#[test]
fn output_whose_reader_is_gone_gives_the_process_sigpipe() {
    let (_dir, dial, guest) = fake_guest(agent::VERSION, |m, out| match m {
        HostMessage::Exec { session, .. } => {
            GuestMessage::Started { session }.encode(out);
            GuestMessage::Stdout {
                session,
                data: b"y\n".to_vec(),
            }
            .encode(out);
            true
        }
        HostMessage::Signal { session, signal } => {
            GuestMessage::Exited {
                session,
                status: Status::Signaled(signal),
            }
            .encode(out);
            false
        }
        _ => true,
    });
    let client = Client::connect(&dial).unwrap();
    let (out_r, out_w) = nix::unistd::pipe().unwrap();
    drop(out_r);
    let spec = ExecSpec {
        process: process(false),
        privileged: false,
        stdio: Some([out_w.as_fd(), out_w.as_fd(), out_w.as_fd()]),
    };
    let execd: Box<dyn isola_core::backend::Execd> = Box::new(start(&client, &spec).unwrap());
    assert_eq!(execd.wait().unwrap(), ExitStatus::Signaled(libc::SIGPIPE));
    guest.join().unwrap();
}
