//! Known answers from scripts/golden_content.py (an independent Python computation): the
//! exact CIDs, tree roots, proof bytes and manifest bytes Archivist would produce.

use neverust_content::{
    cid_string, sha256, Chunker, Manifest, MerkleProof, MerkleTree, BLOCK_SIZE,
};
use serde_json::Value;

fn golden() -> Value {
    serde_json::from_str(include_str!("golden/content.json")).unwrap()
}

fn input(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

fn digest(hex_str: &str) -> [u8; 32] {
    hex::decode(hex_str).unwrap().try_into().unwrap()
}

#[test]
fn datasets_match_block_by_block_and_byte_for_byte() {
    for ds in golden()["datasets"].as_array().unwrap() {
        let size = ds["size"].as_u64().unwrap() as usize;
        let mut chunker = Chunker::new(BLOCK_SIZE);
        let mut leaves = Vec::new();
        // Feed in uneven pieces: chunk boundaries must not depend on how bytes arrive.
        for piece in input(size).chunks(10_007) {
            chunker.push(piece, |b| leaves.push(sha256(&b)));
        }
        assert_eq!(chunker.finish(|b| leaves.push(sha256(&b))), size as u64);
        let cids: Vec<String> = leaves
            .iter()
            .map(|d| cid_string(&neverust_content::cid_from_digest(0xCD02, d)))
            .collect();
        let want: Vec<String> = ds["block_cids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        assert_eq!(cids, want, "block CIDs of {size} bytes");

        let tree = MerkleTree::new(leaves.clone()).unwrap();
        assert_eq!(
            cid_string(&tree.root_cid()),
            ds["tree_cid"].as_str().unwrap()
        );
        for (i, hex_proof) in ds["proofs"].as_object().unwrap() {
            let i: usize = i.parse().unwrap();
            let proof = tree.proof(i).unwrap();
            assert_eq!(hex::encode(proof.encode()), hex_proof.as_str().unwrap());
            assert!(proof.verify(&leaves[i], &tree.root()));
        }
        for m in ds["manifests"].as_array().unwrap() {
            let manifest = Manifest::new_dataset(
                tree.root_cid(),
                size as u64,
                m["filename"].as_str().map(String::from),
                m["mimetype"].as_str().map(String::from),
            );
            assert_eq!(hex::encode(manifest.encode()), m["bytes"].as_str().unwrap());
            assert_eq!(cid_string(&manifest.cid()), m["cid"].as_str().unwrap());
            let bytes = hex::decode(m["bytes"].as_str().unwrap()).unwrap();
            assert_eq!(Manifest::decode(&bytes).unwrap(), manifest);
        }
    }
}

#[test]
fn small_trees_match_roots_and_proofs() {
    for t in golden()["trees"].as_array().unwrap() {
        let leaves: Vec<[u8; 32]> = t["leaves"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| digest(v.as_str().unwrap()))
            .collect();
        let tree = MerkleTree::new(leaves.clone()).unwrap();
        let root = digest(t["root"].as_str().unwrap());
        assert_eq!(tree.root(), root);
        for (i, p) in t["proofs"].as_array().unwrap().iter().enumerate() {
            let bytes = hex::decode(p.as_str().unwrap()).unwrap();
            assert_eq!(tree.proof(i).unwrap().encode(), bytes);
            let decoded = MerkleProof::decode(&bytes).unwrap();
            assert!(decoded.verify(&leaves[i], &root));
        }
    }
}
