//! The TLS files and the password as a connection uses them.
//!
//! They are read again at every connection, so that files replaced in place (a renewed
//! certificate, a rotated password) are picked up by the next reconnect without a SIGHUP. The
//! last version read successfully is kept in memory, so that a file broken while the daemon
//! runs (a half-copied certificate, a SIGHUP refused because of it) does not cut the daemon off
//! from etcd at its next reconnect: it connects with what worked and says why, once per
//! connection. What "the same files" means is the settings that name them, so a configuration
//! that names other files starts with nothing kept.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use etcd_client::TlsOptions;
use tracing::warn;

use super::{credentials, tls, EtcdError};
use crate::config::{EtcdSettings, Password};

/// What a connection needs from files and secret stores.
#[derive(Clone)]
pub struct Material {
    /// The TLS options with every file loaded; `None` for `http://` endpoints.
    pub tls: Option<TlsOptions>,
    /// The user and their password, when one is configured.
    pub login: Option<(String, Password)>,
}

/// The last good [`Material`] by the settings that name its sources.
static LAST_GOOD: LazyLock<Mutex<HashMap<String, Material>>> = LazyLock::new(Default::default);

/// Reads every file now and fails on any problem (start and SIGHUP: the operator's to fix);
/// on success it becomes the version a later [`for_connection`] falls back to.
pub async fn read(settings: &EtcdSettings) -> Result<Material, EtcdError> {
    let material = read_now(settings).await?;
    remember(settings, &material);
    Ok(material)
}

/// Reads every file now; when that fails and the same sources were read successfully before,
/// warns and returns that version instead.
pub async fn for_connection(settings: &EtcdSettings) -> Result<Material, EtcdError> {
    match read_now(settings).await {
        Ok(material) => {
            remember(settings, &material);
            Ok(material)
        }
        Err(e) => {
            let kept = lock().get(&sources(settings)).cloned();
            match kept {
                Some(material) => {
                    warn!("{e}; connecting with the version read before");
                    Ok(material)
                }
                None => Err(e),
            }
        }
    }
}

async fn read_now(settings: &EtcdSettings) -> Result<Material, EtcdError> {
    let tls = tls::options(settings)?;
    let login = match &settings.username {
        Some(user) => Some((user.clone(), password(settings, user).await?)),
        None => None,
    };
    Ok(Material { tls, login })
}

/// The password, read off the async threads: the keyring speaks D-Bus synchronously.
async fn password(settings: &EtcdSettings, user: &str) -> Result<Password, EtcdError> {
    let (settings, user) = (settings.clone(), user.to_owned());
    Ok(
        tokio::task::spawn_blocking(move || credentials::password(&settings, &user))
            .await
            .expect("reading the password panicked")?,
    )
}

fn remember(settings: &EtcdSettings, material: &Material) {
    lock().insert(sources(settings), material.clone());
}

fn lock() -> std::sync::MutexGuard<'static, HashMap<String, Material>> {
    // A panic while holding the map cannot leave it half-updated (one insert or one get).
    LAST_GOOD.lock().unwrap_or_else(|e| e.into_inner())
}

/// The settings that say where the material comes from (never the password itself: an
/// inline password is its own source and is only compared through `Debug`, which redacts it).
fn sources(s: &EtcdSettings) -> String {
    format!(
        "{:?}",
        (
            &s.ca_file,
            &s.client_cert,
            &s.server_name,
            &s.username,
            &s.password_file,
            &s.password_credential,
            s.password_keyring,
            s.endpoints.iter().any(|e| e.starts_with("https://")),
        )
    )
}
