//! The outbound policy: which addresses the platform may connect to on a tenant's behalf (device
//! pollers now, the alert engine's webhooks and mail next).
//!
//! A tenant chooses the host; without a policy that makes the platform a port scanner of its own network
//! (PostgreSQL, Redis, Kafka on loopback, cloud metadata on link-local, every private host). So an address
//! that is not public (loopback, link-local, unspecified, multicast, broadcast, private, shared/CGNAT,
//! reserved, cloud metadata, and the IPv6 forms that embed them) is refused unless the operator's allow
//! list names it ([`OutboundPolicy::check`]). The ports of the platform's own services stay refused on
//! such addresses even when an allow entry covers the address, unless the entry names that exact port.
//!
//! Callers resolve a host name, keep the addresses this policy accepts ([`OutboundPolicy::filter`]) and
//! connect to those addresses, never to the name again (a second resolution could answer differently:
//! DNS rebinding). A [`Refusal`] says which category of address was refused and never the address, so
//! it may be shown to the tenant.
//!
//! No I/O here: resolving is the caller's.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

/// Why an outbound connection was refused: a category, safe to show to the tenant (no address).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// 127.0.0.0/8, ::1.
    Loopback,
    /// 169.254.0.0/16, fe80::/10.
    LinkLocal,
    /// 0.0.0.0/8, ::.
    Unspecified,
    /// 224.0.0.0/4, ff00::/8.
    Multicast,
    /// 255.255.255.255.
    Broadcast,
    /// 10/8, 172.16/12, 192.168/16, fc00::/7 (unique local), fec0::/10 (site-local).
    Private,
    /// 100.64.0.0/10, the carrier-grade NAT range.
    SharedAddressSpace,
    /// Documentation, benchmarking, protocol-assignment and future-use ranges.
    Reserved,
    /// A cloud provider's instance metadata service (169.254.169.254, fd00:ec2::254).
    Metadata,
    /// A port of the platform's own services (PostgreSQL, Redis, Kafka) on a non-public address.
    PlatformPort,
    /// The host is not a well-formed name or address (e.g. it holds a line break).
    MalformedHost,
    /// The host name resolves to no address.
    NoAddress,
}

impl Refusal {
    /// The category in a few words, e.g. `loopback address`.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Loopback => "loopback address",
            Refusal::LinkLocal => "link-local address",
            Refusal::Unspecified => "unspecified address",
            Refusal::Multicast => "multicast address",
            Refusal::Broadcast => "broadcast address",
            Refusal::Private => "private network address",
            Refusal::SharedAddressSpace => "shared (carrier-grade NAT) address",
            Refusal::Reserved => "reserved address",
            Refusal::Metadata => "cloud metadata address",
            Refusal::PlatformPort => "a port of the platform's own services",
            Refusal::MalformedHost => "malformed host name",
            Refusal::NoAddress => "the host name resolves to no address",
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "refused by the outbound policy: {}", self.as_str())
    }
}

impl std::error::Error for Refusal {}

/// The category of an address that is not public, or `None` for a public one.
pub fn classify(ip: IpAddr) -> Option<Refusal> {
    match canonical(ip) {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

/// IPv4 forms carried in IPv6 (mapped `::ffff:a.b.c.d`, compatible `::a.b.c.d`, NAT64 `64:ff9b::/96`,
/// 6to4 `2002::/16`) read as the IPv4 address they reach.
fn canonical(ip: IpAddr) -> IpAddr {
    let IpAddr::V6(v6) = ip else { return ip };
    let s = v6.segments();
    let o = v6.octets();
    let tail = Ipv4Addr::new(o[12], o[13], o[14], o[15]);
    if let Some(v4) = v6.to_ipv4_mapped() {
        IpAddr::V4(v4)
    } else if s[..6] == [0; 6] && u32::from(tail) > 1 {
        // `::a.b.c.d`; `::` and `::1` are IPv6's own unspecified and loopback.
        IpAddr::V4(tail)
    } else if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        IpAddr::V4(tail)
    } else if s[0] == 0x2002 {
        IpAddr::V4(Ipv4Addr::new(o[2], o[3], o[4], o[5]))
    } else {
        ip
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<Refusal> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        _ if ip == Ipv4Addr::new(169, 254, 169, 254) => Refusal::Metadata,
        _ if ip.is_broadcast() => Refusal::Broadcast,
        (0, _, _) => Refusal::Unspecified,
        (127, _, _) => Refusal::Loopback,
        (169, 254, _) => Refusal::LinkLocal,
        (10, _, _) | (192, 168, _) => Refusal::Private,
        (172, 16..=31, _) => Refusal::Private,
        (100, 64..=127, _) => Refusal::SharedAddressSpace,
        (224..=239, _, _) => Refusal::Multicast,
        (240..=255, _, _) => Refusal::Reserved,
        (192, 0, 0) | (192, 0, 2) | (198, 18..=19, _) | (198, 51, 100) | (203, 0, 113) => {
            Refusal::Reserved
        }
        _ => return None,
    })
}

fn classify_v6(ip: Ipv6Addr) -> Option<Refusal> {
    let s = ip.segments();
    Some(match s[0] {
        _ if ip == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) => Refusal::Metadata,
        _ if ip.is_unspecified() => Refusal::Unspecified,
        _ if ip.is_loopback() => Refusal::Loopback,
        0xfe80..=0xfebf => Refusal::LinkLocal,
        0xfec0..=0xfeff | 0xfc00..=0xfdff => Refusal::Private,
        0xff00..=0xffff => Refusal::Multicast,
        0x2001 if s[1] == 0xdb8 => Refusal::Reserved,
        0x0100 if s[1..4] == [0, 0, 0] => Refusal::Reserved,
        // The rest of ::/8 (other than the IPv4 forms read above) is not routable.
        0x0000..=0x00ff => Refusal::Reserved,
        _ => return None,
    })
}

/// One entry of the operator's allow list: an address or a CIDR block, with an optional port.
///
/// Forms: `10.0.0.5`, `10.0.0.5:502`, `10.0.0.0/8`, `10.0.0.0/8:502`, `fd12::7`, `[fd12::7]:4840`,
/// `fd12::/16`, `[fd12::/16]:4840`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowEntry {
    network: IpAddr,
    prefix: u8,
    port: Option<u16>,
}

/// An address or a CIDR block (`10.0.0.5`, `10.0.0.0/8`, `fd12::/16`), e.g. of trusted proxies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cidr(AllowEntry);

impl Cidr {
    /// Whether the block holds `ip` (IPv4-mapped IPv6 forms read as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.covers(ip)
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        // An IPv6 block is never read as address:port here.
        let entry: AllowEntry = if s.contains("::") || s.matches(':').count() > 1 {
            format!("[{s}]").parse()?
        } else {
            s.parse()?
        };
        if entry.port.is_some() {
            return Err(format!("`{s}` is not an address or CIDR block (no port)"));
        }
        Ok(Self(entry))
    }
}

/// Read from its text form, so that a settings file holds `"10.0.0.0/8"`.
impl<'de> serde::Deserialize<'de> for Cidr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl AllowEntry {
    /// Whether the entry covers `ip` (any port).
    fn covers(&self, ip: IpAddr) -> bool {
        match (canonical(ip), self.network) {
            (IpAddr::V4(ip), IpAddr::V4(net)) => {
                prefix_eq(&ip.octets(), &net.octets(), self.prefix)
            }
            (IpAddr::V6(ip), IpAddr::V6(net)) => {
                prefix_eq(&ip.octets(), &net.octets(), self.prefix)
            }
            _ => false,
        }
    }

    /// Whether the entry names a single address.
    fn is_host(&self) -> bool {
        self.prefix == max_prefix(self.network)
    }
}

fn max_prefix(ip: IpAddr) -> u8 {
    if ip.is_ipv4() {
        32
    } else {
        128
    }
}

/// Whether the first `prefix` bits of `a` and `b` agree.
fn prefix_eq(a: &[u8], b: &[u8], prefix: u8) -> bool {
    let full = usize::from(prefix / 8);
    let rest = prefix % 8;
    if a[..full] != b[..full] {
        return false;
    }
    rest == 0 || {
        let mask = 0xffu8 << (8 - rest);
        a[full] & mask == b[full] & mask
    }
}

impl FromStr for AllowEntry {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "`{s}` is not an address or CIDR block with an optional port \
                 (e.g. `10.0.0.5:502`, `10.0.0.0/8`, `[fd12::/16]:4840`)"
            )
        };
        let (net, port) = if let Some(rest) = s.strip_prefix('[') {
            let (net, after) = rest.split_once(']').ok_or_else(bad)?;
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or_else(bad)?),
            };
            (net, port)
        } else if s.matches(':').count() == 1 {
            let (net, port) = s.split_once(':').ok_or_else(bad)?;
            (net, Some(port))
        } else {
            (s, None)
        };
        let port = match port {
            None => None,
            Some(p) => Some(p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(bad)?),
        };
        let (addr, prefix) = match net.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (net, None),
        };
        let network: IpAddr = addr.parse().map_err(|_| bad())?;
        let prefix = match prefix {
            None => max_prefix(network),
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max_prefix(network))
                .ok_or_else(bad)?,
        };
        // `::ffff:10.0.0.0/104` is the block 10.0.0.0/8.
        let (network, prefix) = match network {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) if prefix >= 96 => (IpAddr::V4(v4), prefix - 96),
                _ => (network, prefix),
            },
            IpAddr::V4(_) => (network, prefix),
        };
        Ok(Self {
            network,
            prefix,
            port,
        })
    }
}

/// Which addresses the platform may connect to for a tenant. The default refuses every address that is
/// not public.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboundPolicy {
    allow: Vec<AllowEntry>,
    platform_ports: Vec<u16>,
    unrestricted: bool,
}

impl OutboundPolicy {
    /// A policy allowing `allow` (see [`AllowEntry`]) besides public addresses, with `platform_ports`
    /// (the ports of the platform's own PostgreSQL, Redis, Kafka, ...) refused on non-public addresses
    /// unless an entry names the exact port. Every malformed entry is reported.
    pub fn new<S: AsRef<str>>(allow: &[S], platform_ports: &[u16]) -> Result<Self, Vec<String>> {
        let mut entries = Vec::new();
        let mut errors = Vec::new();
        for s in allow {
            match s.as_ref().trim().parse::<AllowEntry>() {
                Ok(entry) => entries.push(entry),
                Err(e) => errors.push(e),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let mut platform_ports = platform_ports.to_vec();
        platform_ports.sort_unstable();
        platform_ports.dedup();
        Ok(Self {
            allow: entries,
            platform_ports,
            unrestricted: false,
        })
    }

    /// A policy that allows everything: for the edge agent, whose sources are the operator's own devices
    /// on the plant's network, configured by the operator, not by a tenant of a shared platform.
    pub fn unrestricted() -> Self {
        Self {
            unrestricted: true,
            ..Self::default()
        }
    }

    /// Whether a connection to `addr` is allowed, or the category of why not.
    pub fn check(&self, addr: SocketAddr) -> Result<(), Refusal> {
        if self.unrestricted {
            return Ok(());
        }
        let Some(class) = classify(addr.ip()) else {
            return Ok(());
        };
        let port = addr.port();
        let covering = self
            .allow
            .iter()
            .filter(|e| e.covers(addr.ip()))
            // Metadata services are allowed only when named one by one, never through a block.
            .filter(|e| class != Refusal::Metadata || e.is_host());
        let mut any_port = false;
        for entry in covering {
            match entry.port {
                Some(p) if p == port => return Ok(()),
                Some(_) => {}
                None => any_port = true,
            }
        }
        match any_port {
            true if self.platform_ports.contains(&port) => Err(Refusal::PlatformPort),
            true => Ok(()),
            false => Err(class),
        }
    }

    /// The addresses of `resolved` this policy allows, in their order, or the refusal of the first one
    /// when none is allowed (or [`Refusal::NoAddress`] when there were none).
    pub fn filter(
        &self,
        resolved: impl IntoIterator<Item = SocketAddr>,
    ) -> Result<Vec<SocketAddr>, Refusal> {
        let mut first = None;
        let mut allowed = Vec::new();
        for addr in resolved {
            match self.check(addr) {
                Ok(()) => allowed.push(addr),
                Err(refusal) => {
                    first.get_or_insert(refusal);
                }
            }
        }
        if allowed.is_empty() {
            Err(first.unwrap_or(Refusal::NoAddress))
        } else {
            Ok(allowed)
        }
    }
}

/// Refuses a host that is not a plausible name or address literal before it reaches a resolver: empty,
/// too long, or holding anything but letters, digits and `.-_:[]%` (no whitespace, no control
/// characters, no `@` or `/` that would change what a URL means).
pub fn check_host(host: &str) -> Result<(), Refusal> {
    let fine = |c: char| c.is_ascii_alphanumeric() || ".-_:[]%".contains(c);
    if host.is_empty() || host.len() > 253 || !host.chars().all(fine) {
        Err(Refusal::MalformedHost)
    } else {
        Ok(())
    }
}

/// Splits `host:port` (`[v6]:port` for IPv6) into the host (without brackets) and the port.
pub fn split_host_port(authority: &str) -> Option<(&str, u16)> {
    let (host, port) = authority.rsplit_once(':')?;
    let port = port.parse::<u16>().ok()?;
    let host = match host.strip_prefix('[') {
        Some(rest) => rest.strip_suffix(']')?,
        None if host.contains(':') => return None,
        None => host,
    };
    Some((host, port))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sock(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn class(ip: &str) -> Option<Refusal> {
        classify(ip.parse().unwrap())
    }

    #[test]
    fn classifies_every_kind_of_non_public_address() {
        use Refusal::*;
        let cases = [
            ("127.0.0.1", Some(Loopback)),
            ("127.255.0.9", Some(Loopback)),
            ("::1", Some(Loopback)),
            ("169.254.0.1", Some(LinkLocal)),
            ("fe80::1", Some(LinkLocal)),
            ("0.0.0.0", Some(Unspecified)),
            ("::", Some(Unspecified)),
            ("224.0.0.1", Some(Multicast)),
            ("ff02::1", Some(Multicast)),
            ("255.255.255.255", Some(Broadcast)),
            ("10.1.2.3", Some(Private)),
            ("172.16.0.1", Some(Private)),
            ("172.31.255.255", Some(Private)),
            ("192.168.1.1", Some(Private)),
            ("fc00::1", Some(Private)),
            ("fd12:3456::1", Some(Private)),
            ("100.64.0.1", Some(SharedAddressSpace)),
            ("100.127.255.255", Some(SharedAddressSpace)),
            ("169.254.169.254", Some(Metadata)),
            ("fd00:ec2::254", Some(Metadata)),
            ("192.0.2.1", Some(Reserved)),
            ("240.0.0.1", Some(Reserved)),
            ("2001:db8::1", Some(Reserved)),
            // IPv4 reached through IPv6 forms is judged as IPv4.
            ("::ffff:127.0.0.1", Some(Loopback)),
            ("::ffff:169.254.169.254", Some(Metadata)),
            ("::ffff:10.0.0.1", Some(Private)),
            ("::127.0.0.1", Some(Loopback)),
            ("64:ff9b::a9fe:a9fe", Some(Metadata)),
            ("2002:7f00:1::", Some(Loopback)),
            // Public addresses.
            ("8.8.8.8", None),
            ("172.32.0.1", None),
            ("100.128.0.1", None),
            ("2606:4700::1111", None),
            ("::ffff:8.8.8.8", None),
        ];
        for (ip, want) in cases {
            assert_eq!(class(ip), want, "{ip}");
        }
    }

    #[test]
    fn the_default_policy_refuses_what_is_not_public_and_says_only_the_category() {
        let policy = OutboundPolicy::default();
        assert_eq!(policy.check(sock("8.8.8.8:502")), Ok(()));
        let refused = policy.check(sock("127.0.0.1:55432")).unwrap_err();
        assert_eq!(refused, Refusal::Loopback);
        assert_eq!(
            refused.to_string(),
            "refused by the outbound policy: loopback address"
        );
        for r in [
            "169.254.169.254:80",
            "[::ffff:127.0.0.1]:6379",
            "10.0.0.1:502",
            "[fe80::1]:4840",
        ] {
            let text = policy.check(sock(r)).unwrap_err().to_string();
            assert!(!text.contains(r.split(':').next().unwrap()), "{text}");
            assert!(!text.chars().any(|c| c.is_ascii_digit()), "{text}");
        }
    }

    #[test]
    fn allow_entries_name_addresses_blocks_and_ports() {
        let policy = OutboundPolicy::new(
            &[
                "127.0.0.1:5020",
                "10.0.0.0/8",
                "[fd12::/16]:4840",
                "192.168.7.7",
            ],
            &[],
        )
        .unwrap();
        assert_eq!(policy.check(sock("127.0.0.1:5020")), Ok(()));
        assert_eq!(policy.check(sock("127.0.0.1:5021")), Err(Refusal::Loopback));
        assert_eq!(
            policy.check(sock("[::ffff:127.0.0.1]:5020")),
            Ok(()),
            "the mapped form is the same address"
        );
        assert_eq!(policy.check(sock("10.200.1.1:502")), Ok(()));
        assert_eq!(policy.check(sock("11.0.0.1:502")), Ok(()), "public");
        assert_eq!(policy.check(sock("[fd12:9::1]:4840")), Ok(()));
        assert_eq!(policy.check(sock("[fd13::1]:4840")), Err(Refusal::Private));
        assert_eq!(policy.check(sock("[fd12::1]:4841")), Err(Refusal::Private));
        assert_eq!(policy.check(sock("192.168.7.7:1")), Ok(()));
        assert_eq!(policy.check(sock("192.168.7.8:1")), Err(Refusal::Private));
    }

    #[test]
    fn the_platforms_own_ports_stay_refused_unless_named_exactly() {
        let ports = [55432, 56379, 59092];
        let loopback = OutboundPolicy::new(&["127.0.0.1"], &ports).unwrap();
        assert_eq!(loopback.check(sock("127.0.0.1:5020")), Ok(()));
        for port in ports {
            assert_eq!(
                loopback.check(sock(&format!("127.0.0.1:{port}"))),
                Err(Refusal::PlatformPort)
            );
        }
        let named = OutboundPolicy::new(&["127.0.0.1", "127.0.0.1:56379"], &ports).unwrap();
        assert_eq!(named.check(sock("127.0.0.1:56379")), Ok(()));
        assert_eq!(
            named.check(sock("127.0.0.1:55432")),
            Err(Refusal::PlatformPort)
        );
    }

    #[test]
    fn metadata_is_allowed_only_by_name() {
        let block = OutboundPolicy::new(&["169.254.0.0/16"], &[]).unwrap();
        assert_eq!(block.check(sock("169.254.1.1:80")), Ok(()));
        assert_eq!(
            block.check(sock("169.254.169.254:80")),
            Err(Refusal::Metadata)
        );
        let named = OutboundPolicy::new(&["169.254.169.254:80"], &[]).unwrap();
        assert_eq!(named.check(sock("169.254.169.254:80")), Ok(()));
    }

    #[test]
    fn filter_keeps_the_allowed_addresses_of_a_name() {
        let policy = OutboundPolicy::new(&["127.0.0.1"], &[]).unwrap();
        // What `localhost` resolves to.
        let both = [sock("[::1]:4840"), sock("127.0.0.1:4840")];
        assert_eq!(policy.filter(both), Ok(vec![sock("127.0.0.1:4840")]));
        assert_eq!(
            OutboundPolicy::default().filter(both),
            Err(Refusal::Loopback)
        );
        assert_eq!(
            OutboundPolicy::default().filter([]),
            Err(Refusal::NoAddress)
        );
    }

    #[test]
    fn unrestricted_allows_everything() {
        let policy = OutboundPolicy::unrestricted();
        assert_eq!(policy.check(sock("127.0.0.1:55432")), Ok(()));
        assert_eq!(policy.check(sock("169.254.169.254:80")), Ok(()));
    }

    #[test]
    fn malformed_allow_entries_are_all_reported() {
        let errors = OutboundPolicy::new(
            &[
                "10.0.0.0/33",
                "localhost",
                "10.0.0.1:0",
                "fd12::1:80",
                "[::1]x",
            ],
            &[],
        )
        .unwrap_err();
        assert_eq!(errors.len(), 4, "{errors:?}");
        // An IPv6 address without brackets is an address, not address:port.
        let policy = OutboundPolicy::new(&["fd12::1:80"], &[]).unwrap();
        assert_eq!(policy.check(sock("[fd12::1:80]:9")), Ok(()));
    }

    #[test]
    fn hosts_with_line_breaks_or_url_syntax_are_malformed() {
        for host in ["", "plc\r\nX: y", "plc 1", "user@plc", "plc/x", "plc\u{0}"] {
            assert_eq!(check_host(host), Err(Refusal::MalformedHost), "{host:?}");
        }
        for host in ["plc-7.example.com", "10.0.0.5", "::1", "fe80::1%eth0"] {
            assert_eq!(check_host(host), Ok(()), "{host}");
        }
    }

    #[test]
    fn cidrs_hold_their_addresses() {
        let block: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(block.contains("10.9.9.9".parse().unwrap()));
        assert!(block.contains("::ffff:10.9.9.9".parse().unwrap()));
        assert!(!block.contains("11.0.0.1".parse().unwrap()));
        let v6: Cidr = "fd12::/16".parse().unwrap();
        assert!(v6.contains("fd12::1".parse().unwrap()));
        assert!("10.0.0.1:80".parse::<Cidr>().is_err());
    }

    #[test]
    fn splits_host_and_port() {
        assert_eq!(split_host_port("plc:502"), Some(("plc", 502)));
        assert_eq!(split_host_port("[::1]:4840"), Some(("::1", 4840)));
        assert_eq!(split_host_port("::1:4840"), None);
        assert_eq!(split_host_port("plc"), None);
    }
}
