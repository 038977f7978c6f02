//! Requests built and replies parsed without privilege; then, as root, a
//! bridge and a veth pair into a fresh network namespace, end to end.

use std::error::Error;
use std::os::fd::{AsFd, OwnedFd};

use netlink_packet_route::route::RouteNextHop;
use nix::libc;

use super::*;

const IFLA_ADDRESS: u16 = 1;

fn request(msg: RouteNetlinkMessage, flags: u16, seq: u32) -> NetlinkMessage<RouteNetlinkMessage> {
    let mut buf = Vec::new();
    encode(&mut buf, msg, flags, seq);
    NetlinkMessage::deserialize(&buf).expect("our request parses")
}

/// A reply datagram as the kernel would send it.
fn reply(msgs: &[(RouteNetlinkMessage, u16, u32)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (msg, flags, seq) in msgs {
        let mut header = NetlinkHeader::default();
        header.flags = *flags;
        header.sequence_number = *seq;
        let mut msg = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg.clone()));
        msg.finalize();
        let start = out.len();
        out.resize(start + align4(msg.buffer_len()), 0);
        msg.serialize(&mut out[start..]);
    }
    out
}

/// An NLMSG_ERROR (or an ack, for 0) to request `seq`, capped, with the
/// kernel's text when given.
fn error_reply(seq: u32, errno: i32, text: Option<&str>) -> Vec<u8> {
    let mut body = (-errno).to_ne_bytes().to_vec();
    body.extend_from_slice(&[0; HEADER_LEN]);
    let mut flags = NLM_F_CAPPED;
    if let Some(text) = text {
        flags |= NLM_F_ACK_TLVS;
        let value_len = text.len() + 1;
        body.extend_from_slice(&((4 + value_len) as u16).to_ne_bytes());
        body.extend_from_slice(&NLMSGERR_ATTR_MSG.to_ne_bytes());
        body.extend_from_slice(text.as_bytes());
        body.resize(align4(body.len() + 1), 0);
    }
    kernel_message(NLMSG_ERROR, flags, seq, &body)
}

fn kernel_message(kind: u16, flags: u16, seq: u32, body: &[u8]) -> Vec<u8> {
    let mut out = ((HEADER_LEN + body.len()) as u32).to_ne_bytes().to_vec();
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(&flags.to_ne_bytes());
    out.extend_from_slice(&seq.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes());
    out.extend_from_slice(body);
    out
}

fn link_reply(index: u32, name: &str, mtu: u32) -> RouteNetlinkMessage {
    let mut msg = link_request(index);
    msg.attributes.push(LinkAttribute::IfName(name.into()));
    msg.attributes.push(LinkAttribute::Mtu(mtu));
    RouteNetlinkMessage::NewLink(msg)
}

fn collect(data: &[u8], seq: u32) -> (Result<Walk, Fault>, Vec<(u32, String)>) {
    let mut seen = Vec::new();
    let walked = walk(data, seq, &mut |kind, body| {
        let index = link_header(kind, body)?.index;
        let name =
            attribute(&body[IFINFO_LEN..], IFLA_IFNAME)?.ok_or(Fault::Malformed("no name"))?;
        seen.push((index, c_string(name)?.to_owned()));
        Ok(())
    });
    (walked, seen)
}

#[test]
fn veth_request_carries_its_peer_into_the_namespace() {
    let mac = [0x02, 0x42, 0xac, 0x11, 0x00, 0x02];
    let got = request(
        RouteNetlinkMessage::NewLink(veth_request("isola1a2b3c", 7, "eth0", 42, mac, 1400)),
        NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        9,
    );
    assert_eq!(
        got.header.flags,
        NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL
    );
    assert_eq!(got.header.sequence_number, 9);
    let NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(link)) = got.payload else {
        panic!("not a new link: {got:?}");
    };
    assert!(link.header.flags.contains(LinkFlags::Up));
    assert!(link.header.change_mask.contains(LinkFlags::Up));
    assert!(link
        .attributes
        .contains(&LinkAttribute::IfName("isola1a2b3c".into())));
    assert!(link.attributes.contains(&LinkAttribute::Controller(7)));
    assert!(link.attributes.contains(&LinkAttribute::Mtu(1400)));
    let peer = link
        .attributes
        .iter()
        .find_map(|a| match a {
            LinkAttribute::LinkInfo(infos) => infos.iter().find_map(|i| match i {
                LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))) => Some(peer.clone()),
                _ => None,
            }),
            _ => None,
        })
        .expect("the peer's info");
    assert_eq!(
        peer.attributes,
        vec![
            LinkAttribute::IfName("eth0".into()),
            LinkAttribute::Address(mac.to_vec()),
            LinkAttribute::Mtu(1400),
            LinkAttribute::NetNsFd(42),
        ]
    );
    assert!(peer.header.flags.is_empty(), "the peer starts down");
}

#[test]
fn bridge_request_fixes_its_mac() {
    let mac = random_mac();
    let link = bridge_request("isolabr0", None, mac);
    assert!(link
        .attributes
        .contains(&LinkAttribute::Address(mac.to_vec())));
    assert!(link
        .attributes
        .contains(&LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
            InfoKind::Bridge
        )])));
    assert!(!link
        .attributes
        .iter()
        .any(|a| matches!(a, LinkAttribute::Mtu(_))));
    assert!(link.header.flags.is_empty(), "a bridge starts down");
    assert!(bridge_request("isolabr0", Some(9000), mac)
        .attributes
        .contains(&LinkAttribute::Mtu(9000)));
}

#[test]
fn random_macs_are_local_unicast_and_differ() {
    let (a, b) = (random_mac(), random_mac());
    assert_eq!(a[0] & 0x03, 0x02, "locally administered, unicast: {a:02x?}");
    assert_ne!(a, b);
}

#[test]
fn addresses_carry_their_subnets_broadcast() {
    let broadcast = |prefix| {
        address_request(3, Ipv4Addr::new(10, 88, 1, 2), prefix)
            .attributes
            .into_iter()
            .find_map(|a| match a {
                AddressAttribute::Broadcast(b) => Some(b),
                _ => None,
            })
    };
    assert_eq!(broadcast(24), Some(Ipv4Addr::new(10, 88, 1, 255)));
    assert_eq!(broadcast(16), Some(Ipv4Addr::new(10, 88, 255, 255)));
    assert_eq!(broadcast(0), Some(Ipv4Addr::BROADCAST));
    assert_eq!(broadcast(31), None);
    assert_eq!(broadcast(32), None);
    let msg = address_request(3, Ipv4Addr::new(10, 88, 1, 2), 24);
    assert_eq!((msg.header.index, msg.header.prefix_len), (3, 24));
    assert!(msg
        .attributes
        .contains(&AddressAttribute::Local(Ipv4Addr::new(10, 88, 1, 2).into())));
}

#[test]
fn default_route_is_main_table_unicast_via_the_gateway() {
    let gateway = Ipv4Addr::new(10, 88, 0, 1);
    let msg = default_route_request(gateway);
    assert_eq!(msg.header.table, RouteHeader::RT_TABLE_MAIN);
    assert_eq!(msg.header.kind, RouteType::Unicast);
    assert_eq!(msg.header.destination_prefix_length, 0);
    assert_eq!(
        msg.attributes,
        vec![RouteAttribute::Gateway(RouteAddress::Inet(gateway))]
    );
}

#[test]
fn a_dump_is_read_to_its_done_skipping_other_requests() {
    let mut data = reply(&[
        (link_reply(1, "stale", 1500), NLM_F_MULTIPART, 6),
        (link_reply(1, "lo", 65536), NLM_F_MULTIPART, 7),
        (link_reply(4, "eth0", 1400), NLM_F_MULTIPART, 7),
    ]);
    let (walked, seen) = collect(&data, 7);
    assert_eq!(
        walked,
        Ok(Walk {
            done: false,
            interrupted: false
        })
    );
    assert_eq!(seen, vec![(1, "lo".into()), (4, "eth0".into())]);

    data.extend(kernel_message(
        NLMSG_DONE,
        NLM_F_MULTIPART,
        6,
        &0i32.to_ne_bytes(),
    ));
    assert_eq!(
        collect(&data, 7).0,
        Ok(Walk {
            done: false,
            interrupted: false
        }),
        "another's end"
    );
    data.extend(kernel_message(
        NLMSG_DONE,
        NLM_F_MULTIPART,
        7,
        &0i32.to_ne_bytes(),
    ));
    assert_eq!(
        collect(&data, 7).0,
        Ok(Walk {
            done: true,
            interrupted: false
        })
    );
}

#[test]
fn a_dump_that_raced_a_change_says_so() {
    let data = reply(&[(
        link_reply(1, "lo", 65536),
        NLM_F_MULTIPART | NLM_F_DUMP_INTR,
        3,
    )]);
    assert_eq!(
        collect(&data, 3).0,
        Ok(Walk {
            done: false,
            interrupted: true
        })
    );
}

#[test]
fn a_dump_that_failed_midway_is_an_error() {
    let data = kernel_message(
        NLMSG_DONE,
        NLM_F_MULTIPART,
        3,
        &(-libc::EINTR).to_ne_bytes(),
    );
    assert_eq!(
        collect(&data, 3).0,
        Err(Fault::Kernel {
            errno: libc::EINTR,
            detail: None
        })
    );
}

#[test]
fn a_single_reply_is_complete() {
    let data = reply(&[(link_reply(5, "isolabr0", 1500), 0, 2)]);
    let mut mtu = None;
    let walked = walk(&data, 2, &mut |kind, body| {
        link_header(kind, body)?;
        mtu = attribute(&body[IFINFO_LEN..], IFLA_MTU)?
            .map(u32_of)
            .transpose()?;
        Ok(())
    });
    assert_eq!(
        walked,
        Ok(Walk {
            done: true,
            interrupted: false
        })
    );
    assert_eq!(mtu, Some(1500));
}

#[test]
fn acks_end_a_request_and_errors_carry_the_kernels_text() {
    let skip = &mut |_, _: &[u8]| Err(Fault::Malformed("a reply where an ack was due"));
    assert_eq!(
        walk(&error_reply(4, 0, None), 4, skip),
        Ok(Walk {
            done: true,
            interrupted: false
        })
    );
    assert_eq!(
        walk(&error_reply(3, libc::EEXIST, None), 4, skip),
        Ok(Walk::default()),
        "another's"
    );
    assert_eq!(
        walk(
            &error_reply(4, libc::EEXIST, Some("Link already exists")),
            4,
            skip
        ),
        Err(Fault::Kernel {
            errno: libc::EEXIST,
            detail: Some("Link already exists".into())
        })
    );
    assert_eq!(
        walk(&error_reply(4, libc::ENODEV, None), 4, skip),
        Err(Fault::Kernel {
            errno: libc::ENODEV,
            detail: None
        })
    );
}

#[test]
fn cut_replies_are_errors_not_panics() {
    let data = reply(&[(link_reply(1, "lo", 65536), 0, 1)]);
    for len in [1, HEADER_LEN - 1, HEADER_LEN + 3, data.len() - 1] {
        assert!(collect(&data[..len], 1).0.is_err(), "cut at {len}");
    }
    let short_link = kernel_message(RTM_NEWLINK, 0, 1, &[0; 8]);
    assert!(collect(&short_link, 1).0.is_err());
}

fn route_reply(msg: RouteMessage) -> Result<Option<Route>, Fault> {
    let data = reply(&[(RouteNetlinkMessage::NewRoute(msg), NLM_F_MULTIPART, 1)]);
    let mut routes = Vec::new();
    walk(&data, 1, &mut |kind, body| {
        routes.push(parse_route(kind, body)?);
        Ok(())
    })?;
    Ok(routes.into_iter().next().flatten())
}

fn route(dst: Ipv4Addr, prefix: u8, table: u8) -> RouteMessage {
    let mut msg = RouteMessage::default();
    msg.header.address_family = AddressFamily::Inet;
    msg.header.destination_prefix_length = prefix;
    msg.header.table = table;
    msg.header.kind = RouteType::Unicast;
    if prefix > 0 {
        msg.attributes
            .push(RouteAttribute::Destination(RouteAddress::Inet(dst)));
    }
    msg
}

#[test]
fn routes_of_the_main_table_are_read_with_their_link() {
    let mut connected = route(Ipv4Addr::new(10, 88, 0, 0), 16, RouteHeader::RT_TABLE_MAIN);
    connected.attributes.push(RouteAttribute::Oif(3));
    assert_eq!(
        route_reply(connected),
        Ok(Some(Route {
            destination: Ipv4Addr::new(10, 88, 0, 0),
            prefix: 16,
            oif: Some(3),
            gateway: None
        }))
    );

    let gateway = Ipv4Addr::new(192, 168, 1, 1);
    let mut default = route(Ipv4Addr::UNSPECIFIED, 0, RouteHeader::RT_TABLE_MAIN);
    default
        .attributes
        .push(RouteAttribute::Gateway(RouteAddress::Inet(gateway)));
    default.attributes.push(RouteAttribute::Oif(2));
    default.attributes.push(RouteAttribute::Table(254));
    assert_eq!(
        route_reply(default),
        Ok(Some(Route {
            destination: Ipv4Addr::UNSPECIFIED,
            prefix: 0,
            oif: Some(2),
            gateway: Some(gateway)
        }))
    );

    let local = route(Ipv4Addr::new(10, 88, 0, 1), 32, 255);
    assert_eq!(route_reply(local), Ok(None), "the local table's");
    let mut big_table = route(Ipv4Addr::new(10, 0, 0, 0), 8, 252);
    big_table.attributes.push(RouteAttribute::Table(1000));
    assert_eq!(
        route_reply(big_table),
        Ok(None),
        "a table past 255, named by RTA_TABLE"
    );
}

#[test]
fn a_multipath_route_goes_out_its_first_hop() {
    let hop = |index| {
        let mut hop = RouteNextHop::default();
        hop.interface_index = index;
        hop
    };
    let mut msg = route(Ipv4Addr::UNSPECIFIED, 0, RouteHeader::RT_TABLE_MAIN);
    msg.attributes
        .push(RouteAttribute::MultiPath(vec![hop(5), hop(6)]));
    assert_eq!(route_reply(msg).map(|r| r.and_then(|r| r.oif)), Ok(Some(5)));
}

#[test]
fn kernel_errors_name_the_operation_and_the_link() {
    let e = NetlinkError::Kernel {
        doing: "creating veth isola1a2b3c".into(),
        detail: None,
        source: io::Error::from_raw_os_error(libc::EEXIST),
    };
    let chain = format!("{e}: {}", e.source().expect("a cause"));
    assert_eq!(
        chain,
        "creating veth isola1a2b3c: File exists (os error 17)"
    );
    assert!(e.is_exists() && !e.is_not_found());

    let e = NetlinkError::Kernel {
        doing: "bringing up link 9".into(),
        detail: Some("Device not found".into()),
        source: io::Error::from_raw_os_error(libc::ENODEV),
    };
    assert_eq!(
        e.to_string(),
        "bringing up link 9 (the kernel says: Device not found)"
    );
    assert!(e.is_not_found() && !e.is_exists());
}

#[test]
fn open_in_refuses_what_is_not_a_network_namespace() {
    let not_netns = std::fs::File::open("/dev/null").expect("/dev/null");
    let refused = Netlink::open_in(not_netns.as_fd()).err();
    assert!(
        matches!(
            refused,
            Some(NetlinkError::EnterNetns(nix::errno::Errno::EINVAL))
        ),
        "{refused:?}"
    );
}

// What follows needs root: real links, namespaces and routes.

/// Test links' names: unique to this process and test, at most 15 bytes.
fn test_name(suffix: &str) -> String {
    let name = format!("isolat{:x}{suffix}", std::process::id());
    assert!(name.len() <= 15, "{name} is too long for a link name");
    name
}

/// Deletes the named links however the test ends; deleting a veth's host
/// end takes its peer too.
struct Cleanup(Vec<String>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let Ok(nl) = Netlink::open() else { return };
        for name in &self.0 {
            if let Ok(Some(index)) = nl.link_index(name) {
                let _ = nl.delete_link(index);
            }
        }
    }
}

/// A new network namespace, made on a thread of its own so the test's
/// stays where it is; it lives as long as the fd.
fn fresh_netns() -> OwnedFd {
    std::thread::spawn(|| {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare(CLONE_NEWNET)");
        OwnedFd::from(
            std::fs::File::open("/proc/thread-self/ns/net").expect("opening the new netns"),
        )
    })
    .join()
    .expect("the netns thread")
}

fn this_threads_netns() -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/thread-self/ns/net")
        .expect("stat of our netns")
        .ino()
}

fn mac_of(nl: &Netlink, index: u32) -> Vec<u8> {
    let mut mac = Vec::new();
    nl.exchange(
        RouteNetlinkMessage::GetLink(link_request(index)),
        0,
        &mut |kind, body| {
            link_header(kind, body)?;
            mac = attribute(&body[IFINFO_LEN..], IFLA_ADDRESS)?
                .unwrap_or_default()
                .to_vec();
            Ok(())
        },
    )
    .map_err(|e| fail(e, || "reading a MAC".into()))
    .expect("the link's MAC");
    mac
}

fn names(links: &[(u32, String)]) -> Vec<&str> {
    let mut names: Vec<&str> = links.iter().map(|(_, n)| n.as_str()).collect();
    names.sort();
    names
}

#[test]
fn a_veth_pair_joins_a_bridge_and_a_fresh_namespace() {
    if !isola_test_support::root_user() {
        return;
    }
    let (bridge, host) = (test_name("b"), test_name("h"));
    // Declared before the cleanup so the links go first, then the netns.
    let netns = fresh_netns();
    let _cleanup = Cleanup(vec![host.clone(), bridge.clone()]);
    // 198.18.0.0/15 is set aside for benchmarks (RFC 2544): no real network.
    let third = (std::process::id() % 256) as u8;
    let (gateway, addr) = (
        Ipv4Addr::new(198, 18, third, 1),
        Ipv4Addr::new(198, 18, third, 2),
    );
    let subnet = Ipv4Addr::new(198, 18, third, 0);

    let nl = Netlink::open().expect("a netlink socket");
    let br = nl
        .create_bridge(&bridge, Some(1400))
        .expect("creating the bridge");
    assert!(nl.links().expect("links").contains(&(br, bridge.clone())));
    assert_eq!(nl.mtu(br).expect("the bridge's MTU"), 1400);
    let bridge_mac = mac_of(&nl, br);

    let mac = [0x02, 0x42, 0xc6, 0x12, third, 0x02];
    nl.create_veth(&host, br, "eth0", netns.as_fd(), mac, 1400)
        .expect("creating the veth pair");
    let h = nl
        .link_index(&host)
        .expect("looking up the host end")
        .expect("the host end");
    assert_eq!(nl.mtu(h).expect("the host end's MTU"), 1400);
    assert_eq!(
        mac_of(&nl, br),
        bridge_mac,
        "a port joining leaves the bridge's MAC"
    );
    nl.add_address(br, gateway, 24)
        .expect("the bridge's address");
    nl.set_up(br).expect("bringing the bridge up");

    let before = this_threads_netns();
    let inside = Netlink::open_in(netns.as_fd()).expect("a socket in the netns");
    assert_eq!(
        this_threads_netns(),
        before,
        "open_in leaves the caller's thread where it was"
    );
    let links = inside.links().expect("links inside");
    assert_eq!(names(&links), ["eth0", "lo"]);
    let eth0 = inside
        .link_index("eth0")
        .expect("looking up eth0")
        .expect("eth0");
    assert_eq!(inside.mtu(eth0).expect("eth0's MTU"), 1400);
    assert_eq!(mac_of(&inside, eth0), mac);
    assert_eq!(
        inside
            .link_index(&host)
            .expect("looking up the host end inside"),
        None
    );

    inside.add_address(eth0, addr, 24).expect("eth0's address");
    inside.set_up(eth0).expect("bringing eth0 up");
    inside
        .add_default_route(gateway)
        .expect("the default route");
    let mut routes = inside.ipv4_routes().expect("routes inside");
    routes.sort_by_key(|r| r.prefix);
    assert_eq!(
        routes,
        [
            Route {
                destination: Ipv4Addr::UNSPECIFIED,
                prefix: 0,
                oif: Some(eth0),
                gateway: Some(gateway)
            },
            Route {
                destination: subnet,
                prefix: 24,
                oif: Some(eth0),
                gateway: None
            },
        ]
    );
    let outside = nl.ipv4_routes().expect("routes outside");
    assert!(outside.contains(&Route {
        destination: subnet,
        prefix: 24,
        oif: Some(br),
        gateway: None
    }));
    assert!(
        !outside.iter().any(|r| r.gateway == Some(gateway)),
        "the netns's default stays inside"
    );

    nl.delete_link(h).expect("deleting the host end");
    assert_eq!(nl.link_index(&host).expect("looking up the host end"), None);
    assert_eq!(
        names(&inside.links().expect("links inside")),
        ["lo"],
        "the peer went with it"
    );
    assert_eq!(inside.ipv4_routes().expect("routes inside"), []);
    nl.delete_link(br).expect("deleting the bridge");
    let prefix = test_name("");
    assert!(!nl
        .links()
        .expect("links")
        .iter()
        .any(|(_, n)| n.starts_with(&prefix)));
    assert!(!nl
        .ipv4_routes()
        .expect("routes")
        .iter()
        .any(|r| r.oif == Some(br)));
}

#[test]
fn kernel_refusals_are_typed_and_name_the_link() {
    if !isola_test_support::root_user() {
        return;
    }
    let bridge = test_name("e");
    let _cleanup = Cleanup(vec![bridge.clone()]);
    let nl = Netlink::open().expect("a netlink socket");
    let br = nl
        .create_bridge(&bridge, None)
        .expect("creating the bridge");

    let again = nl
        .create_bridge(&bridge, None)
        .expect_err("a second bridge of the same name");
    assert!(again.is_exists(), "{again:?}");
    assert!(
        again
            .to_string()
            .starts_with(&format!("creating bridge {bridge}")),
        "{again}"
    );
    assert_eq!(
        again.source().map(|s| s.to_string()),
        Some("File exists (os error 17)".into())
    );

    let missing = nl
        .links()
        .expect("links")
        .iter()
        .map(|(i, _)| *i)
        .max()
        .unwrap_or(0)
        + 1000;
    let gone = nl
        .delete_link(missing)
        .expect_err("deleting a link that is not there");
    assert!(gone.is_not_found(), "{gone:?}");
    assert!(
        gone.to_string()
            .starts_with(&format!("deleting link {missing}")),
        "{gone}"
    );
    assert_eq!(nl.link_index("isolat-none").expect("looking up"), None);

    // The kernel's own text comes along when it gives one.
    let long = nl
        .create_bridge("isolat-far-too-long", None)
        .expect_err("a 19-byte name");
    assert!(
        matches!(
            &long,
            NetlinkError::Kernel {
                detail: Some(_),
                ..
            }
        ),
        "{long:?}"
    );

    let dup = nl
        .set_up(br)
        .and_then(|()| nl.add_address(br, Ipv4Addr::new(198, 19, 255, 1), 24));
    dup.expect("an address on the bridge");
    let twice = nl
        .add_address(br, Ipv4Addr::new(198, 19, 255, 1), 24)
        .expect_err("the same address twice");
    assert!(twice.is_exists(), "{twice:?}");
    assert!(
        twice.to_string().contains(&format!("link {br} ({bridge})")),
        "named by index and name: {twice}"
    );
    nl.delete_link(br).expect("deleting the bridge");
}
