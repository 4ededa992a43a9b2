//! `wampmesh certs --ed25519`: a WAMP-Cryptosign key pair per node (or client): DIR/<id>.ed25519
//! holds the private seed (64 hex characters, mode 0600), DIR/<id>.ed25519.pub the public key
//! (64 hex characters and the id as a comment, the authorized-keys line format).
//!
//! An existing seed is kept (its `.pub` is rewritten from it), so running the command again to
//! add a node does not rotate the keys peers have already authorized.

use std::path::{Path, PathBuf};

use super::{check_node_ids, write_file, CertsError};
use crate::cryptosign::CryptosignKey;

/// Writes (or keeps) `DIR/<id>.ed25519` and writes `DIR/<id>.ed25519.pub` for each id; returns
/// the files it wrote, in order.
pub fn write_ed25519_keys(dir: &Path, ids: &[String]) -> Result<Vec<PathBuf>, CertsError> {
    check_node_ids(ids)?;
    std::fs::create_dir_all(dir).map_err(|source| CertsError::Io {
        path: dir.to_owned(),
        source,
    })?;
    let mut written = Vec::new();
    for id in ids {
        let seed_path = dir.join(format!("{id}.ed25519"));
        let key = if seed_path.exists() {
            CryptosignKey::from_file(&seed_path)
                .map_err(|_| CertsError::BadSeed { path: seed_path })?
        } else {
            let key = CryptosignKey::generate();
            let seed = format!("{}\n", key.expose_seed_hex());
            written.push(write_file(&seed_path, &seed, true)?);
            key
        };
        let public = format!("{} {id}\n", key.public_key());
        written.push(write_file(
            &dir.join(format!("{id}.ed25519.pub")),
            &public,
            false,
        )?);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cryptosign::parse_authorized_keys;

    #[test]
    fn writes_a_key_pair_that_matches_and_keeps_it() {
        let dir = std::env::temp_dir().join(format!("wampmesh-ed25519-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let ids = vec!["a".to_owned(), "b".to_owned()];
        let files = write_ed25519_keys(&dir, &ids).unwrap();
        assert_eq!(
            files,
            [
                dir.join("a.ed25519"),
                dir.join("a.ed25519.pub"),
                dir.join("b.ed25519"),
                dir.join("b.ed25519.pub")
            ]
        );
        let key = CryptosignKey::from_file(&dir.join("a.ed25519")).unwrap();
        let public = std::fs::read_to_string(dir.join("a.ed25519.pub")).unwrap();
        assert_eq!(parse_authorized_keys(&public).unwrap(), [key.public_key()]);
        assert_ne!(
            key,
            CryptosignKey::from_file(&dir.join("b.ed25519")).unwrap()
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join("a.ed25519"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // Again: the seed is kept, only the public file is rewritten.
        let again = write_ed25519_keys(&dir, &ids[..1]).unwrap();
        assert_eq!(again, [dir.join("a.ed25519.pub")]);
        assert_eq!(
            CryptosignKey::from_file(&dir.join("a.ed25519")).unwrap(),
            key
        );
        std::fs::write(dir.join("b.ed25519"), "garbage").unwrap();
        assert!(matches!(
            write_ed25519_keys(&dir, &ids[1..]),
            Err(CertsError::BadSeed { .. })
        ));
        assert!(write_ed25519_keys(&dir, &["x/y".to_owned()]).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
