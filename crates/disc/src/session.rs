//! Sessions and handshakes: turns message plaintexts into datagrams for a node and datagrams
//! back into plaintexts, running the WHOAREYOU handshake when there are no keys (discv5
//! "sessions", as archivist-dht's `encoding.nim` and `transport.nim` do it).
//!
//! Sending to a node without a session sends a random "message" packet and remembers the
//! plaintext under that packet's nonce; the node answers WHOAREYOU, and we answer with a
//! handshake packet carrying the plaintext (and our record if the node's copy is older).
//! Further plaintexts for the node wait until then. Receiving a packet we cannot decrypt asks
//! the caller to challenge the sender ([`SessionLayer::challenge`]). Sessions are keyed by
//! node id *and* address, and keep the previous read key, because both sides may start a
//! handshake at once.
//!
//! Memory is bounded: sessions, challenges, in-flight packets and queued plaintexts all have
//! caps, and everything but sessions expires. No sockets and no clock: callers pass `now`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use k256::ecdsa::SigningKey;
use k256::PublicKey;
use rand::RngCore;

use crate::crypto::{
    decode_libp2p_public_key, decrypt_message, derive_keys, ecdh, encode_libp2p_public_key,
    encrypt_message, random_signing_key, sign_id_proof, verify_id_proof, AesKey, GCM_TAG_SIZE,
};
use crate::node_id::NodeId;
use crate::packet::{Authdata, Nonce, Packet, ID_NONCE_SIZE};
use crate::spr::Spr;

/// How long a WHOAREYOU we sent, or a packet that may be answered by one, is remembered.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Clone, Copy, Debug)]
pub struct SessionLimits {
    pub sessions: usize,
    pub challenges: usize,
    pub in_flight: usize,
    pub queued_per_node: usize,
    pub handshaking_nodes: usize,
}

impl Default for SessionLimits {
    fn default() -> Self {
        SessionLimits {
            sessions: 1024,
            challenges: 256,
            in_flight: 1024,
            queued_per_node: 32,
            handshaking_nodes: 256,
        }
    }
}

/// Who a packet goes to: its id, address and static key (from its record).
#[derive(Clone, Debug)]
pub struct Contact {
    pub id: NodeId,
    pub addr: SocketAddr,
    pub key: PublicKey,
}

impl Contact {
    pub fn of(record: &Spr) -> Option<Contact> {
        Some(Contact {
            id: record.node_id(),
            addr: record.udp_address()?,
            key: *record.public_key(),
        })
    }
}

/// What a received datagram turned out to be.
#[derive(Debug)]
pub enum Received {
    /// A decrypted message; `record` is the sender's record when it came in a handshake.
    Message {
        src: NodeId,
        addr: SocketAddr,
        plaintext: Vec<u8>,
        record: Option<Spr>,
    },
    /// A message we hold no keys for: the caller should [`SessionLayer::challenge`] it.
    Undecryptable {
        src: NodeId,
        addr: SocketAddr,
        nonce: Nonce,
    },
    /// A WHOAREYOU for one of our packets: the handshake answer and any queued messages.
    Datagrams(Vec<(SocketAddr, Vec<u8>)>),
    /// Nothing to do; the reason is for logs.
    Dropped(&'static str),
}

struct Session {
    write_key: AesKey,
    read_key: AesKey,
    previous_read_key: Option<AesKey>,
    last_used: Instant,
}

struct SentChallenge {
    challenge_data: Vec<u8>,
    remote_key: Option<PublicKey>,
    at: Instant,
}

/// A packet we sent that the recipient may answer with WHOAREYOU.
struct InFlight {
    to: Contact,
    plaintext: Vec<u8>,
    at: Instant,
}

/// A plaintext waiting for a handshake, and where it goes.
type Queued = (Contact, Vec<u8>);

pub struct SessionLayer {
    key: SigningKey,
    id: NodeId,
    record: Spr,
    limits: SessionLimits,
    sessions: HashMap<(NodeId, SocketAddr), Session>,
    challenges: HashMap<(NodeId, SocketAddr), SentChallenge>,
    in_flight: HashMap<Nonce, InFlight>,
    /// Plaintexts waiting for a handshake with the node to finish, and when it began.
    handshaking: HashMap<NodeId, (Instant, Vec<Queued>)>,
}

impl SessionLayer {
    pub fn new(key: SigningKey, record: Spr, limits: SessionLimits) -> Self {
        SessionLayer {
            id: record.node_id(),
            key,
            record,
            limits,
            sessions: HashMap::new(),
            challenges: HashMap::new(),
            in_flight: HashMap::new(),
            handshaking: HashMap::new(),
        }
    }

    pub fn local_id(&self) -> NodeId {
        self.id
    }

    pub fn set_record(&mut self, record: Spr) {
        self.record = record;
    }

    pub fn has_session(&self, id: NodeId, addr: SocketAddr) -> bool {
        self.sessions.contains_key(&(id, addr))
    }

    /// Datagrams that carry `plaintext` to `to` (none while a handshake with it is pending:
    /// the plaintext is queued, or dropped when the queue is full).
    pub fn send(
        &mut self,
        now: Instant,
        rng: &mut impl RngCore,
        to: &Contact,
        plaintext: Vec<u8>,
    ) -> Vec<(SocketAddr, Vec<u8>)> {
        let (iv, nonce) = (random::<16>(rng), random::<12>(rng));
        let auth = Authdata::Message { src: self.id };
        let message = if let Some(session) = self.sessions.get_mut(&(to.id, to.addr)) {
            session.last_used = now;
            let header_only = Packet::new(iv, nonce, &auth, Vec::new());
            encrypt_message(
                &session.write_key,
                &nonce,
                &plaintext,
                &header_only.authenticated_data(),
            )
        } else {
            if let Some((_, queue)) = self.handshaking.get_mut(&to.id) {
                if queue.len() < self.limits.queued_per_node {
                    queue.push((to.clone(), plaintext));
                }
                return Vec::new();
            }
            if self.handshaking.len() >= self.limits.handshaking_nodes {
                return Vec::new();
            }
            self.handshaking.insert(to.id, (now, Vec::new()));
            // Random bytes the size of the smallest real message: the node cannot decrypt
            // them and answers WHOAREYOU.
            let mut random_message = vec![0u8; GCM_TAG_SIZE + 4];
            rng.fill_bytes(&mut random_message);
            random_message
        };
        if self.in_flight.len() < self.limits.in_flight {
            self.in_flight.insert(
                nonce,
                InFlight {
                    to: to.clone(),
                    plaintext,
                    at: now,
                },
            );
        }
        let packet = Packet::new(iv, nonce, &auth, message);
        vec![(to.addr, packet.encode(&to.id))]
    }

    /// A datagram answering a message just read from `id` at `addr`, over the session it
    /// came in on (`None` if that session has since been evicted).
    pub fn send_response(
        &mut self,
        now: Instant,
        rng: &mut impl RngCore,
        id: NodeId,
        addr: SocketAddr,
        plaintext: &[u8],
    ) -> Option<(SocketAddr, Vec<u8>)> {
        let session = self.sessions.get_mut(&(id, addr))?;
        session.last_used = now;
        let (iv, nonce) = (random::<16>(rng), random::<12>(rng));
        let auth = Authdata::Message { src: self.id };
        let header_only = Packet::new(iv, nonce, &auth, Vec::new());
        let message = encrypt_message(
            &session.write_key,
            &nonce,
            plaintext,
            &header_only.authenticated_data(),
        );
        Some((addr, Packet::new(iv, nonce, &auth, message).encode(&id)))
    }

    /// Reads a datagram from `addr`.
    pub fn receive(
        &mut self,
        now: Instant,
        rng: &mut impl RngCore,
        addr: SocketAddr,
        datagram: &[u8],
    ) -> Received {
        let Ok(packet) = Packet::decode(&self.id, datagram) else {
            return Received::Dropped("not a packet for us");
        };
        match packet.authdata() {
            Authdata::Message { src } => self.receive_message(now, src, addr, &packet),
            Authdata::Whoareyou { enr_seq, .. } => {
                self.receive_whoareyou(now, rng, addr, &packet, enr_seq)
            }
            Authdata::Handshake {
                src,
                signature,
                ephemeral_key,
                record,
            } => {
                self.receive_handshake(now, addr, &packet, src, &signature, &ephemeral_key, record)
            }
        }
    }

    fn receive_message(
        &mut self,
        now: Instant,
        src: NodeId,
        addr: SocketAddr,
        packet: &Packet,
    ) -> Received {
        let nonce = packet.header.nonce;
        let Some(session) = self.sessions.get_mut(&(src, addr)) else {
            return Received::Undecryptable { src, addr, nonce };
        };
        let ad = packet.authenticated_data();
        let plaintext =
            decrypt_message(&session.read_key, &nonce, &packet.message, &ad).or_else(|| {
                let old = session.previous_read_key?;
                let pt = decrypt_message(&old, &nonce, &packet.message, &ad)?;
                // The other side kept the keys of the older handshake: read with them first.
                session.previous_read_key = Some(session.read_key);
                session.read_key = old;
                Some(pt)
            });
        match plaintext {
            Some(plaintext) => {
                session.last_used = now;
                Received::Message {
                    src,
                    addr,
                    plaintext,
                    record: None,
                }
            }
            None => Received::Undecryptable { src, addr, nonce },
        }
    }

    fn receive_whoareyou(
        &mut self,
        now: Instant,
        rng: &mut impl RngCore,
        addr: SocketAddr,
        packet: &Packet,
        enr_seq: u64,
    ) -> Received {
        let Some(call) = self.in_flight.remove(&packet.header.nonce) else {
            return Received::Dropped("WHOAREYOU for no packet of ours");
        };
        if call.to.addr != addr {
            return Received::Dropped("WHOAREYOU from another address");
        }
        let to = call.to;
        let challenge_data = packet.authenticated_data();
        let ephemeral = random_signing_key(rng);
        let ephemeral_key = encode_libp2p_public_key(&PublicKey::from(ephemeral.verifying_key()));
        let signature = sign_id_proof(&self.key, &challenge_data, &ephemeral_key, &to.id);
        let keys = derive_keys(
            &ecdh(&ephemeral, &to.key),
            &self.id,
            &to.id,
            &challenge_data,
        );
        let auth = Authdata::Handshake {
            src: self.id,
            signature,
            ephemeral_key,
            record: (enr_seq < self.record.seq()).then(|| self.record.bytes().to_vec()),
        };
        let (iv, nonce) = (random::<16>(rng), random::<12>(rng));
        let header_only = Packet::new(iv, nonce, &auth, Vec::new());
        let message = encrypt_message(
            &keys.initiator_key,
            &nonce,
            &call.plaintext,
            &header_only.authenticated_data(),
        );
        self.store_session(now, to.id, addr, keys.recipient_key, keys.initiator_key);
        let mut out = vec![(addr, Packet::new(iv, nonce, &auth, message).encode(&to.id))];
        if let Some((_, queued)) = self.handshaking.remove(&to.id) {
            for (contact, plaintext) in queued {
                out.extend(self.send(now, rng, &contact, plaintext));
            }
        }
        Received::Datagrams(out)
    }

    #[allow(clippy::too_many_arguments)]
    fn receive_handshake(
        &mut self,
        now: Instant,
        addr: SocketAddr,
        packet: &Packet,
        src: NodeId,
        signature: &[u8],
        ephemeral_key: &[u8],
        record: Option<Vec<u8>>,
    ) -> Received {
        let Some(challenge) = self.challenges.remove(&(src, addr)) else {
            return Received::Dropped("handshake without a challenge of ours");
        };
        let record = match record.map(|bytes| Spr::decode(&bytes)) {
            None => None,
            Some(Ok(record)) if record.node_id() == src => Some(record),
            Some(_) => return Received::Dropped("handshake record invalid or not the sender's"),
        };
        let Some(remote_key) = record
            .as_ref()
            .map(|r| *r.public_key())
            .or(challenge.remote_key)
        else {
            return Received::Dropped("handshake without a record from an unknown node");
        };
        if !verify_id_proof(
            &remote_key,
            signature,
            &challenge.challenge_data,
            ephemeral_key,
            &self.id,
        ) {
            return Received::Dropped("handshake id signature does not verify");
        }
        let Some(ephemeral) = decode_libp2p_public_key(ephemeral_key) else {
            return Received::Dropped("handshake ephemeral key unreadable");
        };
        let keys = derive_keys(
            &ecdh(&self.key, &ephemeral),
            &src,
            &self.id,
            &challenge.challenge_data,
        );
        let Some(plaintext) = decrypt_message(
            &keys.initiator_key,
            &packet.header.nonce,
            &packet.message,
            &packet.authenticated_data(),
        ) else {
            return Received::Dropped("handshake message does not decrypt");
        };
        self.store_session(now, src, addr, keys.initiator_key, keys.recipient_key);
        Received::Message {
            src,
            addr,
            plaintext,
            record,
        }
    }

    /// A WHOAREYOU for a packet from `src` we could not read; `known` is the record we hold
    /// for it (its seq tells the node whether to send a newer one). `None` while a challenge
    /// to that node is outstanding or too many are.
    pub fn challenge(
        &mut self,
        now: Instant,
        rng: &mut impl RngCore,
        src: NodeId,
        addr: SocketAddr,
        request_nonce: Nonce,
        known: Option<&Spr>,
    ) -> Option<(SocketAddr, Vec<u8>)> {
        if let Some(c) = self.challenges.get(&(src, addr)) {
            if now.duration_since(c.at) < HANDSHAKE_TIMEOUT {
                return None;
            }
        }
        if self.challenges.len() >= self.limits.challenges {
            self.expire(now);
            if self.challenges.len() >= self.limits.challenges {
                return None;
            }
        }
        let auth = Authdata::Whoareyou {
            id_nonce: random::<ID_NONCE_SIZE>(rng),
            enr_seq: known.map(Spr::seq).unwrap_or(0),
        };
        let packet = Packet::new(random::<16>(rng), request_nonce, &auth, Vec::new());
        self.challenges.insert(
            (src, addr),
            SentChallenge {
                challenge_data: packet.authenticated_data(),
                remote_key: known.map(|r| *r.public_key()),
                at: now,
            },
        );
        Some((addr, packet.encode(&src)))
    }

    fn store_session(
        &mut self,
        now: Instant,
        id: NodeId,
        addr: SocketAddr,
        read_key: AesKey,
        write_key: AesKey,
    ) {
        let previous_read_key = self.sessions.get(&(id, addr)).map(|s| s.read_key);
        if previous_read_key.is_none() && self.sessions.len() >= self.limits.sessions {
            // Evict the least recently used session.
            if let Some(oldest) = self
                .sessions
                .iter()
                .min_by_key(|(_, s)| s.last_used)
                .map(|(k, _)| *k)
            {
                self.sessions.remove(&oldest);
            }
        }
        self.sessions.insert(
            (id, addr),
            Session {
                write_key,
                read_key,
                previous_read_key,
                last_used: now,
            },
        );
    }

    /// Forgets challenges, in-flight packets and handshakes older than
    /// [`HANDSHAKE_TIMEOUT`]; queued plaintexts of an abandoned handshake are dropped.
    pub fn expire(&mut self, now: Instant) {
        let live = |at: Instant| now.duration_since(at) < HANDSHAKE_TIMEOUT;
        self.challenges.retain(|_, c| live(c.at));
        self.in_flight.retain(|_, f| live(f.at));
        self.handshaking.retain(|_, (at, _)| live(*at));
    }

    /// When [`SessionLayer::expire`] next has something to do.
    pub fn next_expiry(&self) -> Option<Instant> {
        let c = self.challenges.values().map(|c| c.at);
        let f = self.in_flight.values().map(|f| f.at);
        let h = self.handshaking.values().map(|(at, _)| *at);
        c.chain(f).chain(h).min().map(|at| at + HANDSHAKE_TIMEOUT)
    }
}

fn random<const N: usize>(rng: &mut impl RngCore) -> [u8; N] {
    let mut out = [0u8; N];
    rng.fill_bytes(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use libp2p::identity::Keypair;
    use rand::SeedableRng;

    use super::*;
    use crate::spr::signing_key_of;

    fn party(port: u16) -> (SessionLayer, Spr) {
        let keypair = Keypair::generate_secp256k1();
        let record = Spr::sign(
            &keypair,
            vec![format!("/ip4/127.0.0.1/udp/{port}").parse().unwrap()],
        )
        .unwrap();
        let layer = SessionLayer::new(
            signing_key_of(&keypair).unwrap(),
            record.clone(),
            SessionLimits::default(),
        );
        (layer, record)
    }

    #[test]
    fn handshake_then_ordinary_messages_both_ways() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let now = Instant::now();
        let (mut a, a_rec) = party(1);
        let (mut b, b_rec) = party(2);
        let (a_addr, b_addr) = (a_rec.udp_address().unwrap(), b_rec.udp_address().unwrap());
        let to_b = Contact::of(&b_rec).unwrap();

        // A → B: random packet; B cannot read it and challenges.
        let out = a.send(now, &mut rng, &to_b, b"first".to_vec());
        assert_eq!(out.len(), 1);
        // A second plaintext waits for the handshake.
        assert!(a.send(now, &mut rng, &to_b, b"second".to_vec()).is_empty());
        let Received::Undecryptable { src, nonce, .. } =
            b.receive(now, &mut rng, a_addr, &out[0].1)
        else {
            panic!("B should not read A's first packet");
        };
        assert_eq!(src, a_rec.node_id());
        let (_, whoareyou) = b
            .challenge(now, &mut rng, src, a_addr, nonce, None)
            .unwrap();
        // One outstanding challenge per node.
        assert!(b
            .challenge(now, &mut rng, src, a_addr, nonce, None)
            .is_none());

        // A answers with a handshake carrying "first" and its record, then "second".
        let Received::Datagrams(out) = a.receive(now, &mut rng, b_addr, &whoareyou) else {
            panic!("A should answer the challenge");
        };
        assert_eq!(out.len(), 2);
        let Received::Message {
            plaintext, record, ..
        } = b.receive(now, &mut rng, a_addr, &out[0].1)
        else {
            panic!("B should read the handshake");
        };
        assert_eq!(plaintext, b"first");
        assert_eq!(record, Some(a_rec.clone()));
        let Received::Message { plaintext, .. } = b.receive(now, &mut rng, a_addr, &out[1].1)
        else {
            panic!("B should read the queued message");
        };
        assert_eq!(plaintext, b"second");

        // B → A over the new session.
        let to_a = Contact::of(&a_rec).unwrap();
        let out = b.send(now, &mut rng, &to_a, b"reply".to_vec());
        let Received::Message { plaintext, .. } = a.receive(now, &mut rng, b_addr, &out[0].1)
        else {
            panic!("A should read B's reply");
        };
        assert_eq!(plaintext, b"reply");

        // The same packet from another address has no session there.
        assert!(matches!(
            a.receive(now, &mut rng, "127.0.0.1:9".parse().unwrap(), &out[0].1),
            Received::Undecryptable { .. }
        ));
        // Everything transient expires.
        a.expire(now + HANDSHAKE_TIMEOUT);
        b.expire(now + HANDSHAKE_TIMEOUT);
        assert!(a.next_expiry().is_none() && b.next_expiry().is_none());
    }

    #[test]
    fn forged_handshake_is_dropped() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(8);
        let now = Instant::now();
        let (mut a, a_rec) = party(1);
        let (mut b, b_rec) = party(2);
        let (mut mallory, _) = party(3);
        let a_addr = a_rec.udp_address().unwrap();
        let out = a.send(now, &mut rng, &Contact::of(&b_rec).unwrap(), b"x".to_vec());
        let Received::Undecryptable { src, nonce, .. } =
            b.receive(now, &mut rng, a_addr, &out[0].1)
        else {
            panic!()
        };
        let (_, whoareyou) = b
            .challenge(now, &mut rng, src, a_addr, nonce, None)
            .unwrap();
        // Mallory never sent that nonce, so it cannot answer; and A's answer replayed from
        // elsewhere finds no challenge for that address.
        assert!(matches!(
            mallory.receive(now, &mut rng, b_rec.udp_address().unwrap(), &whoareyou),
            Received::Dropped(_)
        ));
        let Received::Datagrams(hs) =
            a.receive(now, &mut rng, b_rec.udp_address().unwrap(), &whoareyou)
        else {
            panic!()
        };
        assert!(matches!(
            b.receive(now, &mut rng, "127.0.0.1:4".parse().unwrap(), &hs[0].1),
            Received::Dropped(_)
        ));
    }

    #[test]
    fn state_is_bounded_under_floods() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(9);
        let now = Instant::now();
        let limits = SessionLimits {
            sessions: 4,
            challenges: 3,
            in_flight: 5,
            queued_per_node: 2,
            handshaking_nodes: 2,
        };
        let keypair = Keypair::generate_secp256k1();
        let record = Spr::sign(&keypair, vec!["/ip4/127.0.0.1/udp/1".parse().unwrap()]).unwrap();
        let mut layer = SessionLayer::new(signing_key_of(&keypair).unwrap(), record, limits);
        // Many unknown senders: challenges stop at the cap until old ones expire.
        let issued = (0..10u16)
            .filter(|i| {
                let addr = SocketAddr::from(([127, 0, 0, 1], 1000 + i));
                layer
                    .challenge(now, &mut rng, NodeId([*i as u8; 32]), addr, [0; 12], None)
                    .is_some()
            })
            .count();
        assert_eq!(issued, 3);
        let later = now + HANDSHAKE_TIMEOUT;
        let addr = SocketAddr::from(([127, 0, 0, 1], 2000));
        assert!(layer
            .challenge(later, &mut rng, NodeId([99; 32]), addr, [0; 12], None)
            .is_some());
        // Sends to many silent nodes: handshakes, in-flight packets and queues stop at caps.
        let mut sent = 0;
        for i in 0..10u16 {
            let (_, to) = party(3000 + i);
            let contact = Contact::of(&to).unwrap();
            for _ in 0..5 {
                sent += layer.send(now, &mut rng, &contact, vec![0; 8]).len();
            }
        }
        assert_eq!(
            sent, 2,
            "one random packet per handshaking node, two nodes at most"
        );
        assert!(layer.handshaking.len() <= 2);
        assert!(layer.handshaking.values().all(|(_, q)| q.len() <= 2));
        assert!(layer.in_flight.len() <= 5);
    }
}
