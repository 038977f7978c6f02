//! The host side of a sandbox's network over one rtnetlink socket, without
//! an async runtime: bridges, veth pairs into a sandbox's namespace, links'
//! state, addresses and routes.

use std::cell::{Cell, RefCell};
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};

use netlink_packet_core::{
    NetlinkBuffer, NetlinkHeader, NetlinkMessage, NetlinkPayload, NlaBuffer, NlasIterator,
    NLA_HEADER_SIZE, NLMSG_DONE, NLMSG_ERROR, NLMSG_NOOP, NLMSG_OVERRUN, NLM_F_ACK, NLM_F_ACK_TLVS,
    NLM_F_CAPPED, NLM_F_CREATE, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_EXCL, NLM_F_MULTIPART,
    NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkHeader, LinkInfo, LinkMessage,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket};
use nix::libc;
use nix::sched::{sched_getaffinity, sched_getcpu, sched_setaffinity, CpuSet};
use nix::unistd::Pid;

// From <linux/if_link.h>, <linux/rtnetlink.h> and <linux/netlink.h>: the
// few attributes read back, parsed in place rather than into the crate's
// owned types (a link's stats alone are dozens of allocations).
const IFLA_IFNAME: u16 = 3;
const IFLA_MTU: u16 = 4;
const RTM_NEWLINK: u16 = 16;
const RTM_NEWROUTE: u16 = 24;
const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTA_MULTIPATH: u16 = 9;
const RTA_TABLE: u16 = 15;
const NLMSGERR_ATTR_MSG: u16 = 1;
const HEADER_LEN: usize = 16;
/// struct ifinfomsg and struct rtmsg, before their attributes.
const IFINFO_LEN: usize = 16;
const RTMSG_LEN: usize = 12;

/// Dumps are cut by the kernel to at most 32 KiB a datagram (netlink_dump
/// caps its allocation there), and single replies are smaller.
const BUFFER: usize = 32 * 1024;

/// A dump that raced a change (NLM_F_DUMP_INTR) is taken again, this often.
const DUMP_TRIES: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    #[error("opening a netlink route socket")]
    Open(#[source] io::Error),
    #[error("entering a network namespace to open a netlink socket there")]
    EnterNetns(#[source] nix::errno::Errno),
    /// The kernel refused: `doing` names the operation and the link, the
    /// source is the errno, `detail` the kernel's extended-ack text.
    #[error("{doing}{}", said(.detail))]
    Kernel {
        doing: String,
        detail: Option<String>,
        #[source]
        source: io::Error,
    },
    #[error("{doing}: talking to the kernel")]
    Io {
        doing: String,
        #[source]
        source: io::Error,
    },
    #[error("{doing}: the kernel's reply is malformed: {why}")]
    Reply { doing: String, why: &'static str },
}

fn said(detail: &Option<String>) -> String {
    detail
        .as_ref()
        .map(|d| format!(" (the kernel says: {d})"))
        .unwrap_or_default()
}

impl NetlinkError {
    /// The errno the kernel answered with, if it refused.
    pub fn errno(&self) -> Option<i32> {
        match self {
            NetlinkError::Kernel { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }

    /// EEXIST: the link, address or route is already there.
    pub fn is_exists(&self) -> bool {
        self.errno() == Some(libc::EEXIST)
    }

    /// ENODEV: no such link.
    pub fn is_not_found(&self) -> bool {
        self.errno() == Some(libc::ENODEV)
    }
}

/// An IPv4 route of the main table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub destination: Ipv4Addr,
    pub prefix: u8,
    /// The output link; a multipath route's first hop's.
    pub oif: Option<u32>,
    pub gateway: Option<Ipv4Addr>,
}

/// Why an exchange failed, before the operation is named.
#[derive(Debug, PartialEq)]
enum Fault {
    Kernel { errno: i32, detail: Option<String> },
    Malformed(&'static str),
}

enum Failure {
    Io(io::Error),
    Fault(Fault),
}

/// Reads one message of a reply: its type and its body.
type Each<'a> = dyn FnMut(u16, &[u8]) -> Result<(), Fault> + 'a;

/// What one datagram of a reply said.
#[derive(Debug, Default, PartialEq)]
struct Walk {
    done: bool,
    interrupted: bool,
}

/// One rtnetlink socket in the namespace it was made in; requests are
/// answered one at a time, in order (so it is Send, not Sync).
pub struct Netlink {
    socket: Socket,
    seq: Cell<u32>,
    /// Requests and replies, reused: one allocation for the socket's life.
    buf: RefCell<Vec<u8>>,
}

impl Netlink {
    /// A socket in the caller's network namespace.
    pub fn open() -> Result<Netlink, NetlinkError> {
        let socket = Socket::new(NETLINK_ROUTE).map_err(NetlinkError::Open)?;
        // The kernel's text for a refusal; acks without the request echoed.
        socket.set_ext_ack(true).map_err(NetlinkError::Open)?;
        socket.set_cap_ack(true).map_err(NetlinkError::Open)?;
        // Lets the route dump ask for the main table only. Kernels before
        // 4.20 lack it and dump everything, which ipv4_routes filters anyway.
        let _ = socket.set_netlink_get_strict_chk(true);
        Ok(Netlink {
            socket,
            seq: Cell::new(0),
            buf: RefCell::new(Vec::with_capacity(BUFFER)),
        })
    }

    /// A socket in the network namespace `netns` (an fd of /proc/PID/ns/net).
    /// A socket stays in the namespace it was made in, so a short-lived
    /// thread enters it and makes one: the caller's thread never moves.
    pub fn open_in(netns: BorrowedFd) -> Result<Netlink, NetlinkError> {
        std::thread::scope(|scope| {
            // The maker starts on this CPU, which the join below frees at
            // once; placed on another it would wait behind whatever runs
            // there, milliseconds on a busy host.
            let restore = pin_to_this_cpu();
            let maker = std::thread::Builder::new()
                .name("isola-netns".into())
                .spawn_scoped(scope, || {
                    nix::sched::setns(netns, nix::sched::CloneFlags::CLONE_NEWNET)
                        .map_err(NetlinkError::EnterNetns)?;
                    Netlink::open()
                });
            if let Some(mask) = restore {
                let _ = sched_setaffinity(Pid::from_raw(0), &mask);
            }
            maker
                .map_err(NetlinkError::Open)?
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    /// The index of the link `name`, or None if there is none.
    pub fn link_index(&self, name: &str) -> Result<Option<u32>, NetlinkError> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.into()));
        match self.get_link(msg, &mut |_| Ok(())) {
            Err(Failure::Fault(Fault::Kernel {
                errno: libc::ENODEV,
                ..
            })) => Ok(None),
            got => got
                .map(Some)
                .map_err(|e| fail(e, || format!("looking up link {name}"))),
        }
    }

    /// Every link: index and name.
    pub fn links(&self) -> Result<Vec<(u32, String)>, NetlinkError> {
        let msg = RouteNetlinkMessage::GetLink(LinkMessage::default());
        self.dump(
            msg,
            || "listing links".into(),
            |kind, body, out| {
                let index = link_header(kind, body)?.index;
                let name = attribute(&body[IFINFO_LEN..], IFLA_IFNAME)?
                    .ok_or(Fault::Malformed("a link without a name"))?;
                out.push((index, c_string(name)?.to_owned()));
                Ok(())
            },
        )
    }

    /// A bridge, created down. Its MAC is fixed now: a bridge left to pick
    /// takes its lowest port's, and would change under the sandboxes'
    /// ARP caches as ports come and go.
    pub fn create_bridge(&self, name: &str, mtu: Option<u32>) -> Result<u32, NetlinkError> {
        let msg = bridge_request(name, mtu, random_mac());
        let doing = || format!("creating bridge {name}");
        self.ack(
            RouteNetlinkMessage::NewLink(msg),
            NLM_F_CREATE | NLM_F_EXCL,
            doing,
        )?;
        self.link_index(name)?.ok_or_else(|| NetlinkError::Reply {
            doing: doing(),
            why: "the new bridge is not there",
        })
    }

    /// One request: a veth pair whose host end `host` is enslaved to
    /// `master` and up, and whose peer `peer` is created directly inside
    /// `peer_netns` (IFLA_NET_NS_FD in the peer's info) with `mac` and `mtu`.
    pub fn create_veth(
        &self,
        host: &str,
        master: u32,
        peer: &str,
        peer_netns: BorrowedFd,
        mac: [u8; 6],
        mtu: u32,
    ) -> Result<(), NetlinkError> {
        let msg = veth_request(host, master, peer, peer_netns.as_raw_fd(), mac, mtu);
        self.ack(
            RouteNetlinkMessage::NewLink(msg),
            NLM_F_CREATE | NLM_F_EXCL,
            || format!("creating veth {host} (peer {peer})"),
        )
    }

    pub fn set_master(&self, index: u32, master: u32) -> Result<(), NetlinkError> {
        let mut msg = link_request(index);
        msg.attributes.push(LinkAttribute::Controller(master));
        self.ack(RouteNetlinkMessage::SetLink(msg), 0, || {
            format!(
                "adding {} to bridge {}",
                self.label(index),
                self.label(master)
            )
        })
    }

    pub fn set_up(&self, index: u32) -> Result<(), NetlinkError> {
        let mut msg = link_request(index);
        msg.header.flags = LinkFlags::Up;
        msg.header.change_mask = LinkFlags::Up;
        self.ack(RouteNetlinkMessage::SetLink(msg), 0, || {
            format!("bringing up {}", self.label(index))
        })
    }

    pub fn set_mtu(&self, index: u32, mtu: u32) -> Result<(), NetlinkError> {
        let mut msg = link_request(index);
        msg.attributes.push(LinkAttribute::Mtu(mtu));
        self.ack(RouteNetlinkMessage::SetLink(msg), 0, || {
            format!("setting the MTU of {} to {mtu}", self.label(index))
        })
    }

    /// `addr/prefix` on the link, with its subnet's broadcast address.
    pub fn add_address(&self, index: u32, addr: Ipv4Addr, prefix: u8) -> Result<(), NetlinkError> {
        let msg = RouteNetlinkMessage::NewAddress(address_request(index, addr, prefix));
        self.ack(msg, NLM_F_CREATE | NLM_F_EXCL, || {
            format!("adding address {addr}/{prefix} to {}", self.label(index))
        })
    }

    pub fn add_default_route(&self, gateway: Ipv4Addr) -> Result<(), NetlinkError> {
        let msg = RouteNetlinkMessage::NewRoute(default_route_request(gateway));
        self.ack(msg, NLM_F_CREATE | NLM_F_EXCL, || {
            format!("adding the default route via {gateway}")
        })
    }

    /// Deleting either end of a veth pair deletes both.
    pub fn delete_link(&self, index: u32) -> Result<(), NetlinkError> {
        self.ack(RouteNetlinkMessage::DelLink(link_request(index)), 0, || {
            format!("deleting {}", self.label(index))
        })
    }

    /// IPv4 routes of the main table: destination, prefix length, output
    /// link (for overlap checks and for the uplink's MTU).
    pub fn ipv4_routes(&self) -> Result<Vec<Route>, NetlinkError> {
        let mut msg = RouteMessage::default();
        msg.header.address_family = AddressFamily::Inet;
        // Only honoured under strict checking; parse_route filters too.
        msg.header.table = RouteHeader::RT_TABLE_MAIN;
        let msg = RouteNetlinkMessage::GetRoute(msg);
        self.dump(
            msg,
            || "listing IPv4 routes".into(),
            |kind, body, out| {
                out.extend(parse_route(kind, body)?);
                Ok(())
            },
        )
    }

    pub fn mtu(&self, index: u32) -> Result<u32, NetlinkError> {
        let mut mtu = None;
        let doing = || format!("reading the MTU of {}", self.label(index));
        self.get_link(link_request(index), &mut |attributes| {
            mtu = attribute(attributes, IFLA_MTU)?.map(u32_of).transpose()?;
            Ok(())
        })
        .map_err(|e| fail(e, doing))?;
        mtu.ok_or_else(|| NetlinkError::Reply {
            doing: doing(),
            why: "the link has no MTU attribute",
        })
    }

    /// "link 7 (isolabr0)", or "link 7" when its name cannot be had: for
    /// errors, where an index alone would tell a person nothing.
    fn label(&self, index: u32) -> String {
        let mut name = None;
        let _ = self.get_link(link_request(index), &mut |attributes| {
            if let Some(raw) = attribute(attributes, IFLA_IFNAME)? {
                name = Some(c_string(raw)?.to_owned());
            }
            Ok(())
        });
        match name {
            Some(name) => format!("link {index} ({name})"),
            None => format!("link {index}"),
        }
    }

    /// The link `msg` names, by index or by name: its index, with its
    /// attributes handed to `read`.
    fn get_link(
        &self,
        msg: LinkMessage,
        read: &mut dyn FnMut(&[u8]) -> Result<(), Fault>,
    ) -> Result<u32, Failure> {
        let mut index = None;
        self.exchange(RouteNetlinkMessage::GetLink(msg), 0, &mut |kind, body| {
            index = Some(link_header(kind, body)?.index);
            read(&body[IFINFO_LEN..])
        })?;
        index.ok_or(Failure::Fault(Fault::Malformed("no link in the reply")))
    }

    /// A request answered by an ack alone.
    fn ack(
        &self,
        msg: RouteNetlinkMessage,
        flags: u16,
        doing: impl FnOnce() -> String,
    ) -> Result<(), NetlinkError> {
        let unexpected = &mut |_, _: &[u8]| Err(Fault::Malformed("a reply where an ack was due"));
        match self.exchange(msg, NLM_F_ACK | flags, unexpected) {
            Ok(_) => Ok(()),
            Err(e) => Err(fail(e, doing)),
        }
    }

    /// A dump, each message parsed by `each` into the list; taken again
    /// when a change raced it, so what it lists was true at one moment.
    fn dump<T, F>(
        &self,
        msg: RouteNetlinkMessage,
        doing: impl Fn() -> String,
        mut each: F,
    ) -> Result<Vec<T>, NetlinkError>
    where
        F: FnMut(u16, &[u8], &mut Vec<T>) -> Result<(), Fault>,
    {
        let mut out = Vec::new();
        for _ in 0..DUMP_TRIES {
            out.clear();
            let interrupted = self
                .exchange(msg.clone(), NLM_F_DUMP, &mut |kind, body| {
                    each(kind, body, &mut out)
                })
                .map_err(|e| fail(e, &doing))?;
            if !interrupted {
                return Ok(out);
            }
        }
        Err(NetlinkError::Reply {
            doing: doing(),
            why: "the dump changed under every try",
        })
    }

    /// Sends one request and reads its reply to the end, handing each
    /// message of it to `each`. Messages answering other (earlier, given
    /// up) requests are skipped by their sequence number. Returns whether
    /// a dump was interrupted.
    fn exchange(
        &self,
        msg: RouteNetlinkMessage,
        flags: u16,
        each: &mut Each,
    ) -> Result<bool, Failure> {
        let seq = self.seq.get().wrapping_add(1);
        self.seq.set(seq);
        let mut buf = self.buf.borrow_mut();
        encode(&mut buf, msg, flags, seq);
        loop {
            match self.socket.send(&buf, 0) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Failure::Io(e)),
                Ok(_) => break,
            }
        }
        let mut interrupted = false;
        loop {
            buf.clear();
            // MSG_TRUNC: the datagram's real length, to tell a cut one.
            let len = match self.socket.recv(&mut *buf, libc::MSG_TRUNC) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Failure::Io(e)),
                Ok(len) => len,
            };
            if len > buf.len() {
                return Err(Failure::Fault(Fault::Malformed(
                    "a reply larger than 32 KiB",
                )));
            }
            let walk = walk(&buf[..len], seq, each).map_err(Failure::Fault)?;
            interrupted |= walk.interrupted;
            if walk.done {
                return Ok(interrupted);
            }
        }
    }
}

/// Pins the calling thread to the CPU it is on, so that a thread it
/// spawns starts there; returns the affinity to restore, or None if it
/// could not pin (the spawn is then only slower).
fn pin_to_this_cpu() -> Option<CpuSet> {
    let me = Pid::from_raw(0);
    let mask = sched_getaffinity(me).ok()?;
    let mut here = CpuSet::new();
    here.set(sched_getcpu().ok()?).ok()?;
    sched_setaffinity(me, &here).ok()?;
    Some(mask)
}

/// The error for a failed exchange, named by what it was doing.
fn fail(failure: Failure, doing: impl FnOnce() -> String) -> NetlinkError {
    let doing = doing();
    match failure {
        Failure::Io(source) => NetlinkError::Io { doing, source },
        Failure::Fault(Fault::Malformed(why)) => NetlinkError::Reply { doing, why },
        Failure::Fault(Fault::Kernel { errno, detail }) => NetlinkError::Kernel {
            doing,
            detail,
            source: io::Error::from_raw_os_error(errno),
        },
    }
}

/// Writes the request into `buf`, replacing what was there.
fn encode(buf: &mut Vec<u8>, msg: RouteNetlinkMessage, flags: u16, seq: u32) {
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | flags;
    header.sequence_number = seq;
    let mut msg = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
    msg.finalize();
    buf.clear();
    buf.resize(msg.buffer_len(), 0);
    msg.serialize(buf);
}

/// Reads one datagram's messages for request `seq`: hands those with a
/// body to `each`, and says whether the reply is complete (an ack, an
/// error, the end of a dump, or a single message not part of one).
fn walk(mut data: &[u8], seq: u32, each: &mut Each) -> Result<Walk, Fault> {
    let mut walk = Walk::default();
    while !data.is_empty() {
        let msg =
            NetlinkBuffer::new_checked(data).map_err(|_| Fault::Malformed("a cut message"))?;
        let len = msg.length() as usize;
        let body = &data[HEADER_LEN..len];
        data = &data[align4(len).min(data.len())..];
        if msg.sequence_number() != seq {
            continue;
        }
        match msg.message_type() {
            NLMSG_ERROR => {
                let errno = -i32_of(body)?;
                if errno != 0 {
                    return Err(Fault::Kernel {
                        errno,
                        detail: ext_ack_message(msg.flags(), body),
                    });
                }
                walk.done = true;
            }
            NLMSG_DONE => {
                // A dump that failed midway says so here, negated.
                let code = if body.len() >= 4 { i32_of(body)? } else { 0 };
                if code < 0 {
                    return Err(Fault::Kernel {
                        errno: -code,
                        detail: None,
                    });
                }
                walk.done = true;
            }
            NLMSG_NOOP => {}
            NLMSG_OVERRUN => return Err(Fault::Malformed("the kernel dropped part of the reply")),
            kind => {
                walk.interrupted |= msg.flags() & NLM_F_DUMP_INTR != 0;
                each(kind, body)?;
                walk.done |= msg.flags() & NLM_F_MULTIPART == 0;
            }
        }
    }
    Ok(walk)
}

/// The kernel's text in an error's extended ack, after the echoed request
/// (its header alone when capped).
fn ext_ack_message(flags: u16, body: &[u8]) -> Option<String> {
    if flags & NLM_F_ACK_TLVS == 0 {
        return None;
    }
    let echoed = if flags & NLM_F_CAPPED != 0 {
        HEADER_LEN
    } else {
        u32_of(body.get(4..8)?).ok()? as usize
    };
    let tlvs = body.get(4 + align4(echoed)..)?;
    NlasIterator::new(tlvs)
        .filter_map(Result::ok)
        .find(|nla| nla.kind() == NLMSGERR_ATTR_MSG)
        .and_then(|nla| c_string(nla.value()).ok().map(str::to_owned))
}

fn link_header(kind: u16, body: &[u8]) -> Result<LinkHeader, Fault> {
    if kind != RTM_NEWLINK {
        return Err(Fault::Malformed("a reply that is not a link"));
    }
    LinkHeader::parse(body).map_err(|_| Fault::Malformed("a cut link header"))
}

/// A route of the main IPv4 table, or None for another's.
fn parse_route(kind: u16, body: &[u8]) -> Result<Option<Route>, Fault> {
    if kind != RTM_NEWROUTE {
        return Err(Fault::Malformed("a reply that is not a route"));
    }
    let header = RouteHeader::parse(body).map_err(|_| Fault::Malformed("a cut route header"))?;
    if header.address_family != AddressFamily::Inet {
        return Ok(None);
    }
    let mut table = u32::from(header.table);
    let mut route = Route {
        destination: Ipv4Addr::UNSPECIFIED,
        prefix: header.destination_prefix_length,
        oif: None,
        gateway: None,
    };
    for nla in NlasIterator::new(&body[RTMSG_LEN..]) {
        let nla = nla.map_err(|_| Fault::Malformed("a cut route attribute"))?;
        match nla.kind() {
            RTA_DST => route.destination = ipv4_of(nla.value())?,
            RTA_OIF => route.oif = Some(u32_of(nla.value())?),
            RTA_GATEWAY => route.gateway = Some(ipv4_of(nla.value())?),
            RTA_TABLE => table = u32_of(nla.value())?,
            // struct rtnexthop: len u16, flags u8, hops u8, ifindex i32.
            RTA_MULTIPATH if route.oif.is_none() => {
                route.oif = nla.value().get(4..8).map(u32_of).transpose()?;
            }
            _ => {}
        }
    }
    Ok((table == u32::from(RouteHeader::RT_TABLE_MAIN)).then_some(route))
}

/// The value of the first attribute of `kind` among `nlas`.
fn attribute(nlas: &[u8], kind: u16) -> Result<Option<&[u8]>, Fault> {
    for nla in NlasIterator::new(nlas) {
        let nla = nla.map_err(|_| Fault::Malformed("a cut attribute"))?;
        if nla.kind() == kind {
            return Ok(Some(value_of(nla)));
        }
    }
    Ok(None)
}

/// An attribute's value, borrowed from the reply rather than from the
/// NlaBuffer (whose own `value()` cannot outlive it).
fn value_of(nla: NlaBuffer<&[u8]>) -> &[u8] {
    // new_checked has made sure NLA_HEADER_SIZE <= length <= the buffer's.
    let end = usize::from(nla.length());
    &nla.into_inner()[NLA_HEADER_SIZE..end]
}

fn link_request(index: u32) -> LinkMessage {
    let mut msg = LinkMessage::default();
    msg.header.index = index;
    msg
}

fn bridge_request(name: &str, mtu: Option<u32>, mac: [u8; 6]) -> LinkMessage {
    let mut msg = LinkMessage::default();
    msg.attributes.push(LinkAttribute::IfName(name.into()));
    msg.attributes.push(LinkAttribute::Address(mac.to_vec()));
    if let Some(mtu) = mtu {
        msg.attributes.push(LinkAttribute::Mtu(mtu));
    }
    msg.attributes
        .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
            InfoKind::Bridge,
        )]));
    msg
}

fn veth_request(
    host: &str,
    master: u32,
    peer: &str,
    peer_netns: RawFd,
    mac: [u8; 6],
    mtu: u32,
) -> LinkMessage {
    let mut inside = LinkMessage::default();
    inside.attributes = vec![
        LinkAttribute::IfName(peer.into()),
        LinkAttribute::Address(mac.to_vec()),
        LinkAttribute::Mtu(mtu),
        LinkAttribute::NetNsFd(peer_netns),
    ];
    let mut msg = LinkMessage::default();
    // Up as it is made: no second request for the host end.
    msg.header.flags = LinkFlags::Up;
    msg.header.change_mask = LinkFlags::Up;
    msg.attributes = vec![
        LinkAttribute::IfName(host.into()),
        LinkAttribute::Mtu(mtu),
        LinkAttribute::Controller(master),
        LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(inside))),
        ]),
    ];
    msg
}

fn address_request(index: u32, addr: Ipv4Addr, prefix: u8) -> AddressMessage {
    let mut msg = AddressMessage::default();
    msg.header.family = AddressFamily::Inet;
    msg.header.prefix_len = prefix;
    msg.header.index = index;
    msg.attributes.push(AddressAttribute::Local(addr.into()));
    msg.attributes.push(AddressAttribute::Address(addr.into()));
    // A /31 or /32 has no broadcast address (RFC 3021).
    if prefix < 31 {
        let host_bits = u32::MAX.checked_shr(u32::from(prefix)).unwrap_or(0);
        let broadcast = Ipv4Addr::from(u32::from(addr) | host_bits);
        msg.attributes.push(AddressAttribute::Broadcast(broadcast));
    }
    msg
}

fn default_route_request(gateway: Ipv4Addr) -> RouteMessage {
    let mut msg = RouteMessage::default();
    msg.header.address_family = AddressFamily::Inet;
    msg.header.table = RouteHeader::RT_TABLE_MAIN;
    // What `ip route add` marks its routes with.
    msg.header.protocol = RouteProtocol::Boot;
    msg.header.scope = RouteScope::Universe;
    msg.header.kind = RouteType::Unicast;
    msg.attributes
        .push(RouteAttribute::Gateway(RouteAddress::Inet(gateway)));
    msg
}

/// A locally administered unicast MAC, random: std's hasher keys are
/// seeded from the OS's randomness.
fn random_mac() -> [u8; 6] {
    let bits = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let b = bits.to_le_bytes();
    [(b[0] & 0xfe) | 0x02, b[1], b[2], b[3], b[4], b[5]]
}

fn align4(len: usize) -> usize {
    (len + 3) & !3
}

fn u32_of(raw: &[u8]) -> Result<u32, Fault> {
    let bytes = raw.get(..4).ok_or(Fault::Malformed("a cut 32-bit value"))?;
    Ok(u32::from_ne_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
}

fn i32_of(raw: &[u8]) -> Result<i32, Fault> {
    u32_of(raw).map(|v| v as i32)
}

fn ipv4_of(raw: &[u8]) -> Result<Ipv4Addr, Fault> {
    let bytes = raw.get(..4).ok_or(Fault::Malformed("a cut IPv4 address"))?;
    Ok(Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]))
}

/// A NUL-terminated string attribute, without its NUL.
fn c_string(raw: &[u8]) -> Result<&str, Fault> {
    let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    std::str::from_utf8(&raw[..end]).map_err(|_| Fault::Malformed("a name that is not UTF-8"))
}

#[cfg(test)]
#[path = "netlink_tests.rs"]
mod tests;
