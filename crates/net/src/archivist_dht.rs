//! Content routing through Archivist's DHT (`neverust-disc`), beside our Kademlia.
//!
//! Archivist nodes find content only in their own DHT (discv5 with signed peer records and
//! provider records), which libp2p Kademlia cannot reach. A node that runs it too announces
//! what it stores there (a dataset's manifest CID and tree CID, as Archivist does, since an
//! Archivist node looks blocks up by tree CID) and asks it for providers that Kademlia does
//! not know. This module only keeps what was announced (records expire after a day, so they
//! are announced again) and bounds each lookup; the protocol is the `disc` crate's.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use libp2p::identity::Keypair;
use libp2p::{Multiaddr, PeerId};
use neverust_content::Cid;
use neverust_disc::{Discovery, DiscoveryHandle, StartError};

/// Provider records live 24 hours in Archivist's DHT; announcing every 30 minutes keeps
/// ours there through lost packets and nodes that come and go.
const REANNOUNCE_EVERY: Duration = Duration::from_secs(30 * 60);
/// A lookup that walks to silent nodes ends here rather than holding a download.
const LOOKUP_LIMIT: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct ArchivistDht {
    handle: DiscoveryHandle,
    announced: Arc<Mutex<HashSet<Vec<u8>>>>,
}

impl ArchivistDht {
    /// Starts the DHT on `bind` (UDP), announcing `provider_addrs` (our TCP listeners) as
    /// where our content is downloaded from, and re-announces what it was given until the
    /// handle's last clone is dropped.
    pub async fn start(
        keypair: Keypair,
        bind: SocketAddr,
        provider_addrs: Vec<Multiaddr>,
    ) -> Result<ArchivistDht, StartError> {
        let handle = Discovery::start(keypair, bind, provider_addrs).await?;
        let dht = ArchivistDht {
            handle,
            announced: Arc::default(),
        };
        let weak = Arc::downgrade(&dht.announced);
        let handle = dht.handle.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(REANNOUNCE_EVERY);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(announced) = weak.upgrade() else {
                    return;
                };
                let keys: Vec<Vec<u8>> = announced
                    .lock()
                    .expect("dht lock")
                    .iter()
                    .cloned()
                    .collect();
                drop(announced);
                for key in keys {
                    let _ = handle.add_provider(&key).await;
                }
            }
        });
        Ok(dht)
    }

    /// Our DHT record (`spr:…`, naming our UDP address), what other nodes bootstrap from.
    pub fn record(&self) -> String {
        self.handle.local_spr()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.handle.local_addr()
    }

    /// Joins the DHT through a node's record; the routing table's size after.
    pub async fn join(&self, spr: &str) -> Result<usize, neverust_disc::QueryError> {
        self.handle.bootstrap(spr).await
    }

    /// Announces us as a provider of these CIDs, in the background.
    pub fn announce(&self, cids: &[Cid]) {
        for cid in cids {
            let key = cid.to_bytes();
            self.announced.lock().expect("dht lock").insert(key.clone());
            let handle = self.handle.clone();
            tokio::spawn(async move {
                if let Err(e) = handle.add_provider(&key).await {
                    tracing::debug!(error = %e, "announcing in Archivist's DHT failed");
                }
            });
        }
    }

    /// Stops re-announcing `cid`; records elsewhere expire with their TTL.
    pub fn forget(&self, cid: &Cid) {
        self.announced
            .lock()
            .expect("dht lock")
            .remove(&cid.to_bytes());
    }

    /// Providers of `cid` other than us, with the addresses their records give.
    pub async fn find(&self, cid: &Cid) -> Vec<(PeerId, Vec<Multiaddr>)> {
        match tokio::time::timeout(LOOKUP_LIMIT, self.handle.find_providers(&cid.to_bytes())).await
        {
            Ok(Ok(found)) => found,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "provider lookup in Archivist's DHT failed");
                Vec::new()
            }
            Err(_) => Vec::new(),
        }
    }
}
