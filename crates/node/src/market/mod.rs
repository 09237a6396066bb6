//! Archivist's storage marketplace on this node (issue 19), without a chain: the market's
//! state lives in a ledger of signed actions that one node keeps in order and every
//! marketplace node follows and checks ([`link`]); the agents act on what it says.
//!
//! - [`purchasing`]: a client codes its dataset into slots, posts the request, settles it;
//! - [`sales`]: a host publishes its availabilities, reserves slots that match, fetches (or
//!   rebuilds) a slot's blocks, fills it with a proof, answers challenges;
//! - [`validator`]: challenges filled slots at random (per `proofProbability`), marks missed
//!   proofs, which frees a slot after `tolerance` of them for another host to repair.
//!
//! The agents are one loop over the books, woken by every new entry and once a second: what
//! they do follows from the books and their own small state, so a restarted node resumes
//! from its copy of the log.

pub mod availabilities;
pub mod ledger_copy;
pub mod link;
pub mod metrics;
pub mod purchasing;
pub mod sales;
pub mod slot_data;
pub mod validator;
pub mod wire;

use std::sync::Arc;
use std::time::Duration;

use libp2p::PeerId;
use neverust_market::ids::Address;
use neverust_market::ledger::MarketConfig;
use tokio::sync::{broadcast::error::RecvError, watch};

use crate::state::NodeState;
use availabilities::Availabilities;
use ledger_copy::LedgerCopy;
use link::LedgerLink;

/// How often the agents look at the books when nothing new arrives.
const ROUND: Duration = Duration::from_secs(1);

/// What `neverust start` says about the market.
#[derive(Clone, Debug)]
pub struct MarketOptions {
    pub config: MarketConfig,
    /// Seconds per proof period: each filled slot is challenged once a period with
    /// probability `1 / proofProbability`.
    pub proof_period: u64,
    /// Whether this node challenges slots (the ledger's keeper always does).
    pub validator: bool,
}

impl Default for MarketOptions {
    fn default() -> Self {
        MarketOptions {
            config: MarketConfig::default(),
            proof_period: 60,
            validator: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MarketStartError {
    #[error(transparent)]
    Copy(#[from] ledger_copy::CopyError),
    #[error(transparent)]
    Availabilities(#[from] availabilities::AvailabilityError),
}

pub struct Market {
    pub link: Arc<LedgerLink>,
    pub me: Address,
    /// Sales and purchases (marketplace mode); `None` on a node that only keeps the ledger.
    pub trader: Option<Trader>,
    pub validator: Option<validator::Validator>,
    pub options: MarketOptions,
}

/// What a marketplace node buys and sells.
pub struct Trader {
    pub availabilities: Availabilities,
    pub sales: sales::Sales,
}

impl Market {
    /// `keeper`: `None` to keep the ledger here, or the peer that keeps it once known.
    pub fn open(
        state_dir: &std::path::Path,
        identity: &crate::identity::Identity,
        control: libp2p_stream::Control,
        keeper: Option<watch::Receiver<Option<PeerId>>>,
        options: MarketOptions,
        trading: bool,
    ) -> Result<Arc<Market>, MarketStartError> {
        let keeps = keeper.is_none();
        let copy = LedgerCopy::open(state_dir, options.config.clone())?;
        let key = identity.keypair().clone();
        let me = Address::of(&key.public());
        let link = LedgerLink::start(copy, key, control, keeper);
        let trader = if trading {
            Some(Trader {
                availabilities: Availabilities::open(state_dir)?,
                sales: sales::Sales::default(),
            })
        } else {
            None
        };
        let validator = (keeps || options.validator).then(validator::Validator::default);
        Ok(Arc::new(Market {
            link,
            me,
            trader,
            validator,
            options,
        }))
    }

    pub fn copy(&self) -> &Arc<LedgerCopy> {
        &self.link.copy
    }

    /// Tops this node's balance up to `amount`: tokens enter the market here (a transfer in,
    /// on a chain), for a client's escrow or a host's collateral.
    pub async fn fund(
        &self,
        amount: neverust_market::request::Amount,
    ) -> Result<(), link::ActError> {
        let have = self.copy().read(|l| {
            use neverust_market::ledger::MarketState;
            l.balance(&self.me)
        });
        if have < amount {
            let deposit = neverust_market::ledger::Action::Deposit {
                amount: amount - have,
            };
            self.link.act(deposit).await?;
        }
        Ok(())
    }
}

/// Runs the agents until the node stops.
pub async fn run_agents(
    state: Arc<NodeState>,
    market: Arc<Market>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut events = market.copy().subscribe();
    let mut ticker = tokio::time::interval(ROUND);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let woken = tokio::select! {
            _ = ticker.tick() => false,
            ev = events.recv() => match ev {
                Ok(_) | Err(RecvError::Lagged(_)) => true,
                Err(RecvError::Closed) => return,
            },
            _ = stopped.wait_for(|s| *s) => return,
        };
        if woken {
            // Let a burst of entries land before looking.
            tokio::time::sleep(Duration::from_millis(20)).await;
            while events.try_recv().is_ok() {}
        }
        round(&state, &market).await;
    }
}

async fn round(state: &Arc<NodeState>, market: &Arc<Market>) {
    let metrics = &state.metrics.market;
    metrics.ledger_entries.set(market.copy().entries() as i64);
    if let Some(trader) = &market.trader {
        sales::round(state, market, trader).await;
        purchasing::round(state, market).await;
    }
    if let Some(v) = &market.validator {
        v.round(state, market).await;
    }
}
