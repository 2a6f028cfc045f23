//! The pool: a few connections, the first opened at connect, the others only when calls
//! overlap; a call takes the idle one (else an unopened one, else the least busy), and a
//! connection that closed or was retired is opened again.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio::sync::Mutex;
use tokio_postgres::{Client, Config};
use tokio_postgres_rustls::MakeRustlsConnect;
use tracing::debug;

use super::{PostgresCoordinator, RECONNECT_DEADLINE};
use crate::error::Error;

/// One connection of a coordinator's pool, and how many calls are on it.
pub(super) struct Slot {
    pub(super) client: Mutex<Option<Arc<Client>>>,
    /// Whether it holds a connection (it may have closed since).
    pub(super) opened: AtomicBool,
    pub(super) busy: AtomicUsize,
}

impl Slot {
    pub(super) fn open(client: Client) -> Slot {
        Slot {
            client: Mutex::new(Some(Arc::new(client))),
            opened: AtomicBool::new(true),
            busy: AtomicUsize::new(0),
        }
    }

    pub(super) fn unopened() -> Slot {
        Slot {
            client: Mutex::new(None),
            opened: AtomicBool::new(false),
            busy: AtomicUsize::new(0),
        }
    }
}

/// A call in flight on a slot, counted until dropped.
pub(super) struct Busy<'a>(&'a Slot);

impl<'a> Busy<'a> {
    pub(super) fn on(slot: &'a Slot) -> Busy<'a> {
        slot.busy.fetch_add(1, Ordering::Relaxed);
        Busy(slot)
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Drops the slot's `client` if it is still the one there, so the next call connects again
/// (the server may end a session before the client sees its socket close).
pub(super) async fn forget(slot: &Slot, client: &Arc<Client>) {
    let mut held = slot.client.lock().await;
    if held
        .as_ref()
        .is_some_and(|current| Arc::ptr_eq(current, client))
    {
        *held = None;
    }
}

/// Opens a connection (its driver task spawned, ended when the client is dropped).
pub(super) async fn open(
    config: &Config,
    connector: &MakeRustlsConnect,
) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = config.connect(connector.clone()).await?;
    tokio::spawn(async move {
        if let Err(err) = connection.await {
            debug!(error = %err, "Postgres connection ended");
        }
    });
    Ok(client)
}

impl PostgresCoordinator {
    /// The slot for a call: an open connection with no call on it, else one not opened
    /// yet (overlapping calls open more, up to the pool's size), else the least busy.
    pub(super) fn slot(&self) -> &Slot {
        let idle = self.pool.iter().find(|slot| {
            slot.opened.load(Ordering::Relaxed) && slot.busy.load(Ordering::Relaxed) == 0
        });
        let unopened = || {
            self.pool
                .iter()
                .find(|slot| !slot.opened.load(Ordering::Relaxed))
        };
        let least = || {
            self.pool
                .iter()
                .min_by_key(|slot| slot.busy.load(Ordering::Relaxed))
        };
        match idle.or_else(unopened).or_else(least) {
            Some(slot) => slot,
            // The pool is never empty (it starts with the connection of `connect`).
            None => &self.pool[0],
        }
    }

    /// Forgets every pooled connection: the next call on each slot opens a fresh one. Calls in
    /// flight keep theirs until they end.
    pub(super) async fn forget_all(&self) {
        for slot in self.pool.iter() {
            *slot.client.lock().await = None;
        }
    }

    /// The slot's connection, connecting (again, if it closed).
    pub(super) async fn client(
        &self,
        slot: &Slot,
        operation: &'static str,
    ) -> Result<Arc<Client>, Error> {
        let mut held = slot.client.lock().await;
        if let Some(client) = held.as_ref().filter(|client| !client.is_closed()) {
            return Ok(client.clone());
        }
        let client = tokio::time::timeout(RECONNECT_DEADLINE, open(&self.config, &self.connector))
            .await
            .map_err(|_| self.timeout(operation))?
            .map_err(|err| self.error(operation, &err))?;
        let client = Arc::new(client);
        *held = Some(client.clone());
        slot.opened.store(true, Ordering::Relaxed);
        Ok(client)
    }
}
