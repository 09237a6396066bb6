//! Archivist's block exchange protocol, `/archivist/blockexc/1.0.0`: wire messages, stream
//! framing, and the engine that serves and receives blocks.

pub mod codec;
pub mod engine;
pub mod message;

pub use engine::{check_delivery, DeliveryError, Engine, WantEvent, WantGuard, PROTOCOL};
pub use message::{
    BlockAddress, BlockDelivery, BlockPresence, Message, Presence, WantEntry, WantType, Wantlist,
    WireError, MAX_MESSAGE_SIZE,
};
