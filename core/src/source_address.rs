//! Source addresses: the local IPs a group's users open their connections from.
//!
//! One local address gives a process at most about 28,000 ephemeral ports (Linux's default
//! `ip_local_port_range`), so at most that many connections to one target. A group's
//! `source_addresses` lists several local addresses; its users bind to them round-robin (the
//! group's user `i` binds address `i mod n`), so one process can hold more connections than
//! one address allows.
//!
//! Each entry of the list (or the one string) is one of:
//!
//! | form | addresses |
//! |---|---|
//! | `"127.0.0.2"` | that address (IPv4 or IPv6) |
//! | `"127.0.0.2-127.0.0.20"` | every address from the first to the last, both included |
//! | `"127.0.1.0/24"` | the block; for IPv4 blocks larger than /31, without the network and broadcast addresses |
//!
//! Each address must belong to this machine (any of 127.0.0.0/8 does on Linux): a range's or
//! block's ends are checked by binding to them. A list holds at most [`MAX_ADDRESSES`].
//!
//! A protocol opens its sockets through [`connect_tcp`] and [`bind_udp`] with the user's
//! address ([`UserContext::source_address`](crate::UserContext::source_address)), so every
//! protocol binds the same way; it says so with
//! [`Protocol::binds_source_address`](crate::Protocol::binds_source_address).
//!
//! ```
//! use load_density_core::source_address::SourceAddresses;
//!
//! let sources = SourceAddresses::parse(&["127.0.0.2-127.0.0.4", "127.0.1.0/30"]).unwrap();
//! assert_eq!(sources.len(), 5);
//! let picked: Vec<String> = (0..6).map(|i| sources.get(i).to_string()).collect();
//! assert_eq!(picked, ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.1.1", "127.0.1.2", "127.0.0.2"]);
//! assert!(SourceAddresses::parse(&["127.0.0.9-127.0.0.2"]).is_err());
//! ```

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use tokio::net::{TcpSocket, TcpStream, UdpSocket};

/// The most addresses one `source_addresses` may give.
pub const MAX_ADDRESSES: u64 = 1 << 20;

/// What is wrong with one entry of `source_addresses` (the caller names where it is).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SourceAddressError {
    /// Not an address, a range or a block.
    #[error("{0:?} is not an IP address, a range (A-B) or a CIDR block (A/n)")]
    Unparsable(String),
    /// A range whose ends are of two families, or reversed.
    #[error("{0:?}: a range's ends must be of one IP family, the first not after the last")]
    BadRange(String),
    /// A CIDR block whose prefix is too long for its family.
    #[error("{0:?}: the prefix length is too long for this IP family")]
    BadPrefix(String),
    /// More addresses than [`MAX_ADDRESSES`].
    #[error("{0:?} gives more than {MAX_ADDRESSES} addresses")]
    TooMany(String),
    /// No address at all.
    #[error("gives no address: list at least one")]
    Empty,
    /// An address this machine does not have.
    #[error("{address} is not an address of this machine ({reason})")]
    NotLocal {
        /// The address.
        address: IpAddr,
        /// Why binding to it failed.
        reason: String,
    },
}

/// A run of consecutive addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Block {
    first: IpAddr,
    count: u64,
}

impl Block {
    fn nth(&self, offset: u64) -> IpAddr {
        match self.first {
            IpAddr::V4(first) => {
                // Blocks are built so that first + count - 1 fits.
                IpAddr::V4(Ipv4Addr::from(
                    u32::from(first).wrapping_add(u32::try_from(offset).unwrap_or(u32::MAX)),
                ))
            }
            IpAddr::V6(first) => IpAddr::V6(Ipv6Addr::from(
                u128::from(first).wrapping_add(u128::from(offset)),
            )),
        }
    }

    fn last(&self) -> IpAddr {
        self.nth(self.count - 1)
    }

    fn parse(entry: &str) -> Result<Self, SourceAddressError> {
        let entry = entry.trim();
        let unparsable = || SourceAddressError::Unparsable(entry.to_owned());
        let ip = |text: &str| text.trim().parse::<IpAddr>().map_err(|_| unparsable());
        let too_many = || SourceAddressError::TooMany(entry.to_owned());
        if let Some((first, last)) = entry.split_once('-') {
            let (first, last) = (ip(first)?, ip(last)?);
            let span = match (first, last) {
                (IpAddr::V4(a), IpAddr::V4(b)) if a <= b => u128::from(u32::from(b) - u32::from(a)),
                (IpAddr::V6(a), IpAddr::V6(b)) if a <= b => u128::from(b) - u128::from(a),
                _ => return Err(SourceAddressError::BadRange(entry.to_owned())),
            };
            let count = u64::try_from(span + 1).map_err(|_| too_many())?;
            return Ok(Self { first, count });
        }
        if let Some((base, prefix)) = entry.split_once('/') {
            let base = ip(base)?;
            let prefix: u32 = prefix.trim().parse().map_err(|_| unparsable())?;
            let bad_prefix = || SourceAddressError::BadPrefix(entry.to_owned());
            return match base {
                IpAddr::V4(base) => {
                    let host_bits = 32u32.checked_sub(prefix).ok_or_else(bad_prefix)?;
                    let size = 1u64 << host_bits;
                    let network = u64::from(u32::from(base)) & !(size - 1);
                    // Without the network and broadcast addresses, for blocks larger than /31.
                    let (start, count) = if size > 2 {
                        (network + 1, size - 2)
                    } else {
                        (network, size)
                    };
                    Ok(Self {
                        first: IpAddr::V4(Ipv4Addr::from(
                            u32::try_from(start).map_err(|_| bad_prefix())?,
                        )),
                        count,
                    })
                }
                IpAddr::V6(base) => {
                    let host_bits = 128u32.checked_sub(prefix).ok_or_else(bad_prefix)?;
                    if host_bits >= 64 {
                        return Err(too_many());
                    }
                    let size = 1u128 << host_bits;
                    let network = u128::from(base) & !(size - 1);
                    Ok(Self {
                        first: IpAddr::V6(Ipv6Addr::from(network)),
                        count: u64::try_from(size).map_err(|_| too_many())?,
                    })
                }
            };
        }
        Ok(Self {
            first: ip(entry)?,
            count: 1,
        })
    }
}

/// A group's source addresses (see the [module docs](self)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceAddresses {
    blocks: Vec<Block>,
    total: u64,
}

impl SourceAddresses {
    /// Parses the entries (addresses, ranges, blocks), in order.
    ///
    /// # Errors
    /// The first bad entry, with its index in `entries`.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, (usize, SourceAddressError)> {
        let mut blocks = Vec::with_capacity(entries.len());
        let mut total = 0u64;
        for (index, entry) in entries.iter().enumerate() {
            let block = Block::parse(entry.as_ref()).map_err(|e| (index, e))?;
            total = total.saturating_add(block.count);
            if total > MAX_ADDRESSES {
                return Err((
                    index,
                    SourceAddressError::TooMany(entry.as_ref().trim().to_owned()),
                ));
            }
            blocks.push(block);
        }
        if total == 0 {
            return Err((0, SourceAddressError::Empty));
        }
        Ok(Self { blocks, total })
    }

    /// Checks that every entry's first and last address belong to this machine, by binding a
    /// UDP socket to each (on an unused port, released at once).
    ///
    /// # Errors
    /// The first address that is not local, with the index of its entry.
    pub fn check_local(&self) -> Result<(), (usize, SourceAddressError)> {
        for (index, block) in self.blocks.iter().enumerate() {
            for address in [block.first, block.last()] {
                std::net::UdpSocket::bind(SocketAddr::new(address, 0)).map_err(|error| {
                    (
                        index,
                        SourceAddressError::NotLocal {
                            address,
                            reason: error.to_string(),
                        },
                    )
                })?;
            }
        }
        Ok(())
    }

    /// How many addresses there are.
    pub fn len(&self) -> u64 {
        self.total
    }

    /// Always false: a parsed list has at least one address.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// The address of the group's user `index`: address `index mod len()`, in list order.
    pub fn get(&self, index: u64) -> IpAddr {
        let mut offset = index % self.total.max(1);
        for block in &self.blocks {
            if offset < block.count {
                return block.nth(offset);
            }
            offset -= block.count;
        }
        // Unreachable for a parsed list: offset < total.
        self.blocks
            .first()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |b| b.first)
    }
}

fn family_mismatch(source: IpAddr, target: SocketAddr) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("source address {source} and target {target} are not of the same IP family"),
    )
}

/// Opens a TCP connection to `target`, from `source` when given (bound to it on an ephemeral
/// port before connecting).
///
/// # Errors
/// Binding or connecting fails, or `source` and `target` are of two IP families.
pub async fn connect_tcp(target: SocketAddr, source: Option<IpAddr>) -> io::Result<TcpStream> {
    let Some(source) = source else {
        return TcpStream::connect(target).await;
    };
    let socket = match (source, target) {
        (IpAddr::V4(_), SocketAddr::V4(_)) => TcpSocket::new_v4()?,
        (IpAddr::V6(_), SocketAddr::V6(_)) => TcpSocket::new_v6()?,
        _ => return Err(family_mismatch(source, target)),
    };
    socket.bind(SocketAddr::new(source, 0))?;
    socket.connect(target).await
}

/// Resolves `host` (a name, or an IP literal, IPv6 with or without brackets) and opens a TCP
/// connection to the first of its addresses that accepts, from `source` when given.
///
/// # Errors
/// The name does not resolve, or no address accepts (the last address's error).
pub async fn connect_host(host: &str, port: u16, source: Option<IpAddr>) -> io::Result<TcpStream> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let mut last = io::Error::new(io::ErrorKind::NotFound, format!("{host} has no addresses"));
    for target in tokio::net::lookup_host((bare, port)).await? {
        match connect_tcp(target, source).await {
            Ok(stream) => return Ok(stream),
            Err(error) => last = error,
        }
    }
    Err(last)
}

/// Opens a UDP socket for sending to `target`: bound to `source` when given, else to the
/// unspecified address of `target`'s family, on an ephemeral port.
///
/// # Errors
/// Binding fails, or `source` and `target` are of two IP families.
pub async fn bind_udp(target: SocketAddr, source: Option<IpAddr>) -> io::Result<UdpSocket> {
    let local = match (source, target) {
        (None, SocketAddr::V4(_)) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        (None, SocketAddr::V6(_)) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        (Some(source), target) if source.is_ipv4() == target.is_ipv4() => source,
        (Some(source), target) => return Err(family_mismatch(source, target)),
    };
    UdpSocket::bind(SocketAddr::new(local, 0)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_parse_into_addresses_in_order() {
        let sources =
            SourceAddresses::parse(&["10.0.0.1", " 192.168.0.254 - 192.168.1.1 ", "::1"]).unwrap();
        assert_eq!(sources.len(), 6);
        let all: Vec<String> = (0..7).map(|i| sources.get(i).to_string()).collect();
        assert_eq!(
            all,
            [
                "10.0.0.1",
                "192.168.0.254",
                "192.168.0.255",
                "192.168.1.0",
                "192.168.1.1",
                "::1",
                "10.0.0.1"
            ]
        );
        let block = SourceAddresses::parse(&["127.0.0.77/29"]).unwrap();
        assert_eq!(block.len(), 6);
        assert_eq!(block.get(0).to_string(), "127.0.0.73");
        assert_eq!(block.get(5).to_string(), "127.0.0.78");
        assert_eq!(SourceAddresses::parse(&["127.0.0.5/32"]).unwrap().len(), 1);
        assert_eq!(SourceAddresses::parse(&["127.0.0.4/31"]).unwrap().len(), 2);
        assert_eq!(SourceAddresses::parse(&["fd00::/126"]).unwrap().len(), 4);
    }

    #[test]
    fn bad_entries_are_errors_naming_the_entry() {
        let err = |entries: &[&str]| SourceAddresses::parse(entries).unwrap_err();
        assert_eq!(
            err(&["127.0.0.2", "localhost"]),
            (1, SourceAddressError::Unparsable("localhost".into()))
        );
        assert_eq!(
            err(&["127.0.0.9-127.0.0.2"]).1,
            SourceAddressError::BadRange("127.0.0.9-127.0.0.2".into())
        );
        assert_eq!(
            err(&["127.0.0.1-::1"]).1,
            SourceAddressError::BadRange("127.0.0.1-::1".into())
        );
        assert_eq!(
            err(&["127.0.0.1/33"]).1,
            SourceAddressError::BadPrefix("127.0.0.1/33".into())
        );
        assert_eq!(
            err(&["127.0.0.0/8"]).1,
            SourceAddressError::TooMany("127.0.0.0/8".into())
        );
        assert_eq!(
            err(&["fd00::/64"]).1,
            SourceAddressError::TooMany("fd00::/64".into())
        );
        assert_eq!(err(&[]), (0, SourceAddressError::Empty));
        assert!(matches!(
            err(&["127.0.0.1/x"]).1,
            SourceAddressError::Unparsable(_)
        ));
    }

    #[test]
    fn only_addresses_of_this_machine_pass_the_local_check() {
        let local = SourceAddresses::parse(&["127.0.0.2-127.0.0.40", "127.0.0.1"]).unwrap();
        assert_eq!(local.check_local(), Ok(()));
        // TEST-NET-3 (RFC 5737) belongs to no machine.
        let foreign = SourceAddresses::parse(&["127.0.0.3", "203.0.113.7"]).unwrap();
        let (index, error) = foreign.check_local().unwrap_err();
        assert_eq!(index, 1);
        assert!(
            error
                .to_string()
                .starts_with("203.0.113.7 is not an address of this machine"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn sockets_bind_to_the_source_address() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = listener.local_addr().unwrap();
        let source: IpAddr = "127.0.0.5".parse().unwrap();
        let stream = connect_tcp(target, Some(source)).await.unwrap();
        let (_, peer) = listener.accept().await.unwrap();
        assert_eq!(peer.ip(), source);
        assert_eq!(stream.local_addr().unwrap(), peer);
        let v6: IpAddr = "::1".parse().unwrap();
        let mismatch = connect_tcp(target, Some(v6)).await.unwrap_err();
        assert_eq!(mismatch.kind(), io::ErrorKind::InvalidInput);
        let udp = bind_udp(target, Some(source)).await.unwrap();
        assert_eq!(udp.local_addr().unwrap().ip(), source);
        let any = bind_udp(target, None).await.unwrap();
        assert!(any.local_addr().unwrap().ip().is_unspecified());
    }
}
