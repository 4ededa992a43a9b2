//! rustls configuration for QUIC listeners and links and for RawSocket over TLS over TCP: node
//! identities (PEM files or self-signed), server and client configs, certificate pinning by
//! SHA-256 fingerprint, and reading the node id a mesh certificate carries.
//!
//! Every config is built on the ring provider explicitly (`builder_with_provider`), so nothing
//! depends on a process-wide default provider being installed.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use sha2::{Digest, Sha256};

/// The ALPN token of WAMP over QUIC (the one xconn-go's experimental binding uses).
pub const ALPN_QUIC: &[u8] = b"wamp.2.quic";

/// Why TLS material could not be loaded or a TLS config built. File errors name the file; key
/// material is never part of a message.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: no PEM certificate found", path.display())]
    NoCertificate { path: PathBuf },
    #[error("{}: no PEM private key found (PKCS#8, PKCS#1 or SEC1 expected)", path.display())]
    NoPrivateKey { path: PathBuf },
    #[error("cannot generate a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("invalid CA certificate: {0}")]
    CaCertificate(rustls::Error),
    #[error("invalid certificate fingerprint {0:?}: expected the SHA-256 of the certificate as 64 hex digits")]
    Fingerprint(String),
    #[error("cannot build the certificate verifier: {0}")]
    Verifier(#[from] rustls::client::VerifierBuilderError),
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// The crypto provider of every wampmesh TLS config: ring.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A certificate chain (end-entity first) and its private key: what a node presents, as a
/// server to clients and as a client to the peers it links to.
#[derive(Debug)]
pub struct Identity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

impl Clone for Identity {
    fn clone(&self) -> Self {
        Identity {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl Identity {
    /// Loads a PEM certificate chain and a PEM private key.
    pub fn load(cert: &Path, key: &Path) -> Result<Identity, TlsError> {
        let chain = load_certs(cert)?;
        let pem = read(key)?;
        let key = rustls_pemfile::private_key(&mut pem.as_slice())
            .map_err(|source| TlsError::Read {
                path: key.to_owned(),
                source,
            })?
            .ok_or_else(|| TlsError::NoPrivateKey {
                path: key.to_owned(),
            })?;
        Ok(Identity { chain, key })
    }

    /// A fresh self-signed certificate (ECDSA P-256) for `names` (DNS SANs; the first is also
    /// the subject CN, i.e. the node id) plus IP SANs 127.0.0.1 and ::1. Clients trust it by
    /// fingerprint.
    pub fn self_signed(names: &[&str]) -> Result<Identity, TlsError> {
        let mut sans: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        sans.extend(["127.0.0.1".to_owned(), "::1".to_owned()]);
        let mut params = rcgen::CertificateParams::new(sans)?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(
            rcgen::DnType::CommonName,
            names.first().copied().unwrap_or("wampmesh"),
        );
        set_validity(&mut params, 10 * 365);
        let key_pair = rcgen::KeyPair::generate()?;
        let cert = params.self_signed(&key_pair)?;
        let key = PrivatePkcs8KeyDer::from(key_pair.serialize_der());
        Ok(Identity {
            chain: vec![cert.der().clone()],
            key: key.into(),
        })
    }

    /// The SHA-256 fingerprint of the end-entity certificate (lowercase hex): what a client pins
    /// with [`ServerTrust::Fingerprint`].
    pub fn fingerprint(&self) -> String {
        self.chain.first().map(fingerprint).unwrap_or_default()
    }
}

/// Sets a certificate's validity to one hour ago (clock skew) .. `days` from now.
pub(crate) fn set_validity(params: &mut rcgen::CertificateParams, days: u64) {
    let now = std::time::SystemTime::now();
    params.not_before = (now - std::time::Duration::from_secs(3600)).into();
    params.not_after = (now + std::time::Duration::from_secs(days * 86_400)).into();
}

/// Loads every certificate of a PEM file (a CA file may hold several).
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let certs = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Read {
            path: path.to_owned(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

/// The SHA-256 of a certificate's DER, lowercase hex.
pub fn fingerprint(cert: &CertificateDer<'_>) -> String {
    hex::encode(Sha256::digest(cert.as_ref()))
}

/// How a client decides to trust the server.
#[derive(Debug, Clone)]
pub enum ServerTrust {
    /// The server's chain must lead to one of these CA certificates and name the server name.
    Ca(Vec<CertificateDer<'static>>),
    /// The server's end-entity certificate must have this SHA-256 fingerprint (hex; colons and
    /// case are ignored); its names and issuer are not checked. For self-signed nodes.
    Fingerprint(String),
}

fn root_store(certs: &[CertificateDer<'static>]) -> Result<Arc<RootCertStore>, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots.add(cert.clone()).map_err(TlsError::CaCertificate)?;
    }
    Ok(Arc::new(roots))
}

/// The server side. `client_ca` Some: every client must present a certificate chaining to it
/// (listeners that accept router links); None: no client authentication. TLS 1.2 and 1.3 are
/// offered (QUIC negotiates 1.3); no 0-RTT (`max_early_data_size` stays 0, which quinn accepts).
pub fn server_config(
    identity: &Identity,
    client_ca: Option<&[CertificateDer<'static>]>,
    alpn: &[&[u8]],
) -> Result<rustls::ServerConfig, TlsError> {
    let provider = provider();
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(rustls::ALL_VERSIONS)?;
    let builder = match client_ca {
        Some(ca) => builder.with_client_cert_verifier(
            WebPkiClientVerifier::builder_with_provider(root_store(ca)?, provider).build()?,
        ),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(identity.chain.clone(), identity.key.clone_key())?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

/// The client side: how the server is trusted, and the certificate this client presents (router
/// links present the node's identity).
pub fn client_config(
    trust: &ServerTrust,
    identity: Option<&Identity>,
    alpn: &[&[u8]],
) -> Result<rustls::ClientConfig, TlsError> {
    let provider = provider();
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(rustls::ALL_VERSIONS)?;
    let builder = match trust {
        ServerTrust::Ca(ca) => builder.with_webpki_verifier(
            WebPkiServerVerifier::builder_with_provider(root_store(ca)?, provider).build()?,
        ),
        ServerTrust::Fingerprint(expected) => {
            let verifier = PinnedServerVerifier {
                fingerprint: normalize_fingerprint(expected)?,
                provider,
            };
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(verifier))
        }
    };
    let mut config = match identity {
        Some(identity) => {
            builder.with_client_auth_cert(identity.chain.clone(), identity.key.clone_key())?
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

/// Lowercase hex without separators, or an error if it is not a SHA-256.
fn normalize_fingerprint(text: &str) -> Result<String, TlsError> {
    let hex: String = text
        .chars()
        .filter(|c| *c != ':')
        .collect::<String>()
        .to_ascii_lowercase();
    if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(hex)
    } else {
        Err(TlsError::Fingerprint(text.to_owned()))
    }
}

/// Accepts exactly the server certificate with the pinned SHA-256, whatever its names; the
/// handshake signatures are still verified, so the server must hold the certificate's key.
struct PinnedServerVerifier {
    fingerprint: String,
    provider: Arc<CryptoProvider>,
}

impl fmt::Debug for PinnedServerVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PinnedServerVerifier")
            .field("fingerprint", &self.fingerprint)
            .finish()
    }
}

impl ServerCertVerifier for PinnedServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if fingerprint(end_entity) == self.fingerprint {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The node id a mesh certificate carries: its subject CN (as `wampmesh certs` writes it),
/// else its first DNS SAN. None for an unparsable certificate, or when the name is empty or holds
/// anything but printable ASCII (it ends up in logs and link checks).
pub fn peer_node_id(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let common_name = parsed
        .subject()
        .iter_common_name()
        .find_map(|cn| cn.as_str().ok());
    let name = common_name.or_else(|| {
        let sans = parsed.subject_alternative_name().ok()??;
        sans.value.general_names.iter().find_map(|name| match name {
            x509_parser::extensions::GeneralName::DNSName(dns) => Some(*dns),
            _ => None,
        })
    })?;
    let printable = !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic());
    printable.then(|| name.to_owned())
}

#[cfg(test)]
mod tests;
