//! This node's copy of the market's ledger: the books in memory, the log on disk
//! (`market/ledger.jsonl`, one signed action per line, each written and synced before it
//! counts), replayed and checked again at every start.
//!
//! Any copy can send its log on (the keeper sends it to followers): lines are read back
//! from the file by their offsets, so no copy holds its log in memory, and a line goes out
//! as it was written, never serialized again.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::FileExt;
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
    #[error("a market entry does not decode: {0}")]
    Decode(#[from] serde_json::Error),
    #[error("applying an entry was cut short: {0}")]
    Join(#[from] tokio::task::JoinError),
}

struct Replica {
    ledger: MemoryLedger,
    /// Who each address is on the network, from the keys that signed their actions.
    peers: BTreeMap<Address, PeerId>,
    file: File,
    /// Where each entry's line starts in the log, and where the log ends.
    starts: Vec<u64>,
    end: u64,
}

pub struct LedgerCopy {
    dir: PathBuf,
    copy: Mutex<Replica>,
    /// The log, for reading lines back: written lines are never rewritten (only a reset
    /// empties the file, on a follower, which sends its log to nobody).
    reader: File,
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
    pub fn open(dir: &Path, config: MarketConfig) -> Result<Arc<Self>, CopyError> {
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
        // The log is on disk: entries go to the ledger unlogged.
        let mut ledger = MemoryLedger::new(config);
        let mut peers = BTreeMap::new();
        let mut starts = Vec::new();
        let mut end = 0u64;
        if let Ok(f) = File::open(&log_path) {
            for line in BufReader::new(f).split(b'\n') {
                let line = line.map_err(io(&log_path))?;
                let Ok(entry) = SignedAction::from_json_line(&line) else {
                    break;
                };
                learn_peer(&mut peers, &entry);
                if let Err(e) = ledger.apply_unlogged(&entry) {
                    tracing::warn!(
                        seq = starts.len(),
                        "market log entry no longer applies ({e}); the log is cut there"
                    );
                    break;
                }
                starts.push(end);
                end += line.len() as u64 + 1;
            }
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(io(&log_path))?;
        file.set_len(end).map_err(io(&log_path))?;
        let reader = File::open(&log_path).map_err(io(&log_path))?;
        let len = starts.len() as u64;
        if len > 0 {
            tracing::info!(entries = len, "market ledger replayed");
        }
        Ok(Arc::new(LedgerCopy {
            dir: dir.to_path_buf(),
            copy: Mutex::new(Replica {
                ledger,
                peers,
                file,
                starts,
                end,
            }),
            reader,
            events: broadcast::channel(EVENT_BUFFER).0,
            head: watch::channel(len).0,
        }))
    }

    /// Runs `work` on the copy off the async threads: applying syncs the log to disk, and
    /// reading lines back reads it.
    pub async fn blocking<R: Send + 'static>(
        self: &Arc<Self>,
        work: impl FnOnce(&LedgerCopy) -> Result<R, CopyError> + Send + 'static,
    ) -> Result<R, CopyError> {
        let copy = self.clone();
        tokio::task::spawn_blocking(move || work(&copy)).await?
    }

    /// Applies `entry`, an action of this node's or one sent to the keeper, as the next one.
    pub fn apply(&self, entry: SignedAction) -> Result<Arc<Applied>, CopyError> {
        let line = entry.to_json();
        self.apply_logged(entry, line)
    }

    /// Applies one line of another copy's log as the next entry; that line is logged here.
    pub fn apply_line(&self, line: Vec<u8>) -> Result<Arc<Applied>, CopyError> {
        let entry = SignedAction::from_json_line(&line)?;
        self.apply_logged(entry, line)
    }

    /// Refused entries change nothing, on disk or in memory.
    fn apply_logged(
        &self,
        entry: SignedAction,
        mut line: Vec<u8>,
    ) -> Result<Arc<Applied>, CopyError> {
        line.push(b'\n');
        let mut copy = self.copy.lock().expect("ledger lock");
        let outcome = copy.ledger.apply_unlogged(&entry)?;
        learn_peer(&mut copy.peers, &entry);
        if let Err(e) = copy
            .file
            .write_all(&line)
            .and_then(|()| copy.file.sync_data())
        {
            // The books moved but the log did not: the next start replays to the books
            // before this entry, and the keeper sends it again.
            return Err(io(&self.dir.join(LOG))(e));
        }
        let seq = copy.starts.len() as u64;
        let start = copy.end;
        copy.starts.push(start);
        copy.end += line.len() as u64;
        tracing::debug!(
            seq,
            kind = entry.action.kind(),
            ?outcome,
            "market entry applied"
        );
        let applied = Arc::new(Applied { seq, outcome });
        // Under the lock, so every listener hears entries in order; the head first, so a
        // listener woken by the event reads it moved.
        self.head.send_replace(seq + 1);
        let _ = self.events.send(applied.clone());
        Ok(applied)
    }

    /// Starts over, empty, under `config` (a follower whose keeper runs another config).
    pub fn reset(&self, config: MarketConfig) -> Result<(), CopyError> {
        let mut copy = self.copy.lock().expect("ledger lock");
        let (config_path, log_path) = (self.dir.join(CONFIG), self.dir.join(LOG));
        let body = serde_json::to_vec_pretty(&config).expect("config serializes");
        std::fs::write(&config_path, body).map_err(io(&config_path))?;
        copy.file.set_len(0).map_err(io(&log_path))?;
        copy.ledger = MemoryLedger::new(config);
        copy.starts.clear();
        copy.end = 0;
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

    /// The logged lines of up to `max` entries from `from` on, without their line breaks.
    pub fn lines_from(&self, from: u64, max: usize) -> Result<Vec<Vec<u8>>, CopyError> {
        let spans: Vec<(u64, u64)> = {
            let copy = self.copy.lock().expect("ledger lock");
            let from = (from as usize).min(copy.starts.len());
            let to = (from + max).min(copy.starts.len());
            (from..to)
                .map(|i| {
                    let end = copy.starts.get(i + 1).copied().unwrap_or(copy.end);
                    (copy.starts[i], end - 1)
                })
                .collect()
        };
        spans
            .into_iter()
            .map(|(start, end)| {
                let mut line = vec![0u8; (end - start) as usize];
                self.reader
                    .read_exact_at(&mut line, start)
                    .map_err(io(&self.dir.join(LOG)))?;
                Ok(line)
            })
            .collect()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Applied>> {
        self.events.subscribe()
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
        let again = deposit(&key, 101, 7);
        {
            let copy = LedgerCopy::open(dir.path(), config.clone()).unwrap();
            copy.apply(deposit(&key, 100, 5)).unwrap();
            copy.apply(again.clone()).unwrap();
            let refused = copy.apply(deposit(&key, 30, 1)).unwrap_err();
            assert!(
                matches!(refused, CopyError::Refused(LedgerError::TooOld { .. })),
                "{refused}"
            );
            let twice = copy.apply(again.clone()).unwrap_err();
            assert!(
                matches!(twice, CopyError::Refused(LedgerError::Replayed { seq: 1 })),
                "the same signed action is not applied twice: {twice}"
            );
            // JSON allows a line break between tokens; the log does not.
            let mut split = deposit(&key, 101, 1).to_json();
            split.insert(1, b'\n');
            let broken = copy.apply_line(split).unwrap_err();
            assert!(matches!(broken, CopyError::Decode(_)), "{broken}");
            assert_eq!(copy.entries(), 2);
        }
        // A crash in the middle of a write leaves half a line.
        let mut f = OpenOptions::new()
            .append(true)
            .open(dir.path().join(LOG))
            .unwrap();
        f.write_all(b"{\"actor\":\"08").unwrap();
        drop(f);

        let copy = LedgerCopy::open(dir.path(), config.clone()).unwrap();
        assert_eq!(copy.entries(), 2);
        assert_eq!(copy.read(|l| l.balance(&who)), 12);
        assert_eq!(copy.peer_of(&who), Some(key.public().to_peer_id()));
        let lines = copy.lines_from(1, 10).unwrap();
        assert_eq!(lines.len(), 1, "entries 1.. of 2");
        assert_eq!(
            lines[0],
            again.to_json(),
            "a line goes out as it was logged"
        );
        copy.apply(deposit(&key, 102, 1)).unwrap();
        drop(copy);
        let copy = LedgerCopy::open(dir.path(), config.clone()).unwrap();
        assert_eq!(
            copy.entries(),
            3,
            "the torn line was cut before the next append"
        );

        let other = MarketConfig {
            proof_timeout: 1,
            ..config
        };
        let copy = LedgerCopy::open(dir.path(), other).unwrap();
        assert_eq!(
            copy.entries(),
            0,
            "a log kept under another config does not replay"
        );
        assert!(dir.path().join("ledger.jsonl.other-config").exists());
    }
}
