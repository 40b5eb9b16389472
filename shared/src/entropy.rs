//! Where kmsim's randomness comes from: the operating system, or (`--deterministic SEED`) a generator keyed by a
//! seed, so that two runs of the same test produce byte-identical answers.
//!
//! One [`Entropy`] per stack, handed to every service at construction (never a process global: tests run several
//! stacks in one process). Each draw names its [`Purpose`]; in deterministic mode every purpose is its own stream
//! with its own counter, so a draw's bytes depend only on the seed, the purpose and how many draws of that purpose
//! came before it — adding an unrelated kind of call between two others does not change their answers.
//!
//! The generator: the n-th draw of purpose `p` is the ChaCha20 keystream under the key
//! `SHA-256("kmsim-entropy-v1" ‖ SHA-256("kmsim-seed-v1" ‖ seed) ‖ p ‖ n as 8 bytes big-endian)`, as long as the
//! draw asks (a key pair generation reads as much of it as it needs). Changing this changes every deterministic
//! answer: the known-answer tests below pin it.
//!
//! Concurrent draws of one purpose are ordered by arrival: byte-identical answers need the same sequence of calls.
//!
//! Generations: a state that outlives its stack (a data dir served again, a state archive imported) holds ids and
//! keys already drawn, so a new stack on it must not draw them again. Each stack draws in a *generation* `g`: its
//! draw numbers start at `g · 2^40` ([`GENERATION_SHIFT`]), so generation 0 (a fresh stack) draws exactly what the
//! construction above gives, and each later generation draws from numbers no earlier one reaches (2^40 draws of one
//! purpose per generation). Which generation a stack draws in is recorded with its state (`entropy.json`, the
//! archive), so that is as reproducible as the draws themselves.

use std::sync::atomic::{AtomicU64, Ordering};

use rand::{CryptoRng, RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// What a draw is for: each is its own stream in deterministic mode. One list; its labels are part of the
/// generator (renaming one changes that purpose's answers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// KMS key ids and multi-Region key ids.
    KeyId,
    /// KMS grant ids and grant tokens.
    Grant,
    /// KMS key material: symmetric, HMAC and asymmetric keys, rotations, imported-key wrapping pairs.
    KeyMaterial,
    /// Data keys, data key pairs and GenerateRandom bytes.
    DataKey,
    /// IVs and nonces of ciphertext blobs and wrapped material, signature salts.
    Nonce,
    /// Import tokens of GetParametersForImport.
    ImportToken,
    /// Request ids of every dialect (`x-amzn-RequestId`, `X-Request-Id`, `x-amz-request-id`, `x-amz-id-2`).
    RequestId,
    /// Object store ids: upload ids, version ids, data paths, envelope message ids.
    ObjectId,
    /// Object store secrets: SSE-S3 keys, bucket key salts.
    ObjectKey,
    /// Volume, snapshot and job ids, LUKS UUIDs.
    VolumeId,
    /// LUKS master keys and salts.
    VolumeKey,
    /// IAM ids and access key ids.
    IamId,
    /// IAM secret access keys, session tokens and the identity store's sealing nonces.
    IamSecret,
    /// The admin API's bearer token and service keys made at start.
    Admin,
    /// Fault rules' `probability` triggers and latency ranges.
    Fault,
    /// What the randomized KMS operations add: ECDSA nonces' extra input, RSA-PSS salts, RSA-OAEP seeds.
    Signature,
}

impl Purpose {
    /// Every purpose, in the order of their counters.
    pub const ALL: [Purpose; 16] = [
        Purpose::KeyId,
        Purpose::Grant,
        Purpose::KeyMaterial,
        Purpose::DataKey,
        Purpose::Nonce,
        Purpose::ImportToken,
        Purpose::RequestId,
        Purpose::ObjectId,
        Purpose::ObjectKey,
        Purpose::VolumeId,
        Purpose::VolumeKey,
        Purpose::IamId,
        Purpose::IamSecret,
        Purpose::Admin,
        Purpose::Fault,
        Purpose::Signature,
    ];

    /// The domain-separation label (part of the generator: changing it changes the answers).
    pub fn label(self) -> &'static str {
        match self {
            Purpose::KeyId => "kms.key-id",
            Purpose::Grant => "kms.grant",
            Purpose::KeyMaterial => "kms.key-material",
            Purpose::DataKey => "kms.data-key",
            Purpose::Nonce => "nonce",
            Purpose::ImportToken => "kms.import-token",
            Purpose::RequestId => "request-id",
            Purpose::ObjectId => "obs.id",
            Purpose::ObjectKey => "obs.key",
            Purpose::VolumeId => "evs.id",
            Purpose::VolumeKey => "evs.key",
            Purpose::IamId => "iam.id",
            Purpose::IamSecret => "iam.secret",
            Purpose::Admin => "admin",
            Purpose::Fault => "faults",
            Purpose::Signature => "kms.signature",
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    /// Whether the OS draws this purpose straight from the kernel (long-lived secrets) rather than from the
    /// thread's CSPRNG (per-request ids, nonces and data keys: one syscall per request shows in the benchmarks).
    fn drawn_from_kernel(self) -> bool {
        matches!(
            self,
            Purpose::KeyMaterial | Purpose::ObjectKey | Purpose::VolumeKey | Purpose::IamSecret | Purpose::Admin
        )
    }
}

/// The source of randomness of one stack: the OS, or a seeded generator (see the module documentation).
pub struct Entropy {
    seeded: Option<Seeded>,
}

/// Draw numbers of generation `g` start at `g << GENERATION_SHIFT`.
pub const GENERATION_SHIFT: u32 = 40;
/// The largest generation: its draw numbers still fit the 64-bit counter.
pub const MAX_GENERATION: u64 = (1 << (64 - GENERATION_SHIFT)) - 1;

/// The deterministic generator's state.
struct Seeded {
    /// `SHA-256("kmsim-seed-v1" ‖ seed)`: the seed itself is not kept.
    key: Zeroizing<[u8; 32]>,
    /// A public fingerprint of the seed, for the data dir's marker.
    fingerprint: String,
    /// The next draw's number, per purpose.
    counters: [AtomicU64; Purpose::ALL.len()],
    /// The generation the counters started in (see the module documentation).
    generation: AtomicU64,
}

impl Seeded {
    fn new(key: Zeroizing<[u8; 32]>, fingerprint: String) -> Self {
        Seeded { key, fingerprint, counters: std::array::from_fn(|_| AtomicU64::new(0)), generation: AtomicU64::new(0) }
    }
}

impl std::fmt::Debug for Entropy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.seeded {
            None => f.write_str("Entropy::Os"),
            Some(seeded) => write!(f, "Entropy::Deterministic({})", seeded.fingerprint),
        }
    }
}

impl Default for Entropy {
    fn default() -> Self {
        Self::os()
    }
}

impl Entropy {
    /// The operating system's randomness (the default).
    pub fn os() -> Self {
        Entropy { seeded: None }
    }

    /// A generator keyed by `seed`: every draw is predictable from the seed. For tests only.
    pub fn deterministic(seed: &[u8]) -> Self {
        let mut key = Zeroizing::new([0u8; 32]);
        key.copy_from_slice(&Sha256::new().chain_update(b"kmsim-seed-v1").chain_update(seed).finalize());
        let fingerprint =
            hex::encode(&Sha256::new().chain_update(b"kmsim-seed-fingerprint-v1").chain_update(seed).finalize()[..8]);
        Entropy { seeded: Some(Seeded::new(key, fingerprint)) }
    }

    /// The same source with every stream at its first draw (the OS for the OS).
    pub fn fresh(&self) -> Self {
        match &self.seeded {
            None => Entropy::os(),
            Some(seeded) => Entropy { seeded: Some(Seeded::new(seeded.key.clone(), seeded.fingerprint.clone())) },
        }
    }

    /// Whether draws come from a seed.
    pub fn is_deterministic(&self) -> bool {
        self.seeded.is_some()
    }

    /// A fingerprint of the seed (16 hex digits of a hash of it, not the seed), or `None` for the OS.
    pub fn fingerprint(&self) -> Option<&str> {
        self.seeded.as_ref().map(|s| s.fingerprint.as_str())
    }

    /// Starts every purpose's stream again from its first draw of generation 0 (a reset of the simulator, which
    /// leaves no state behind): the same calls after a reset get the same answers as after the start of a fresh
    /// stack. Nothing for the OS.
    pub fn restart(&self) {
        self.start_generation(0);
    }

    /// The generation draws come from (module documentation); `None` for the OS.
    pub fn generation(&self) -> Option<u64> {
        self.seeded.as_ref().map(|s| s.generation.load(Ordering::SeqCst))
    }

    /// Starts every purpose's stream at the first draw of `generation` (at most [`MAX_GENERATION`]; larger is
    /// taken as that): for a stack on a state whose ids and keys were drawn in earlier generations. Nothing for
    /// the OS.
    pub fn start_generation(&self, generation: u64) {
        if let Some(seeded) = &self.seeded {
            let generation = generation.min(MAX_GENERATION);
            seeded.generation.store(generation, Ordering::SeqCst);
            for counter in &seeded.counters {
                counter.store(generation << GENERATION_SHIFT, Ordering::SeqCst);
            }
        }
    }

    /// A generator for one draw of `purpose`: the OS's, or the next block of the purpose's stream. What a key pair
    /// generation reads from.
    pub fn rng(&self, purpose: Purpose) -> EntropyRng {
        match &self.seeded {
            None if purpose.drawn_from_kernel() => EntropyRng(Source::Kernel(rand::rngs::OsRng)),
            None => EntropyRng(Source::Thread(rand::thread_rng())),
            Some(seeded) => {
                let n = seeded.counters[purpose.index()].fetch_add(1, Ordering::SeqCst);
                let block = Zeroizing::new(<[u8; 32]>::from(
                    Sha256::new()
                        .chain_update(b"kmsim-entropy-v1")
                        .chain_update(seeded.key.as_ref())
                        .chain_update(purpose.label().as_bytes())
                        .chain_update(n.to_be_bytes())
                        .finalize(),
                ));
                EntropyRng(Source::Seeded(Box::new(ChaCha20Rng::from_seed(*block))))
            }
        }
    }

    /// Fills `buf` with one draw of `purpose`.
    pub fn fill(&self, purpose: Purpose, buf: &mut [u8]) {
        self.rng(purpose).fill_bytes(buf);
    }

    /// `N` bytes of `purpose`, zeroized on drop.
    pub fn secret<const N: usize>(&self, purpose: Purpose) -> Zeroizing<[u8; N]> {
        let mut bytes = Zeroizing::new([0u8; N]);
        self.fill(purpose, bytes.as_mut());
        bytes
    }

    /// `N` bytes of `purpose` that are not secret (ids, nonces).
    pub fn bytes<const N: usize>(&self, purpose: Purpose) -> [u8; N] {
        let mut bytes = [0u8; N];
        self.fill(purpose, &mut bytes);
        bytes
    }

    /// A random (version 4) UUID of `purpose`.
    pub fn uuid(&self, purpose: Purpose) -> uuid::Uuid {
        uuid::Builder::from_random_bytes(self.bytes(purpose)).into_uuid()
    }
}

/// One draw's generator ([`Entropy::rng`]): the OS's, or a ChaCha20 stream.
pub struct EntropyRng(Source);

enum Source {
    /// The kernel's randomness.
    Kernel(rand::rngs::OsRng),
    /// The thread's CSPRNG (seeded from the kernel).
    Thread(rand::rngs::ThreadRng),
    /// One block of a seeded stream.
    Seeded(Box<ChaCha20Rng>),
}

impl EntropyRng {
    fn inner(&mut self) -> &mut dyn RngCore {
        match &mut self.0 {
            Source::Kernel(rng) => rng,
            Source::Thread(rng) => rng,
            Source::Seeded(rng) => rng.as_mut(),
        }
    }
}

impl RngCore for EntropyRng {
    fn next_u32(&mut self) -> u32 {
        self.inner().next_u32()
    }

    fn next_u64(&mut self) -> u64 {
        self.inner().next_u64()
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        self.inner().fill_bytes(dest)
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand::Error> {
        self.inner().try_fill_bytes(dest)
    }
}

impl CryptoRng for EntropyRng {}

#[cfg(test)]
mod tests {
    use super::*;

    /// The expected values were computed independently (Python: `hashlib` and the `cryptography` package's
    /// ChaCha20 with a zero nonce and counter), from the construction in the module documentation.
    #[test]
    fn known_answers_pin_the_generator() {
        let entropy = Entropy::deterministic(b"seed-1");
        assert_eq!(entropy.fingerprint(), Some("88d59b442168f3d5"));
        assert_eq!(hex::encode(entropy.bytes::<16>(Purpose::KeyId)), "3c272d5c44d32504b7c24c78db046e27");
        assert_eq!(hex::encode(entropy.bytes::<16>(Purpose::KeyId)), "0b2fbce203245066e4ca139c314e490d");
        assert_eq!(entropy.uuid(Purpose::RequestId).to_string(), "56596394-a0c7-4302-ae16-2af1a0d7521f");
    }

    #[test]
    fn same_seed_same_draws_and_restart_replays() {
        let (a, b) = (Entropy::deterministic(b"s"), Entropy::deterministic(b"s"));
        let first: Vec<[u8; 32]> = (0..3).map(|_| *a.secret::<32>(Purpose::KeyMaterial)).collect();
        let second: Vec<[u8; 32]> = (0..3).map(|_| *b.secret::<32>(Purpose::KeyMaterial)).collect();
        assert_eq!(first, second);
        assert_ne!(first[0], first[1], "the counter advances");
        a.restart();
        assert_eq!(*a.secret::<32>(Purpose::KeyMaterial), first[0]);
    }

    /// A later generation draws what generation 0 never reaches, the same in every stack of the seed; a restart
    /// goes back to generation 0.
    #[test]
    fn generations_are_disjoint_and_reproducible() {
        let (a, b) = (Entropy::deterministic(b"s"), Entropy::deterministic(b"s"));
        assert_eq!(a.generation(), Some(0));
        let first: Vec<[u8; 16]> = (0..3).map(|_| a.bytes::<16>(Purpose::KeyId)).collect();
        b.start_generation(1);
        assert_eq!(b.generation(), Some(1));
        let later: Vec<[u8; 16]> = (0..3).map(|_| b.bytes::<16>(Purpose::KeyId)).collect();
        assert!(later.iter().all(|id| !first.contains(id)));
        let c = Entropy::deterministic(b"s");
        c.start_generation(1);
        assert_eq!(c.bytes::<16>(Purpose::KeyId), later[0]);
        c.start_generation(u64::MAX);
        assert_eq!(c.generation(), Some(MAX_GENERATION));
        c.restart();
        assert_eq!((c.generation(), c.bytes::<16>(Purpose::KeyId)), (Some(0), first[0]));
        assert_eq!(Entropy::os().generation(), None);
    }

    #[test]
    fn purposes_and_seeds_are_separate_streams() {
        let a = Entropy::deterministic(b"s");
        let ids = a.bytes::<16>(Purpose::KeyId);
        // A draw of another purpose in between does not move the first purpose's stream.
        let b = Entropy::deterministic(b"s");
        let material = b.bytes::<16>(Purpose::KeyMaterial);
        assert_eq!(b.bytes::<16>(Purpose::KeyId), ids);
        assert_ne!(material, ids);
        // Every purpose draws differently from the same counter.
        let c = Entropy::deterministic(b"s");
        let firsts: std::collections::HashSet<[u8; 16]> = Purpose::ALL.iter().map(|p| c.bytes::<16>(*p)).collect();
        assert_eq!(firsts.len(), Purpose::ALL.len());
        assert_ne!(Entropy::deterministic(b"t").bytes::<16>(Purpose::KeyId), ids);
        assert_ne!(Entropy::deterministic(b"t").fingerprint(), a.fingerprint());
        // A draw's bytes do not depend on how long earlier draws were.
        let d = Entropy::deterministic(b"s");
        let mut long = [0u8; 100];
        d.fill(Purpose::KeyId, &mut long);
        assert_eq!(long[..16], ids);
    }

    #[test]
    fn os_draws_differ_and_have_no_fingerprint() {
        let os = Entropy::os();
        assert!(!os.is_deterministic() && os.fingerprint().is_none());
        assert_ne!(os.bytes::<16>(Purpose::KeyId), os.bytes::<16>(Purpose::KeyId));
        assert_eq!(os.uuid(Purpose::KeyId).get_version_num(), 4);
        assert!(format!("{os:?} {:?}", Entropy::deterministic(b"secret seed")).contains("Deterministic("));
        assert!(!format!("{:?}", Entropy::deterministic(b"secret seed")).contains("secret seed"));
    }
}
