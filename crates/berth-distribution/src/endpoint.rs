//! Where a registry host is reached, and with which TLS settings, as Docker decides it.
//!
//! ```text
//! docker.io                    <mirrors…> (pull only), then https://registry-1.docker.io
//! localhost, 127.0.0.0/8, ::1  http://<host[:port]>
//! insecure (host[:port]/CIDR)  https://<host> without certificate checks, then http://<host>
//! anything else                https://<host>
//! ```
//!
//! HTTPS trusts the system roots plus, per registry, Docker's certs dir:
//!
//! ```text
//! <certs_dir>/<host[:port]>/
//! ├── *.crt            extra CAs for that registry only
//! └── <name>.cert      a client certificate, with its key in <name>.key
//! ```

use crate::{DistError, Result};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

/// Docker Hub's API endpoint.
pub(crate) const DOCKER_HUB: &str = "https://registry-1.docker.io";

/// One way to reach a registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    /// `https://host[:port]` or `http://…`, no trailing slash.
    pub base: String,
    /// A docker.io mirror: any failure falls through to the next endpoint.
    pub mirror: bool,
    /// HTTPS without certificate verification (an insecure registry).
    pub skip_verify: bool,
}

pub(crate) fn is_loopback(host: &str) -> bool {
    let h = strip_port(host);
    h == "localhost"
        || h.parse::<IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false)
}

/// `host:5000` → `host`, `[::1]:5000` → `::1`.
pub(crate) fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') && p.bytes().all(|c| c.is_ascii_digit()) => h,
        _ => host,
    }
}

fn in_cidr(ip: IpAddr, cidr: &str) -> bool {
    let Some((net, bits)) = cidr.split_once('/') else {
        return false;
    };
    let (Ok(net), Ok(bits)) = (net.parse::<IpAddr>(), bits.parse::<u32>()) else {
        return false;
    };
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) if bits <= 32 => {
            let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
            u32::from(a) & mask == u32::from(b) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(b)) if bits <= 128 => {
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            u128::from(a) & mask == u128::from(b) & mask
        }
        _ => false,
    }
}

/// Whether `host` is listed as insecure: by `host[:port]`, by name, or by a CIDR holding its IP.
pub(crate) fn is_insecure(insecure: &[String], host: &str) -> bool {
    let bare = strip_port(host);
    let ip = bare.parse::<IpAddr>().ok();
    insecure.iter().any(|r| {
        let r = r
            .trim()
            .trim_start_matches("http://")
            .trim_start_matches("https://")
            .trim_end_matches('/');
        r == host || r == bare || ip.map(|ip| in_cidr(ip, r)).unwrap_or(false)
    })
}

/// The endpoints to try for `host`, in order.
pub(crate) fn endpoints(
    host: &str,
    mirrors: &[String],
    insecure: &[String],
    push: bool,
) -> Vec<Endpoint> {
    let ep = |base: String, mirror, skip_verify| Endpoint {
        base,
        mirror,
        skip_verify,
    };
    if host == "docker.io" {
        let mut v = Vec::new();
        // Docker pushes to the Hub itself, never to a mirror.
        if !push {
            for m in mirrors {
                let m = m.trim().trim_end_matches('/');
                if m.is_empty() {
                    continue;
                }
                let m = if m.contains("://") {
                    m.to_string()
                } else {
                    format!("https://{m}")
                };
                let authority = m.split_once("://").map(|x| x.1).unwrap_or("");
                let skip = is_insecure(insecure, authority);
                v.push(ep(m, true, skip));
            }
        }
        v.push(ep(DOCKER_HUB.into(), false, false));
        return v;
    }
    if is_loopback(host) {
        return vec![ep(format!("http://{host}"), false, false)];
    }
    if is_insecure(insecure, host) {
        return vec![
            ep(format!("https://{host}"), false, true),
            ep(format!("http://{host}"), false, false),
        ];
    }
    vec![ep(format!("https://{host}"), false, false)]
}

/// The `host[:port]` of a URL, as certs.d names its directories.
pub(crate) fn authority(url: &str) -> &str {
    let rest = url.split_once("://").map(|x| x.1).unwrap_or(url);
    rest.split(['/', '?', '#']).next().unwrap_or(rest)
}

/// TLS settings for one registry: system roots (unless `skip_verify`) plus its certs.d files.
pub(crate) fn tls_config(
    provider: &Arc<CryptoProvider>,
    system_roots: &rustls::RootCertStore,
    host_dir: Option<&Path>,
    skip_verify: bool,
) -> Result<rustls::ClientConfig> {
    let tls_err = |e: rustls::Error| DistError::Invalid(format!("tls: {e}"));
    let mut roots = system_roots.clone();
    let mut client_auth = None;
    if let Some(dir) = host_dir {
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        names.sort();
        for p in names {
            match p.extension().and_then(|e| e.to_str()) {
                Some("crt") => {
                    let pem = std::fs::read(&p).map_err(|e| DistError::io(&p, e))?;
                    for c in CertificateDer::pem_slice_iter(&pem) {
                        let c =
                            c.map_err(|e| DistError::Invalid(format!("{}: {e}", p.display())))?;
                        roots.add(c).map_err(tls_err)?;
                    }
                }
                Some("cert") => {
                    let key = p.with_extension("key");
                    let pem = std::fs::read(&p).map_err(|e| DistError::io(&p, e))?;
                    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
                        .collect::<std::result::Result<_, _>>()
                        .map_err(|e| DistError::Invalid(format!("{}: {e}", p.display())))?;
                    let key_pem = std::fs::read(&key).map_err(|_| {
                        DistError::Invalid(format!(
                            "missing key {} for certificate {}",
                            key.display(),
                            p.display()
                        ))
                    })?;
                    let k = PrivateKeyDer::from_pem_slice(&key_pem)
                        .map_err(|e| DistError::Invalid(format!("{}: {e}", key.display())))?;
                    client_auth = Some((chain, k));
                }
                _ => {}
            }
        }
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(tls_err)?;
    let builder = if skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider.clone())))
    } else {
        builder.with_root_certificates(roots)
    };
    match client_auth {
        Some((chain, key)) => builder.with_client_auth_cert(chain, key).map_err(tls_err),
        None => Ok(builder.with_no_client_auth()),
    }
}

/// Accepts any server certificate (Docker's `InsecureSkipVerify` for insecure registries);
/// handshake signatures are still checked so the session is at least with the key holder.
#[derive(Debug)]
struct NoVerify(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (host, push, [(base, mirror, skip_verify)])
    type Row = (&'static str, bool, Vec<(String, bool, bool)>);

    fn bases(host: &str, push: bool) -> Vec<(String, bool, bool)> {
        let insecure = [
            "reg.lan:5000".to_string(),
            "10.0.0.0/8".to_string(),
            "plain.lan".to_string(),
            "fd00::/8".to_string(),
        ];
        let mirrors = ["https://mirror.example/".to_string(), "m2.lan:5000".into()];
        endpoints(host, &mirrors, &insecure, push)
            .into_iter()
            .map(|e| (e.base, e.mirror, e.skip_verify))
            .collect()
    }

    fn s(b: &str, m: bool, k: bool) -> (String, bool, bool) {
        (b.to_string(), m, k)
    }

    #[test]
    fn endpoint_table() {
        let table: Vec<Row> = vec![
            (
                "localhost",
                false,
                vec![s("http://localhost", false, false)],
            ),
            (
                "localhost:5000",
                false,
                vec![s("http://localhost:5000", false, false)],
            ),
            (
                "127.0.0.1:5000",
                false,
                vec![s("http://127.0.0.1:5000", false, false)],
            ),
            (
                "127.1.2.3",
                false,
                vec![s("http://127.1.2.3", false, false)],
            ),
            (
                "[::1]:5000",
                false,
                vec![s("http://[::1]:5000", false, false)],
            ),
            (
                "reg.lan:5000",
                false,
                vec![
                    s("https://reg.lan:5000", false, true),
                    s("http://reg.lan:5000", false, false),
                ],
            ),
            (
                "reg.lan:5001",
                false,
                vec![s("https://reg.lan:5001", false, false)],
            ),
            (
                "plain.lan:443",
                false,
                vec![
                    s("https://plain.lan:443", false, true),
                    s("http://plain.lan:443", false, false),
                ],
            ),
            (
                "10.1.2.3:80",
                false,
                vec![
                    s("https://10.1.2.3:80", false, true),
                    s("http://10.1.2.3:80", false, false),
                ],
            ),
            (
                "[fd00::1]:5000",
                false,
                vec![
                    s("https://[fd00::1]:5000", false, true),
                    s("http://[fd00::1]:5000", false, false),
                ],
            ),
            ("11.0.0.1", false, vec![s("https://11.0.0.1", false, false)]),
            ("quay.io", false, vec![s("https://quay.io", false, false)]),
            (
                "docker.io",
                false,
                vec![
                    s("https://mirror.example", true, false),
                    s("https://m2.lan:5000", true, false),
                    s(DOCKER_HUB, false, false),
                ],
            ),
            ("docker.io", true, vec![s(DOCKER_HUB, false, false)]),
        ];
        for (host, push, want) in table {
            assert_eq!(bases(host, push), want, "{host} push={push}");
        }
    }

    #[test]
    fn ports_and_authorities() {
        assert_eq!(strip_port("a.b:5000"), "a.b");
        assert_eq!(strip_port("a.b"), "a.b");
        assert_eq!(strip_port("[::1]:5000"), "::1");
        assert_eq!(strip_port("::1"), "::1");
        assert_eq!(authority("https://h:5000/v2/x?y"), "h:5000");
        assert_eq!(authority("http://[::1]:5000"), "[::1]:5000");
        assert!(in_cidr("10.9.8.7".parse().unwrap(), "10.0.0.0/8"));
        assert!(in_cidr("1.2.3.4".parse().unwrap(), "0.0.0.0/0"));
        assert!(!in_cidr("11.0.0.1".parse().unwrap(), "10.0.0.0/8"));
        assert!(!in_cidr("10.0.0.1".parse().unwrap(), "10.0.0.0/33"));
        assert!(!in_cidr("10.0.0.1".parse().unwrap(), "fd00::/8"));
    }
}
