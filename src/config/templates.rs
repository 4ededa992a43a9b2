//! TOML pieces that the demo, the bench, the examples and the tests all write: a node with the
//! certificates `wampmesh certs` puts in a directory, a realm open to anonymous clients, and a
//! link. They are text on purpose: what they produce is the documented config format, parsed by
//! [`super::Config::from_toml_str`] like any file an operator writes.

use std::path::Path;

/// `[node]` and `[tls]` of node `id`, with `ca.pem`, `<id>.pem` and `<id>.key` from `dir`.
pub fn node_tls(dir: &Path, id: &str) -> String {
    let dir = dir.display();
    format!(
        "[node]\nid = \"{id}\"\n[tls]\nca = \"{dir}/ca.pem\"\ncert = \"{dir}/{id}.pem\"\nkey = \"{dir}/{id}.key\"\n"
    )
}

/// A realm in which anonymous clients may call, register, publish and subscribe anything.
pub fn open_realm(name: &str) -> String {
    format!(
        r#"[[realm]]
name = "{name}"
[[realm.role]]
name = "anonymous"
permissions = [{{ uri = "", match = "prefix", call = true, register = true, publish = true, subscribe = true }}]
"#
    )
}

/// A `[[link]]` of `realms` to `peer` at `address` (QUIC, the default transport);
/// `reconnect` is the TOML value of that key (`"\"manual\""`, `"{ initial_ms = 50, max_ms = 500 }"`),
/// `None` for the default policy.
pub fn link(peer: &str, address: &str, realms: &[&str], reconnect: Option<&str>) -> String {
    let realms: Vec<String> = realms.iter().map(|r| format!("\"{r}\"")).collect();
    let mut text = format!(
        "[[link]]\npeer = \"{peer}\"\naddress = \"{address}\"\nrealms = [{}]\n",
        realms.join(", ")
    );
    if let Some(reconnect) = reconnect {
        text.push_str(&format!("reconnect = {reconnect}\n"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pieces_make_a_valid_config() {
        let dir = Path::new("/certs");
        let text = format!(
            "{}[[listen]]\ntransport = \"tcp\"\naddress = \"127.0.0.1:0\"\n{}{}",
            node_tls(dir, "a"),
            open_realm("realm1"),
            link("b", "127.0.0.1:9443", &["realm1"], Some("\"manual\""))
        );
        let config = super::super::Config::from_toml_str(&text).expect("valid");
        assert_eq!(config.node.id, "a");
        assert_eq!(config.realm[0].name, "realm1");
        assert_eq!(config.link.len(), 1);
        assert_eq!(config.link[0].peer, "b");
    }
}
