//! The bytes behind a storage request: the client codes its dataset into slots and stores
//! the coded dataset (a manifest with Archivist's erasure and verification fields, so any
//! node can fetch it by CID as a dataset); a host fetches one slot's blocks, or rebuilds a
//! lost slot from any K others, keeps them as leaves of the coded tree (so peers can fetch
//! them from it through blockexc), and answers challenges from them.

use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use neverust_content::manifest::{ErasureInfo, VerificationInfo};
use neverust_content::{
    cid_from_digest, codec, digest_of, sha256, Cid, Digest, Manifest, MerkleProof, MerkleTree,
    BLOCK_SIZE,
};
use neverust_market::erasure::{self, SlotLayout, SLOT_ROOT_CODEC};
use neverust_market::proofs::{self, Challenge, StorageProof};
use neverust_market::request::{ErasureParams, StorageRequest};
use neverust_net::DownloadProgress;
use neverust_store::{BlockStore, LeafRef, StoreError};

use crate::state::NodeState;

/// Multicodec of the root over slot roots (Archivist's `SlotProvingRootCodec`).
pub const VERIFY_ROOT_CODEC: u64 = 0xCD05;
/// How long a slot fetch may go without a block before the slot is rebuilt instead.
const PATIENCE: Duration = Duration::from_secs(10);
/// Archivist's `StrategyType`: `LinearStrategy = 0`, `SteppedStrategy = 1`.
const STEPPED: u32 = 1;
const LINEAR: u32 = 0;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SlotDataError {
    #[error("dataset {0} is not stored here")]
    UnknownDataset(String),
    #[error("block {index} of dataset {cid} is missing here")]
    MissingBlock { cid: String, index: u64 },
    #[error(transparent)]
    Erasure(#[from] erasure::ErasureError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Content(#[from] neverust_content::ContentError),
    #[error("the request's content {cid} is not a coded dataset of {slots} slots: {reason}")]
    NotCoded {
        cid: String,
        slots: u64,
        reason: &'static str,
    },
    #[error("fetching slot {slot}: {reason}")]
    Fetch { slot: u64, reason: String },
    #[error("rebuilt or fetched slot {slot} does not match its root in the manifest")]
    WrongRoot { slot: u64 },
    #[error("store task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// A coded dataset as the client stored it.
pub struct Coded {
    pub manifest_cid: Cid,
    pub tree_cid: Cid,
    pub verify_root: Digest,
}

/// Reads the dataset `cid` from the local store, codes it into `params.nodes` slots and
/// stores the coded dataset (original blocks, zero blocks up to a multiple of K, parity).
/// Holds the dataset in memory while coding.
pub async fn code_dataset(
    state: &Arc<NodeState>,
    cid: Cid,
    params: ErasureParams,
) -> Result<Coded, SlotDataError> {
    let store = state.store.clone();
    tokio::task::spawn_blocking(move || {
        let bytes = store
            .get_block(&cid)?
            .ok_or_else(|| SlotDataError::UnknownDataset(neverust_content::cid_string(&cid)))?;
        let original = Manifest::decode(&bytes)?;
        let count = original.blocks_count();
        let mut blocks = Vec::with_capacity(count as usize);
        for index in 0..count {
            let data = stored_block(&store, &cid, &original.tree_cid, index)?;
            // Coding needs equal blocks: the last one is padded, as Archivist pads it.
            let mut block = data.to_vec();
            block.resize(BLOCK_SIZE, 0);
            blocks.push(block);
        }
        let set = erasure::encode(&blocks, params)?;
        let roots = set.roots();
        let verify_root = set.verify_root();
        let encoded: Vec<&Vec<u8>> = set.slots.iter().flat_map(|s| &s.blocks).collect();
        // The slot trees hashed every coded block already.
        let digests: Vec<Digest> = set.slots.iter().flat_map(|s| s.digests()).collect();
        let tree = MerkleTree::new(digests.clone())?;
        let manifest = Manifest {
            tree_cid: tree.root_cid(),
            dataset_size: (encoded.len() * BLOCK_SIZE) as u64,
            erasure: Some(ErasureInfo {
                ec_k: set.layout.ec_k as u32,
                ec_m: set.layout.ec_m as u32,
                original_tree_cid: original.tree_cid,
                original_dataset_size: original.dataset_size,
                protected_strategy: STEPPED,
                verification: Some(VerificationInfo {
                    verify_root: cid_from_digest(VERIFY_ROOT_CODEC, &verify_root),
                    slot_roots: roots
                        .iter()
                        .map(|r| cid_from_digest(SLOT_ROOT_CODEC, r))
                        .collect(),
                    cell_size: proofs::CELL_SIZE as u32,
                    verifiable_strategy: LINEAR,
                }),
            }),
            ..original.clone()
        };
        let manifest_bytes = Bytes::from(manifest.encode());
        let manifest_cid = manifest.cid();
        let mut upload = store.begin_upload()?;
        let mut leaves = Vec::with_capacity(encoded.len());
        for (i, (block, digest)) in encoded.iter().zip(&digests).enumerate() {
            let block_cid = cid_from_digest(codec::BLOCK, digest);
            upload.put_block(&block_cid, Bytes::copy_from_slice(block))?;
            leaves.push(LeafRef {
                cid: block_cid,
                proof: Bytes::from(tree.proof(i)?.encode()),
            });
        }
        upload.commit(&manifest.tree_cid, leaves, &manifest_cid, manifest_bytes)?;
        Ok(Coded {
            manifest_cid,
            tree_cid: manifest.tree_cid,
            verify_root,
        })
    })
    .await?
}

/// Block `index` of dataset `cid` (whose tree is `tree`), which must be stored here.
fn stored_block(
    store: &Arc<dyn BlockStore>,
    cid: &Cid,
    tree: &Cid,
    index: u64,
) -> Result<Bytes, SlotDataError> {
    let missing = || SlotDataError::MissingBlock {
        cid: neverust_content::cid_string(cid),
        index,
    };
    let leaf = store.get_leaf(tree, index)?.ok_or_else(missing)?;
    store.get_block(&leaf.cid)?.ok_or_else(missing)
}

/// One slot a host keeps: where its blocks are and what proves them.
#[derive(Clone)]
pub struct HeldSlot {
    pub tree: Cid,
    /// The slot's leaves in the coded tree.
    pub range: Range<u64>,
    pub slot_tree: Arc<MerkleTree>,
    /// The slot root's place among all slot roots.
    pub slot_root_proof: MerkleProof,
}

/// The coded dataset's manifest, checked against the request: its slots, its roots.
fn check_coded(
    request: &StorageRequest,
    manifest: &Manifest,
) -> Result<(SlotLayout, Vec<Digest>), SlotDataError> {
    let slots = request.ask.slots;
    let not_coded = |reason| SlotDataError::NotCoded {
        cid: neverust_content::cid_string(&request.content.cid),
        slots,
        reason,
    };
    let erasure = manifest
        .erasure
        .as_ref()
        .ok_or(not_coded("no erasure fields"))?;
    let verification = erasure
        .verification
        .as_ref()
        .ok_or(not_coded("no verification fields"))?;
    if verification.slot_roots.len() as u64 != slots
        || u64::from(erasure.ec_k + erasure.ec_m) != slots
    {
        return Err(not_coded("slot count differs"));
    }
    if digest_of(&verification.verify_root)? != request.content.merkle_root {
        return Err(not_coded("verify root differs from the request's"));
    }
    let roots = verification
        .slot_roots
        .iter()
        .map(digest_of)
        .collect::<Result<Vec<_>, _>>()?;
    if MerkleTree::new(roots.clone())?.root() != request.content.merkle_root {
        return Err(not_coded("slot roots do not make the verify root"));
    }
    let original_blocks = erasure.original_dataset_size.div_ceil(BLOCK_SIZE as u64);
    let params = ErasureParams::new(slots, u64::from(erasure.ec_m))
        .map_err(|_| not_coded("erasure parameters are invalid"))?;
    let layout = SlotLayout::new(original_blocks as usize, BLOCK_SIZE, params)?;
    if (layout.slots() * layout.steps) as u64 != manifest.blocks_count()
        || layout.slot_size() != request.ask.slot_size
    {
        return Err(not_coded("block count differs from the layout"));
    }
    Ok((layout, roots))
}

fn slot_range(layout: &SlotLayout, slot: u64) -> Range<u64> {
    let steps = layout.steps as u64;
    slot * steps..(slot + 1) * steps
}

/// Fetches slot `slot` of the request's coded dataset, or rebuilds it from other slots if
/// its blocks cannot be had, and stores it as leaves of the coded tree.
pub async fn fetch_slot(
    state: &Arc<NodeState>,
    request: &StorageRequest,
    slot: u64,
) -> Result<(HeldSlot, bool), SlotDataError> {
    let fetch_err = |reason: String| SlotDataError::Fetch { slot, reason };
    let cid = request.content.cid;
    let (manifest, manifest_bytes) = crate::network_fetch::manifest(state, cid)
        .await
        .map_err(|e| fetch_err(e.to_string()))?;
    let (layout, roots) = check_coded(request, &manifest)?;
    let range = slot_range(&layout, slot);
    let (leaves, repaired) = match fetch_patiently(state, cid, &manifest, range.clone()).await {
        Ok(fetched) => (
            fetched
                .into_iter()
                .map(|l| (l.cid, l.data, l.proof))
                .collect::<Vec<_>>(),
            false,
        ),
        Err(e) => {
            tracing::info!(
                slot,
                "slot blocks cannot be fetched ({e}); rebuilding from other slots"
            );
            (rebuild(state, cid, &manifest, &layout, slot).await?, true)
        }
    };
    let store = state.store.clone();
    let tree = manifest.tree_cid;
    let start = range.start;
    let slot_root = roots[slot as usize];
    let slot_tree = tokio::task::spawn_blocking(move || {
        let slot_tree = erasure::slot_tree(&leaves.iter().map(|l| &l.1).collect::<Vec<_>>());
        if slot_tree.root() != slot_root {
            return Err(SlotDataError::WrongRoot { slot });
        }
        for (i, (cid, data, proof)) in leaves.into_iter().enumerate() {
            store.put_block(&cid, data)?;
            store.put_leaf(&tree, start + i as u64, LeafRef { cid, proof })?;
        }
        // Stored as Archivist's hosts store it: other hosts repairing a slot fetch it from
        // here when the client is gone.
        store.put_block(&cid, manifest_bytes)?;
        Ok::<_, SlotDataError>(slot_tree)
    })
    .await??;
    let slot_root_proof = MerkleTree::new(roots)?.proof(slot as usize)?;
    Ok((
        HeldSlot {
            tree,
            range,
            slot_tree: Arc::new(slot_tree),
            slot_root_proof,
        },
        repaired,
    ))
}

/// The leaves of `range`, from this node's store if it has them all (a host that lost the
/// race for a slot kept what it fetched, and a network fetch does not count what is here
/// already), else fetched, giving up once no block has arrived for [`PATIENCE`]: a slot
/// whose holders are gone is rebuilt from the others sooner than a download's stall
/// timeout.
async fn fetch_patiently(
    state: &NodeState,
    cid: Cid,
    manifest: &Manifest,
    range: Range<u64>,
) -> Result<Vec<neverust_net::FetchedLeaf>, String> {
    use std::sync::atomic::Ordering;
    let (store, tree, wanted) = (state.store.clone(), manifest.tree_cid, range.clone());
    let local = tokio::task::spawn_blocking(move || local_leaves(&store, tree, wanted)).await;
    if let Ok(Ok(Some(leaves))) = local {
        return Ok(leaves);
    }
    let progress = Arc::new(DownloadProgress::default());
    let fetch = state
        .net
        .fetch_range(cid, manifest, range, progress.clone());
    tokio::pin!(fetch);
    let (mut seen, mut since) = (0, Instant::now());
    loop {
        tokio::select! {
            fetched = &mut fetch => return fetched.map_err(|e| e.to_string()),
            _ = tokio::time::sleep(Duration::from_secs(1)) => {
                let done = progress.blocks_done.load(Ordering::Relaxed);
                if done != seen {
                    (seen, since) = (done, Instant::now());
                } else if since.elapsed() > PATIENCE {
                    return Err(format!("no block arrived for {PATIENCE:?}"));
                }
            }
        }
    }
}

/// Every leaf of `range` under `tree` with its block, if the store holds them all.
fn local_leaves(
    store: &Arc<dyn BlockStore>,
    tree: Cid,
    range: Range<u64>,
) -> Result<Option<Vec<neverust_net::FetchedLeaf>>, StoreError> {
    let mut leaves = Vec::with_capacity((range.end - range.start) as usize);
    for index in range {
        let Some(leaf) = store.get_leaf(&tree, index)? else {
            return Ok(None);
        };
        let Some(data) = store.get_block(&leaf.cid)? else {
            return Ok(None);
        };
        leaves.push(neverust_net::FetchedLeaf {
            index,
            cid: leaf.cid,
            data,
            proof: leaf.proof,
        });
    }
    Ok(Some(leaves))
}

/// Rebuilds slot `lost` from any K of the others, fetched from whoever holds them. Returns
/// its leaves with their proofs in the coded tree (all slots are rebuilt, so the whole
/// tree is known).
async fn rebuild(
    state: &Arc<NodeState>,
    cid: Cid,
    manifest: &Manifest,
    layout: &SlotLayout,
    lost: u64,
) -> Result<Vec<(Cid, Bytes, Bytes)>, SlotDataError> {
    let mut slots: Vec<Option<Vec<Vec<u8>>>> = vec![None; layout.slots()];
    let mut have = 0;
    for other in (0..layout.slots() as u64).filter(|s| *s != lost) {
        if have == layout.ec_k {
            break;
        }
        match fetch_patiently(state, cid, manifest, slot_range(layout, other)).await {
            Ok(leaves) => {
                slots[other as usize] = Some(leaves.into_iter().map(|l| l.data.to_vec()).collect());
                have += 1;
            }
            Err(e) => tracing::info!(slot = other, "cannot fetch slot for a rebuild: {e}"),
        }
    }
    let layout = *layout;
    tokio::task::spawn_blocking(move || {
        let all = erasure::reconstruct(&layout, &slots)?;
        let digests: Vec<Digest> = all.iter().flatten().map(|b| sha256(b)).collect();
        let tree = MerkleTree::new(digests.clone())?;
        let range = slot_range(&layout, lost);
        all.into_iter()
            .nth(lost as usize)
            .expect("every slot is rebuilt")
            .into_iter()
            .zip(range)
            .map(|(block, index)| {
                let cid = cid_from_digest(codec::BLOCK, &digests[index as usize]);
                let proof = Bytes::from(tree.proof(index as usize)?.encode());
                Ok((cid, Bytes::from(block), proof))
            })
            .collect()
    })
    .await?
}

/// The slot this host keeps for `request`, read back from the store (after a restart).
pub async fn held_slot(
    state: &Arc<NodeState>,
    request: &StorageRequest,
    slot: u64,
) -> Result<HeldSlot, SlotDataError> {
    let store = state.store.clone();
    let request = request.clone();
    tokio::task::spawn_blocking(move || {
        let cid = request.content.cid;
        let bytes = store
            .get_block(&cid)?
            .ok_or_else(|| SlotDataError::UnknownDataset(neverust_content::cid_string(&cid)))?;
        let manifest = Manifest::decode(&bytes)?;
        let (layout, roots) = check_coded(&request, &manifest)?;
        let range = slot_range(&layout, slot);
        let mut cell_roots = Vec::with_capacity(layout.steps);
        for index in range.clone() {
            let block = stored_block(&store, &cid, &manifest.tree_cid, index)?;
            cell_roots.push(proofs::cell_root(&block));
        }
        Ok(HeldSlot {
            tree: manifest.tree_cid,
            range,
            slot_tree: Arc::new(MerkleTree::new(cell_roots)?),
            slot_root_proof: MerkleTree::new(roots)?.proof(slot as usize)?,
        })
    })
    .await?
}

/// Answers `challenge` from the slot's stored blocks.
pub async fn prove(
    state: &Arc<NodeState>,
    held: &HeldSlot,
    challenge: Challenge,
) -> Result<StorageProof, proofs::ProofError> {
    let store = state.store.clone();
    let held = held.clone();
    tokio::task::spawn_blocking(move || {
        let block = |pos: u64| -> Option<Vec<u8>> {
            let leaf = store.get_leaf(&held.tree, held.range.start + pos).ok()??;
            store.get_block(&leaf.cid).ok()?.map(|b| b.to_vec())
        };
        proofs::prove(&challenge, &held.slot_tree, &held.slot_root_proof, block)
    })
    .await
    .expect("proving does not panic")
}
