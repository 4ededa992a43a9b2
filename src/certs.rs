//! `wampmesh certs`: a mesh CA and one certificate per node, written as PEM files.
//!
//! DIR/ca.pem and DIR/ca.key are the CA; DIR/<node>.pem and DIR/<node>.key a node's certificate
//! (subject CN = node id, SANs: the node id, localhost, 127.0.0.1, ::1; usable as TLS server and
//! client, since a node is both ends of its links). Keys are ECDSA P-256, written with mode 0600.
//!
//! If DIR already holds ca.pem and ca.key, that CA is reused and only node files are written, so
//! a node can be added to an existing mesh later. A node's files are overwritten (re-issued).
//! A DIR holding only one of ca.pem / ca.key is refused rather than overwritten.
//!
//! With `--ed25519` (see [`write_ed25519_keys`]) each node also gets a WAMP-Cryptosign key pair.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::transport::tls::set_validity;

mod ed25519;

pub use ed25519::write_ed25519_keys;

/// The subject CN of every mesh CA.
pub const CA_COMMON_NAME: &str = "wampmesh CA";

const CA_VALIDITY_DAYS: u64 = 10 * 365;
const NODE_VALIDITY_DAYS: u64 = 5 * 365;

/// Why mesh certificates could not be written.
#[derive(Debug, thiserror::Error)]
pub enum CertsError {
    #[error("no node ids given")]
    NoNodes,
    #[error("invalid node id {0:?}: use letters, digits, '_' and '-' only")]
    InvalidNodeId(String),
    #[error("node id \"ca\" is reserved: its files would replace the CA's")]
    ReservedNodeId,
    #[error("{}: found only one of ca.pem and ca.key; refusing to overwrite it", dir.display())]
    IncompleteCa { dir: PathBuf },
    #[error("{}: ca.pem does not belong to ca.key, or was not made by `wampmesh certs`", dir.display())]
    ForeignCa { dir: PathBuf },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not a PEM certificate", path.display())]
    BadPem { path: PathBuf },
    #[error("{}: not a PEM private key", path.display())]
    BadKey { path: PathBuf },
    #[error("cannot generate a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("{}: not an Ed25519 seed (64 hex characters); refusing to overwrite it", path.display())]
    BadSeed { path: PathBuf },
}

/// True for a usable node id: non-empty, `[A-Za-z0-9_-]+`.
pub fn is_valid_node_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Writes (or reuses) the CA in `dir` and a certificate for each node; returns the files it
/// wrote, in order.
pub fn write_mesh_certs(dir: &Path, nodes: &[String]) -> Result<Vec<PathBuf>, CertsError> {
    check_node_ids(nodes)?;
    std::fs::create_dir_all(dir).map_err(|source| CertsError::Io {
        path: dir.to_owned(),
        source,
    })?;
    let mut written = Vec::new();
    let ca = load_or_create_ca(dir, &mut written)?;
    for node in nodes {
        let key_pair = rcgen::KeyPair::generate()?;
        let cert = node_params(node)?.signed_by(&key_pair, &ca.cert, &ca.key_pair)?;
        written.push(write_file(
            &dir.join(format!("{node}.pem")),
            &cert.pem(),
            false,
        )?);
        written.push(write_file(
            &dir.join(format!("{node}.key")),
            &key_pair.serialize_pem(),
            true,
        )?);
    }
    Ok(written)
}

/// Refuses an empty list, invalid ids and "ca".
fn check_node_ids(nodes: &[String]) -> Result<(), CertsError> {
    if nodes.is_empty() {
        return Err(CertsError::NoNodes);
    }
    for node in nodes {
        if !is_valid_node_id(node) {
            return Err(CertsError::InvalidNodeId(node.clone()));
        }
        if node.eq_ignore_ascii_case("ca") {
            return Err(CertsError::ReservedNodeId);
        }
    }
    Ok(())
}

/// The CA's parameters. Deterministic (apart from validity), so a CA on disk can be rebuilt as
/// an issuer from its key alone.
fn ca_params() -> rcgen::CertificateParams {
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, CA_COMMON_NAME);
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    set_validity(&mut params, CA_VALIDITY_DAYS);
    params
}

fn node_params(node: &str) -> Result<rcgen::CertificateParams, CertsError> {
    let names = vec![
        node.to_owned(),
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    let mut params = rcgen::CertificateParams::new(names)?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, node);
    params.is_ca = rcgen::IsCa::NoCa;
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        rcgen::ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    set_validity(&mut params, NODE_VALIDITY_DAYS);
    Ok(params)
}

/// The CA as an issuer: its key, and a certificate carrying its name.
struct CertificateAuthority {
    cert: rcgen::Certificate,
    key_pair: rcgen::KeyPair,
}

fn load_or_create_ca(
    dir: &Path,
    written: &mut Vec<PathBuf>,
) -> Result<CertificateAuthority, CertsError> {
    let (cert_path, key_path) = (dir.join("ca.pem"), dir.join("ca.key"));
    match (cert_path.exists(), key_path.exists()) {
        (true, true) => load_ca(dir, &cert_path, &key_path),
        (false, false) => {
            let key_pair = rcgen::KeyPair::generate()?;
            let cert = ca_params().self_signed(&key_pair)?;
            written.push(write_file(&cert_path, &cert.pem(), false)?);
            written.push(write_file(&key_path, &key_pair.serialize_pem(), true)?);
            Ok(CertificateAuthority { cert, key_pair })
        }
        _ => Err(CertsError::IncompleteCa {
            dir: dir.to_owned(),
        }),
    }
}

/// Rebuilds the issuer from ca.key and checks that ca.pem has the same subject and public key,
/// so node certificates issued now chain to the ca.pem the nodes already trust.
fn load_ca(
    dir: &Path,
    cert_path: &Path,
    key_path: &Path,
) -> Result<CertificateAuthority, CertsError> {
    let read = |path: &Path| {
        std::fs::read_to_string(path).map_err(|source| CertsError::Io {
            path: path.to_owned(),
            source,
        })
    };
    let key_pair = rcgen::KeyPair::from_pem(&read(key_path)?).map_err(|_| CertsError::BadKey {
        path: key_path.to_owned(),
    })?;
    let cert = ca_params().self_signed(&key_pair)?;
    let on_disk = rustls_pemfile::certs(&mut read(cert_path)?.as_bytes())
        .next()
        .and_then(Result::ok)
        .ok_or_else(|| CertsError::BadPem {
            path: cert_path.to_owned(),
        })?;
    let (_, on_disk) =
        x509_parser::parse_x509_certificate(on_disk.as_ref()).map_err(|_| CertsError::BadPem {
            path: cert_path.to_owned(),
        })?;
    let (_, rebuilt) =
        x509_parser::parse_x509_certificate(cert.der()).map_err(|_| CertsError::ForeignCa {
            dir: dir.to_owned(),
        })?;
    let same_subject = on_disk.subject().as_raw() == rebuilt.subject().as_raw();
    let same_key = on_disk.public_key().raw == rebuilt.public_key().raw;
    if !(same_subject && same_key) {
        return Err(CertsError::ForeignCa {
            dir: dir.to_owned(),
        });
    }
    Ok(CertificateAuthority { cert, key_pair })
}

/// Writes `contents` to `path` (replacing it); `secret` files get mode 0600 on Unix.
fn write_file(path: &Path, contents: &str, secret: bool) -> Result<PathBuf, CertsError> {
    let fail = |source| CertsError::Io {
        path: path.to_owned(),
        source,
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        if secret {
            options.mode(0o600);
            // An existing file keeps its mode on open: tighten it before writing the key.
            if path.exists() {
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                    .map_err(fail)?;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = secret;
    let mut file = options.open(path).map_err(fail)?;
    file.write_all(contents.as_bytes()).map_err(fail)?;
    file.sync_all().map_err(fail)?;
    Ok(path.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::tls::{self, Identity};
    use rustls::client::danger::ServerCertVerifier;
    use rustls::client::WebPkiServerVerifier;
    use rustls::pki_types::{ServerName, UnixTime};

    fn temp_dir(name: &str) -> PathBuf {
        let unique = format!(
            "wampmesh-certs-{name}-{}-{:?}",
            std::process::id(),
            std::time::Instant::now()
        );
        let dir = std::env::temp_dir().join(unique.replace([' ', ':', '.'], "_"));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn nodes(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn writes_ca_and_node_files_that_chain() {
        let dir = temp_dir("write");
        let files = write_mesh_certs(&dir, &nodes(&["a", "b-2"])).unwrap();
        let names: Vec<_> = files
            .iter()
            .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            ["ca.pem", "ca.key", "a.pem", "a.key", "b-2.pem", "b-2.key"]
        );
        for file in &files {
            assert!(file.exists(), "{}", file.display());
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join("a.key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let ca = tls::load_certs(&dir.join("ca.pem")).unwrap();
        let a = Identity::load(&dir.join("a.pem"), &dir.join("a.key")).unwrap();
        assert_eq!(tls::peer_node_id(&a.chain[0]).as_deref(), Some("a"));
        // The chain verifies as rustls sees it, for the node id and for localhost, not for others.
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca[0].clone()).unwrap();
        let verifier = WebPkiServerVerifier::builder_with_provider(roots.into(), tls::provider())
            .build()
            .unwrap();
        let verify = |name: &str| {
            let name = ServerName::try_from(name.to_owned()).unwrap();
            verifier.verify_server_cert(&a.chain[0], &[], &name, &[], UnixTime::now())
        };
        assert!(verify("a").is_ok());
        assert!(verify("localhost").is_ok());
        assert!(verify("127.0.0.1").is_ok());
        assert!(verify("b-2").is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn reuses_an_existing_ca_when_adding_a_node() {
        let dir = temp_dir("reuse");
        write_mesh_certs(&dir, &nodes(&["a"])).unwrap();
        let ca_before = std::fs::read(dir.join("ca.pem")).unwrap();
        let files = write_mesh_certs(&dir, &nodes(&["c"])).unwrap();
        assert_eq!(files, [dir.join("c.pem"), dir.join("c.key")]);
        assert_eq!(std::fs::read(dir.join("ca.pem")).unwrap(), ca_before);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn refuses_bad_node_ids_and_half_a_ca() {
        let dir = temp_dir("refuse");
        assert!(matches!(
            write_mesh_certs(&dir, &nodes(&["a.b"])),
            Err(CertsError::InvalidNodeId(_))
        ));
        assert!(matches!(
            write_mesh_certs(&dir, &nodes(&["../x"])),
            Err(CertsError::InvalidNodeId(_))
        ));
        assert!(matches!(
            write_mesh_certs(&dir, &nodes(&[""])),
            Err(CertsError::InvalidNodeId(_))
        ));
        assert!(matches!(
            write_mesh_certs(&dir, &nodes(&["ca"])),
            Err(CertsError::ReservedNodeId)
        ));
        assert!(matches!(
            write_mesh_certs(&dir, &[]),
            Err(CertsError::NoNodes)
        ));
        write_mesh_certs(&dir, &nodes(&["a"])).unwrap();
        std::fs::remove_file(dir.join("ca.pem")).unwrap();
        assert!(matches!(
            write_mesh_certs(&dir, &nodes(&["b"])),
            Err(CertsError::IncompleteCa { .. })
        ));
        assert!(dir.join("ca.key").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
