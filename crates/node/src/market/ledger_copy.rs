//! This node's copy of the market's ledger: the books in memory, the log on disk
//! (`market/ledger.jsonl`, one signed action per line, each written and synced before it
//! counts), replayed and checked again at every start.
//!
//! The keeper's copy also keeps the log in memory, to send followers what they missed;
//! a follower's keeps only the books.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use libp2p::identity::PublicKey;
use libp2p::PeerId;
use neverust_market::ids::Address;

use neverust_market::ledger::{
    LedgerError, MarketConfig, MarketState, MemoryLedger, Outcome, SignedAction,
};
use tokio::sync::{broadcast, watch};

/// One applied entry, as agents hear of it.
#[derive(Debug)]
pub struct Applied {
    pub seq: u64,
    pub entry: Arc<SignedAction>,
    pub outcome: Outcome,
}

#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("market ledger file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Refused(#[from] LedgerError),
    /// The very same signed action was applied before, as entry `seq`.
    #[error("the action is entry {seq} already")]
    Duplicate { seq: u64 },
}

struct Replica {
    ledger: MemoryLedger,
    /// Who each address is on the network, from the keys that signed their actions.
    peers: BTreeMap<Address, PeerId>,
    /// The latest entries by signature, so a resubmitted action is recognised.
    recent: Recent,
    file: File,
    /// Every entry, for followers (the keeper only).
    kept: Option<Vec<Arc<SignedAction>>>,
    len: u64,
}

pub struct LedgerCopy {
    dir: PathBuf,
    copy: Mutex<Replica>,
    events: broadcast::Sender<Arc<Applied>>,
    head: watch::Sender<u64>,
}

const LOG: &str = "ledger.jsonl";
const CONFIG: &str = "config.json";
/// Entries an agent may lag behind before it must catch up from the books.
const EVENT_BUFFER: usize = 4096;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CopyError + '_ {
    move |source| CopyError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl LedgerCopy {
    /// Opens the copy in `dir`, replaying its log if it was kept under the same config
    /// (a log under another config would not replay to the same books: it is set aside).
    /// A last line cut short by a crash is dropped; so is anything after an entry that no
    /// longer applies.
    pub fn open(dir: &Path, config: MarketConfig, keep: bool) -> Result<Arc<Self>, CopyError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let (config_path, log_path) = (dir.join(CONFIG), dir.join(LOG));
        let same_config = std::fs::read(&config_path)
            .ok()
            .and_then(|b| serde_json::from_slice::<MarketConfig>(&b).ok())
            .is_some_and(|c| c == config);
        if !same_config {
            if log_path.exists() {
                let aside = dir.join(format!("{LOG}.other-config"));
                std::fs::rename(&log_path, &aside).map_err(io(&log_path))?;
                tracing::warn!(path = %aside.display(), "market log kept under another config set aside");
            }
            let body = serde_json::to_vec_pretty(&config).expect("config serializes");
            std::fs::write(&config_path, body).map_err(io(&config_path))?;
        }
        // The log is on disk, and in `kept` on the keeper: entries go to the ledger unlogged.
        let mut ledger = MemoryLedger::new(config);
        let mut kept = keep.then(Vec::new);
        let mut peers = BTreeMap::new();
        let mut recent = Recent::default();
        let mut good_bytes = 0u64;
        let mut len = 0u64;
        if let Ok(f) = File::open(&log_path) {
            for line in BufReader::new(f).split(b'\n') {
                let line = line.map_err(io(&log_path))?;
                let Ok(entry) = serde_json::from_slice::<SignedAction>(&line) else {
                    break;
                };
                learn_peer(&mut peers, &entry);
                recent.insert(&entry, len);
                if let Err(e) = ledger.apply_unlogged(&entry) {
                    tracing::warn!(
                        seq = len,
                        "market log entry no longer applies ({e}); the log is cut there"
                    );
                    break;
                }
                if let Some(k) = kept.as_mut() {
                    k.push(Arc::new(entry));
                }
                good_bytes += line.len() as u64 + 1;
                len += 1;
            }
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(io(&log_path))?;
        file.set_len(good_bytes).map_err(io(&log_path))?;
        if len > 0 {
            tracing::info!(entries = len, "market ledger replayed");
        }
        Ok(Arc::new(LedgerCopy {
            dir: dir.to_path_buf(),
            copy: Mutex::new(Replica {
                ledger,
                peers,
                recent,
                file,
                kept,
                len,
            }),
            events: broadcast::channel(EVENT_BUFFER).0,
            head: watch::channel(len).0,
        }))
    }

    /// Applies `entry` as the next one; refused entries change nothing, on disk or in memory.
    pub fn apply(&self, entry: SignedAction) -> Result<Arc<Applied>, CopyError> {
        let mut line = serde_json::to_vec(&entry).expect("actions serialize");
        line.push(b'\n');
        let mut copy = self.copy.lock().expect("ledger lock");
        if let Some(seq) = copy.recent.get(&entry) {
            return Err(CopyError::Duplicate { seq });
        }
        let outcome = copy.ledger.apply_unlogged(&entry)?;
        learn_peer(&mut copy.peers, &entry);
        let path = self.dir.join(LOG);
        if let Err(e) = copy
            .file
            .write_all(&line)
            .and_then(|()| copy.file.sync_data())
        {
            // The books moved but the log did not: the next start replays to the books
            // before this entry, and the keeper sends it again.
            return Err(io(&path)(e));
        }
        let seq = copy.len;
        copy.len += 1;
        copy.recent.insert(&entry, seq);
        let entry = Arc::new(entry);
        if let Some(k) = copy.kept.as_mut() {
            k.push(entry.clone());
        }
        let applied = Arc::new(Applied {
            seq,
            entry,
            outcome,
        });
        // Sent under the lock, so every listener hears entries in order.
        let _ = self.events.send(applied.clone());
        self.head.send_replace(copy.len);
        Ok(applied)
    }

    /// Starts over, empty, under `config` (a follower whose keeper runs another config).
    pub fn reset(&self, config: MarketConfig) -> Result<(), CopyError> {
        let mut copy = self.copy.lock().expect("ledger lock");
        let (config_path, log_path) = (self.dir.join(CONFIG), self.dir.join(LOG));
        let body = serde_json::to_vec_pretty(&config).expect("config serializes");
        std::fs::write(&config_path, body).map_err(io(&config_path))?;
        copy.file.set_len(0).map_err(io(&log_path))?;
        if copy.kept.is_some() {
            copy.kept = Some(Vec::new());
        }
        copy.ledger = MemoryLedger::new(config);
        copy.len = 0;
        self.head.send_replace(0);
        Ok(())
    }

    /// Reads the books.
    pub fn read<R>(&self, f: impl FnOnce(&MemoryLedger) -> R) -> R {
        f(&self.copy.lock().expect("ledger lock").ledger)
    }

    /// The peer behind `address`, if it has acted.
    pub fn peer_of(&self, address: &Address) -> Option<PeerId> {
        self.copy
            .lock()
            .expect("ledger lock")
            .peers
            .get(address)
            .copied()
    }

    pub fn config(&self) -> MarketConfig {
        self.read(|l| l.config().clone())
    }

    /// Entries applied so far.
    pub fn entries(&self) -> u64 {
        *self.head.borrow()
    }

    pub fn watch_len(&self) -> watch::Receiver<u64> {
        self.head.subscribe()
    }

    /// Entries from `from` on (the keeper's copy only; empty otherwise).
    pub fn entries_from(&self, from: u64) -> Vec<Arc<SignedAction>> {
        let copy = self.copy.lock().expect("ledger lock");
        copy.kept
            .as_ref()
            .map(|k| k.iter().skip(from as usize).cloned().collect())
            .unwrap_or_default()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Applied>> {
        self.events.subscribe()
    }
}

/// The sequence numbers of the latest entries by signature.
#[derive(Default)]
struct Recent {
    by_signature: std::collections::HashMap<Vec<u8>, u64>,
    order: std::collections::VecDeque<Vec<u8>>,
}

/// Resubmissions come within seconds: this many entries back is plenty.
const RECENT: usize = 16_384;

impl Recent {
    fn insert(&mut self, entry: &SignedAction, seq: u64) {
        self.by_signature.insert(entry.signature.clone(), seq);
        self.order.push_back(entry.signature.clone());
        if self.order.len() > RECENT {
            if let Some(old) = self.order.pop_front() {
                self.by_signature.remove(&old);
            }
        }
    }

    fn get(&self, entry: &SignedAction) -> Option<u64> {
        self.by_signature.get(&entry.signature).copied()
    }
}

fn learn_peer(peers: &mut BTreeMap<Address, PeerId>, entry: &SignedAction) {
    if let Ok(key) = PublicKey::try_decode_protobuf(&entry.actor) {
        peers.insert(Address::of(&key), key.to_peer_id());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libp2p::identity::Keypair;
    use neverust_market::ledger::Action;

    fn deposit(key: &Keypair, at: u64, amount: u128) -> SignedAction {
        SignedAction::sign(key, at, Action::Deposit { amount })
    }

    #[test]
    fn a_reopened_copy_has_the_same_books_and_drops_a_torn_line() {
        let dir = tempfile::tempdir().unwrap();
        let key = Keypair::generate_ed25519();
        let who = neverust_market::ids::Address::of(&key.public());
        let config = MarketConfig::default();
        {
            let copy = LedgerCopy::open(dir.path(), config.clone(), false).unwrap();
            copy.apply(deposit(&key, 10, 5)).unwrap();
            copy.apply(deposit(&key, 11, 7)).unwrap();
            let refused = copy.apply(deposit(&key, 9, 1)).unwrap_err();
            assert!(matches!(refused, CopyError::Refused(_)), "{refused}");
            let again = deposit(&key, 11, 7);
            let twice = copy.apply(again).unwrap_err();
            assert!(
                matches!(twice, CopyError::Duplicate { .. }),
                "the same signed action is not applied twice: {twice}"
            );
            assert_eq!(copy.entries(), 2);
        }
        // A crash in the middle of a write leaves half a line.
        let mut f = OpenOptions::new()
            .append(true)
            .open(dir.path().join(LOG))
            .unwrap();
        f.write_all(b"{\"actor\":\"08").unwrap();
        drop(f);

        let copy = LedgerCopy::open(dir.path(), config.clone(), true).unwrap();
        assert_eq!(copy.entries(), 2);
        assert_eq!(copy.read(|l| l.balance(&who)), 12);
        assert_eq!(copy.peer_of(&who), Some(key.public().to_peer_id()));
        assert_eq!(copy.entries_from(1).len(), 1);
        copy.apply(deposit(&key, 12, 1)).unwrap();
        drop(copy);
        let copy = LedgerCopy::open(dir.path(), config.clone(), false).unwrap();
        assert_eq!(
            copy.entries(),
            3,
            "the torn line was cut before the next append"
        );

        let other = MarketConfig {
            proof_timeout: 1,
            ..config
        };
        let copy = LedgerCopy::open(dir.path(), other, false).unwrap();
        assert_eq!(
            copy.entries(),
            0,
            "a log kept under another config does not replay"
        );
        assert!(dir.path().join("ledger.jsonl.other-config").exists());
    }
}
