//! Tests of the rustls configs: in-memory handshakes (pinned, CA, mutual TLS) and errors.

use super::*;
use rustls::{ClientConnection, Connection, ServerConnection};

/// Runs a handshake in memory; the first error either side raises ends it.
fn handshake(
    client: rustls::ClientConfig,
    server: rustls::ServerConfig,
    name: &str,
) -> Result<(Connection, Connection), rustls::Error> {
    let name = ServerName::try_from(name.to_owned()).expect("server name");
    let mut client = Connection::from(ClientConnection::new(Arc::new(client), name)?);
    let mut server = Connection::from(ServerConnection::new(Arc::new(server))?);
    for _ in 0..10 {
        if !client.is_handshaking() && !server.is_handshaking() {
            return Ok((client, server));
        }
        transfer(&mut client, &mut server)?;
        transfer(&mut server, &mut client)?;
    }
    panic!("handshake did not finish");
}

fn transfer(from: &mut Connection, to: &mut Connection) -> Result<(), rustls::Error> {
    let mut bytes = Vec::new();
    while from.wants_write() {
        from.write_tls(&mut bytes).expect("write to a Vec");
    }
    let mut rest = bytes.as_slice();
    while !rest.is_empty() {
        to.read_tls(&mut rest).expect("read from a slice");
        to.process_new_packets()?;
    }
    Ok(())
}

fn mesh(name: &str, nodes: &[&str]) -> (PathBuf, Vec<CertificateDer<'static>>) {
    let unique = format!(
        "wampmesh-tls-{name}-{}-{:?}",
        std::process::id(),
        std::time::Instant::now()
    );
    let dir = std::env::temp_dir().join(unique.replace([' ', ':', '.'], "_"));
    let ids: Vec<String> = nodes.iter().map(|n| n.to_string()).collect();
    crate::certs::write_mesh_certs(&dir, &ids).expect("mesh certs");
    let ca = load_certs(&dir.join("ca.pem")).expect("ca");
    (dir, ca)
}

fn node(dir: &Path, id: &str) -> Identity {
    Identity::load(
        &dir.join(format!("{id}.pem")),
        &dir.join(format!("{id}.key")),
    )
    .expect("node identity")
}

#[test]
fn self_signed_pinned_by_fingerprint_handshakes_with_alpn() {
    let server_id = Identity::self_signed(&["node1", "localhost"]).unwrap();
    let server = server_config(&server_id, None, &[ALPN_QUIC]).unwrap();
    let upper = server_id.fingerprint().to_uppercase();
    let trust = ServerTrust::Fingerprint(upper);
    let client = client_config(&trust, None, &[ALPN_QUIC]).unwrap();
    let (client, _) = handshake(client, server, "any-name.invalid").unwrap();
    assert_eq!(client.alpn_protocol(), Some(ALPN_QUIC));
    assert_eq!(peer_node_id(&server_id.chain[0]).as_deref(), Some("node1"));
    assert_eq!(server_id.clone().fingerprint(), server_id.fingerprint());
}

#[test]
fn wrong_or_malformed_fingerprint_is_refused() {
    let server_id = Identity::self_signed(&["node1"]).unwrap();
    let other = Identity::self_signed(&["node1"]).unwrap();
    let server = server_config(&server_id, None, &[]).unwrap();
    let client = client_config(&ServerTrust::Fingerprint(other.fingerprint()), None, &[]).unwrap();
    assert!(handshake(client, server, "node1").is_err());
    let err = client_config(&ServerTrust::Fingerprint("abc".into()), None, &[]).unwrap_err();
    assert!(matches!(err, TlsError::Fingerprint(_)));
}

#[test]
fn configs_are_accepted_by_quinn() {
    let id = Identity::self_signed(&["node1"]).unwrap();
    let server = server_config(&id, None, &[ALPN_QUIC]).unwrap();
    let client = client_config(
        &ServerTrust::Fingerprint(id.fingerprint()),
        Some(&id),
        &[ALPN_QUIC],
    )
    .unwrap();
    assert!(quinn::crypto::rustls::QuicServerConfig::try_from(server).is_ok());
    assert!(quinn::crypto::rustls::QuicClientConfig::try_from(client).is_ok());
}

#[test]
fn ca_signed_mutual_tls_carries_node_ids() {
    let (dir, ca) = mesh("mtls", &["a", "b"]);
    let server = server_config(&node(&dir, "a"), Some(&ca), &[ALPN_QUIC]).unwrap();
    let client = client_config(
        &ServerTrust::Ca(ca.clone()),
        Some(&node(&dir, "b")),
        &[ALPN_QUIC],
    )
    .unwrap();
    let (client, server) = handshake(client, server, "a").unwrap();
    let server_seen = server
        .peer_certificates()
        .and_then(|c| c.first())
        .and_then(peer_node_id);
    let client_seen = client
        .peer_certificates()
        .and_then(|c| c.first())
        .and_then(peer_node_id);
    assert_eq!(
        (server_seen.as_deref(), client_seen.as_deref()),
        (Some("b"), Some("a"))
    );
    // The server name is checked with a CA: "b" is not what a's certificate names.
    let server = server_config(&node(&dir, "a"), None, &[]).unwrap();
    let client = client_config(&ServerTrust::Ca(ca), None, &[]).unwrap();
    assert!(handshake(client, server, "b").is_err());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn server_requiring_client_certs_refuses_other_ca_and_no_cert() {
    let (dir, ca) = mesh("refuse", &["a"]);
    let (other_dir, _) = mesh("other", &["x"]);
    let stranger = node(&other_dir, "x");
    let trust = ServerTrust::Ca(ca.clone());
    let server = server_config(&node(&dir, "a"), Some(&ca), &[]).unwrap();
    assert!(handshake(
        client_config(&trust, Some(&stranger), &[]).unwrap(),
        server.clone(),
        "a"
    )
    .is_err());
    assert!(handshake(client_config(&trust, None, &[]).unwrap(), server, "a").is_err());
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&other_dir);
}

#[test]
fn file_errors_name_the_file() {
    let missing = std::env::temp_dir().join("wampmesh-no-such-dir/node.pem");
    let err = Identity::load(&missing, &missing).unwrap_err().to_string();
    assert!(err.contains("wampmesh-no-such-dir"), "{err}");
    let (dir, _) = mesh("nokey", &["a"]);
    let err = Identity::load(&dir.join("a.pem"), &dir.join("a.pem")).unwrap_err();
    assert!(matches!(err, TlsError::NoPrivateKey { .. }), "{err}");
    let err = load_certs(&dir.join("a.key")).unwrap_err();
    assert!(matches!(err, TlsError::NoCertificate { .. }), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn pinned_verifier_checks_tls12_signatures_too() {
    let server_id = Identity::self_signed(&["node1"]).unwrap();
    let server = server_config(&server_id, None, &[]).unwrap();
    let pinned = PinnedServerVerifier {
        fingerprint: server_id.fingerprint(),
        provider: provider(),
    };
    let client = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(pinned))
        .with_no_client_auth();
    let (client, _) = handshake(client, server, "node1").unwrap();
    assert_eq!(
        client.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
}

#[test]
fn node_id_falls_back_to_the_first_dns_name() {
    let mut params =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "node7".to_owned()]).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    let cert = params
        .self_signed(&rcgen::KeyPair::generate().unwrap())
        .unwrap();
    assert_eq!(peer_node_id(cert.der()).as_deref(), Some("node7"));
    assert_eq!(peer_node_id(&CertificateDer::from(vec![0x30, 0x00])), None);
}
