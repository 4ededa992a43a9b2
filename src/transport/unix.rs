//! RawSocket over Unix domain sockets: the same session code as TCP.

use tokio::net::UnixListener;
use tokio::task::JoinHandle;

use super::{Accept, TransportError};

/// Binds the socket path (removing a stale socket file first) and starts the accept loop.
pub async fn bind(
    path: &str,
    accept: Accept,
) -> Result<(&'static str, String, JoinHandle<()>), TransportError> {
    let fail = |source| TransportError::Bind {
        transport: "unix",
        address: path.to_owned(),
        source,
    };
    if std::fs::symlink_metadata(path)
        .map(|m| std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()))
        .unwrap_or(false)
    {
        std::fs::remove_file(path).map_err(fail)?;
    }
    let listener = UnixListener::bind(path).map_err(fail)?;
    let owned = path.to_owned();
    let task = tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = accept.stop.cancelled() => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        let transport = crate::dict! { "type" => "rawsocket", "protocol" => "unix", "peer" => owned.clone() };
                        let (reader, writer) = stream.into_split();
                        accept.spawn_session(reader, writer, transport);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "unix accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    }
                },
            }
        }
        drop(listener);
        let _ = std::fs::remove_file(&owned);
    });
    Ok(("unix", path.to_owned(), task))
}
