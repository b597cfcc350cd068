//! Reaching a device under the operator's outbound policy ([`haltless_schemas::outbound`]): resolve the
//! host once, keep the addresses the policy allows, and hand those addresses (never the name) to the
//! protocol, so that a second resolution cannot lead elsewhere (DNS rebinding). Errors say what happened
//! as a category: never the resolved address, never the operating system's own text.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use haltless_schemas::outbound::{check_host, OutboundPolicy, Refusal};

use super::error::SourceError;

/// The addresses of `host:port` that `policy` allows, resolved within `timeout`. `endpoint` (the
/// tenant's own text) names the device in errors.
pub async fn resolve_checked(
    policy: &OutboundPolicy,
    endpoint: &str,
    host: &str,
    port: u16,
    timeout: Duration,
) -> Result<Vec<SocketAddr>, SourceError> {
    let refused = |refusal: Refusal| SourceError::Refused {
        endpoint: endpoint.to_owned(),
        refusal,
    };
    check_host(host).map_err(refused)?;
    // An address literal needs no resolver (and `[v6]` brackets were removed by the caller).
    let resolved: Vec<SocketAddr> = match host.parse() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::time::timeout(timeout, tokio::net::lookup_host((host, port)))
            .await
            .map_err(|_| SourceError::Timeout(timeout.as_millis() as u64))?
            .map_err(|_| SourceError::Connect {
                endpoint: endpoint.to_owned(),
                message: "the host name could not be resolved".into(),
            })?
            .collect(),
    };
    policy.filter(resolved).map_err(refused)
}

/// What went wrong with a connection, in words that reveal neither an address nor the operating
/// system's text (which differs between "closed" and "filtered" in ways a scanner reads).
pub fn io_category(e: &io::Error) -> &'static str {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused",
        io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted => "connection reset",
        io::ErrorKind::TimedOut => "timed out",
        io::ErrorKind::HostUnreachable => "host unreachable",
        io::ErrorKind::NetworkUnreachable => "network unreachable",
        io::ErrorKind::UnexpectedEof | io::ErrorKind::BrokenPipe => "connection closed",
        _ => "connection failed",
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn a_name_resolving_to_loopback_is_refused_without_its_address() {
        let e = resolve_checked(
            &OutboundPolicy::default(),
            "localhost:5020",
            "localhost",
            5020,
            T,
        )
        .await
        .unwrap_err();
        let text = e.to_string();
        assert_eq!(
            text,
            "connection to localhost:5020: refused by the outbound policy: loopback address"
        );
        assert!(
            !text.contains("127.0.0.1") && !text.contains("::1"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn allowed_addresses_are_the_ones_returned() {
        let policy = OutboundPolicy::new(&["127.0.0.1:5020"], &[]).unwrap();
        let addrs = resolve_checked(&policy, "localhost:5020", "localhost", 5020, T)
            .await
            .unwrap();
        assert_eq!(addrs, ["127.0.0.1:5020".parse::<SocketAddr>().unwrap()]);
        let e = resolve_checked(&policy, "[::1]:5020", "::1", 5020, T)
            .await
            .unwrap_err();
        assert!(e.to_string().ends_with("loopback address"), "{e}");
    }

    #[tokio::test]
    async fn a_host_with_a_line_break_never_reaches_the_resolver() {
        let e = resolve_checked(
            &OutboundPolicy::unrestricted(),
            "x",
            "plc\r\nHost: evil",
            502,
            T,
        )
        .await
        .unwrap_err();
        assert!(e.to_string().ends_with("malformed host name"), "{e}");
    }

    #[tokio::test]
    async fn an_unknown_name_says_so_without_the_resolvers_text() {
        let e = resolve_checked(
            &OutboundPolicy::default(),
            "nowhere.invalid:502",
            "nowhere.invalid",
            502,
            T,
        )
        .await
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "connection to nowhere.invalid:502: the host name could not be resolved"
        );
    }
}
