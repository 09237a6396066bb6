//! Manual interop probe against a running DHT node (e.g. an Archivist node on 127.0.0.1):
//!
//! ```text
//! cargo run -p neverust-disc --example probe -- <spr:...> find <cid>...
//! cargo run -p neverust-disc --example probe -- <spr:...> announce <cid> <tcp-port> [seconds]
//! ```
//!
//! `find` bootstraps from the record and prints the providers of each CID; `announce`
//! bootstraps, announces this probe as a provider of the CID (listing 127.0.0.1:<tcp-port>)
//! and stays up for `seconds` so the DHT can be queried about it. Not used by tests.

use std::time::Duration;

use cid::Cid;
use libp2p::identity::Keypair;
use neverust_disc::Discovery;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [spr, command, rest @ ..] = args.as_slice() else {
        anyhow::bail!(
            "usage: probe <spr> find <cid>... | probe <spr> announce <cid> <tcp-port> [seconds]"
        );
    };
    let tcp_port: u16 = match (command.as_str(), rest) {
        ("announce", [_, port, ..]) => port.parse()?,
        _ => 1,
    };
    let dht = Discovery::start(
        Keypair::generate_secp256k1(),
        "127.0.0.1:0".parse()?,
        vec![format!("/ip4/127.0.0.1/tcp/{tcp_port}").parse()?],
    )
    .await?;
    println!("probe peer id {}", dht.peer_id());
    println!("probe dht spr {}", dht.local_spr());
    let size = dht.bootstrap(spr).await?;
    println!("bootstrapped: routing table holds {size} node(s)");
    match (command.as_str(), rest) {
        ("find", cids) => {
            for text in cids {
                let cid = Cid::try_from(text.as_str())?;
                let found = dht.find_providers(&cid.to_bytes()).await?;
                println!("providers of {text}: {}", found.len());
                for (peer, addrs) in found {
                    println!("  {peer} {addrs:?}");
                }
            }
        }
        ("announce", [text, _, seconds @ ..]) => {
            let cid = Cid::try_from(text.as_str())?;
            let told = dht.add_provider(&cid.to_bytes()).await?;
            println!(
                "announced {text} to {told} node(s); provider spr {}",
                dht.provider_spr()
            );
            let secs: u64 = seconds
                .first()
                .map(|s| s.parse())
                .transpose()?
                .unwrap_or(60);
            tokio::time::sleep(Duration::from_secs(secs)).await;
        }
        _ => anyhow::bail!("unknown command {command}"),
    }
    Ok(())
}
