//! LUKS1 containers for encrypted volumes: the on-disk header, its key slots, and the
//! AES-256-XTS sector cipher of the payload, byte-compatible with cryptsetup and qemu.
//!
//! A volume file is one LUKS1 container: a header area of [`PAYLOAD_OFFSET_SECTORS`] sectors,
//! then the payload, one encrypted 512-byte sector for each sector of the volume. The
//! passphrase of key slot 0 is the lowercase hex of the volume's data key from the KMS (as
//! OpenStack Cinder does with its key manager), so `qemu-img`/`qemu-io` (`driver=luks`) and
//! `cryptsetup` open a volume file given that data key.
//!
//! # Format choices (changing any of them breaks stored volumes)
//!
//! The format is LUKS1 as specified by cryptsetup's "LUKS1 On-Disk Format Specification"
//! (version 1.2.3), with one fixed choice of algorithms:
//!
//! | field | value |
//! |---|---|
//! | magic, version | `LUKS\xba\xbe`, 1 |
//! | cipher-name, cipher-mode | `aes`, `xts-plain64` (AES-256-XTS: 64-byte key, two AES-256 keys) |
//! | hash-spec | `sha256` (PBKDF2-HMAC-SHA256 and the anti-forensic splitter's diffusion) |
//! | key-bytes | 64 |
//! | mk-digest | the first 20 bytes of PBKDF2-SHA256(master key, 32-byte salt, mk-digest-iter) |
//! | key slots | 8; slot 0 active (`0x00AC71F3`), slots 1-7 inactive (`0x0000DEAD`), 4000 stripes each |
//! | key material | the 64-byte master key AF-split into 4000 stripes (256 000 bytes = 500 sectors), encrypted with aes-xts-plain64 under PBKDF2-SHA256(passphrase, slot salt, slot iterations), IV = sector number counted from 0 within the slot's area |
//! | key material offsets | slot *i* at sector 8 + 504·*i* (8, 512, 1016, ... 3536): the 592-byte header rounded up to 4096 bytes, then each slot's 500 sectors rounded up to 8 sectors (4096 bytes) — what cryptsetup and qemu both write |
//! | payload offset | 4096 sectors (2 MiB), what cryptsetup 2.x writes for LUKS1 (qemu writes 4040; both read either) |
//! | payload | AES-256-XTS over 512-byte sectors, IV = plain64: the little-endian 64-bit sector number counted from the payload's first sector |
//! | iterations | a parameter of [`format()`], the same count for the slot and the mk digest; kmsim uses [`DEFAULT_ITERATIONS`] = 1000, the LUKS1 minimum, because the passphrase is a random 256-bit data key and attaching must be fast |
//!
//! The header area between the header and the key material, and the areas of the inactive key
//! slots, are zeros. [`Header::parse`] reads any LUKS1 header with these algorithms, including
//! qemu's and cryptsetup's, whatever their offsets and iteration counts, after checking the
//! same layout rules cryptsetup checks (stripes 4000, slots inside the header area and not
//! overlapping).
//!
//! LUKS1 authenticates neither some header fields (the uuid, the payload offset, inactive
//! slots) nor the payload: a damaged key slot, mk digest or algorithm field fails to parse or
//! unlock, but a payload offset moved further out still parses (a volume layer that created the
//! file checks it equals [`PAYLOAD_OFFSET_SECTORS`]), and a flipped bit in the payload decrypts
//! to a garbled 512-byte sector, as on any dm-crypt volume.

use std::fmt;

use aes::Aes256;
use aes::cipher::consts::U16;
use aes::cipher::typenum::Unsigned;
use aes::cipher::{
    Array, BlockCipherDecBackend, BlockCipherDecClosure, BlockCipherDecrypt, BlockCipherEncBackend,
    BlockCipherEncClosure, BlockCipherEncrypt, BlockSizeUser, KeyInit, ParBlocks,
};
use sha2::{Digest, Sha256};
use shared::entropy::{Entropy, Purpose};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

/// Bytes in one sector: the unit of offsets in the header and of the XTS data unit.
pub const SECTOR: usize = 512;

/// Length of the LUKS1 partition header (`phdr`) at the start of the container.
pub const PHDR_LEN: usize = 592;

/// Length of the master (volume) key: two AES-256 keys for XTS.
pub const KEY_BYTES: usize = 64;

/// Where [`format()`] puts the payload, in sectors (2 MiB, as cryptsetup 2.x does for LUKS1).
/// Changing this breaks stored volumes.
pub const PAYLOAD_OFFSET_SECTORS: u64 = 4096;

/// PBKDF2 iterations kmsim uses for the key slot and the mk digest: the LUKS1 minimum.
pub const DEFAULT_ITERATIONS: u32 = 1000;

const MAGIC: [u8; 6] = *b"LUKS\xba\xbe";
const VERSION: u16 = 1;
const CIPHER_NAME: &str = "aes";
const CIPHER_MODE: &str = "xts-plain64";
const HASH_SPEC: &str = "sha256";
const DIGEST_LEN: usize = 20;
const SALT_LEN: usize = 32;
const UUID_LEN: usize = 40;
const NAME_LEN: usize = 32;
const NUM_SLOTS: usize = 8;
const STRIPES: u32 = 4000;
const SLOT_ACTIVE: u32 = 0x00AC_71F3;
const SLOT_INACTIVE: u32 = 0x0000_DEAD;
/// Key material areas start and end on 4096-byte boundaries.
const SLOT_ALIGN_SECTORS: u64 = 8;
/// Sectors of one slot's key material: 64 bytes × 4000 stripes = 256 000 bytes = 500 sectors.
const SLOT_SECTORS: u64 = (KEY_BYTES as u64 * STRIPES as u64).div_ceil(SECTOR as u64);
// The stripes fill their sectors exactly, so the key material needs no padding.
const _: () = assert!(KEY_BYTES * STRIPES as usize == SLOT_SECTORS as usize * SECTOR);

// Byte offsets of the phdr fields (all integers big-endian).
const OFF_VERSION: usize = 6;
const OFF_CIPHER_NAME: usize = 8;
const OFF_CIPHER_MODE: usize = 40;
const OFF_HASH_SPEC: usize = 72;
const OFF_PAYLOAD: usize = 104;
const OFF_KEY_BYTES: usize = 108;
const OFF_MK_DIGEST: usize = 112;
const OFF_MK_SALT: usize = 132;
const OFF_MK_ITER: usize = 164;
const OFF_UUID: usize = 168;
const OFF_SLOTS: usize = 208;
const SLOT_LEN: usize = 48;

/// Why a LUKS1 container could not be read or opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LuksError {
    /// Fewer bytes than the header or a key slot needs.
    #[error("LUKS header area truncated: {needed} bytes needed, {got} given")]
    Truncated {
        /// Bytes the operation needs.
        needed: usize,
        /// Bytes it was given.
        got: usize,
    },
    /// The bytes do not start with the LUKS magic.
    #[error("not a LUKS container (bad magic)")]
    NotLuks,
    /// A valid-looking header with a version, cipher, hash or key size kmsim does not use.
    #[error("unsupported LUKS container: {0}")]
    Unsupported(String),
    /// A header whose fields are out of range or inconsistent (offsets, slots, iterations).
    #[error("corrupt LUKS header: {0}")]
    Corrupt(String),
    /// No key slot is active, so no passphrase can open the container.
    #[error("LUKS container has no active key slot")]
    NoActiveKeySlot,
    /// No active key slot yields the master key: wrong passphrase or damaged key material.
    #[error("no LUKS key slot opens with this passphrase (wrong passphrase or damaged key slot)")]
    WrongPassphrase,
    /// A parameter given to [`format()`] is out of range.
    #[error("invalid LUKS parameter: {0}")]
    InvalidParameter(&'static str),
}

/// The master (volume) key of a container: 64 bytes, zeroized on drop, never printed.
pub struct MasterKey {
    /// Boxed so that moving the key never leaves copies behind on the stack.
    bytes: Box<[u8; KEY_BYTES]>,
}

impl MasterKey {
    /// A fresh key from `entropy` (the OS, or the stack's seed under `--deterministic`).
    pub fn generate(entropy: &Entropy) -> Self {
        let mut bytes = Box::new([0u8; KEY_BYTES]);
        entropy.fill(Purpose::VolumeKey, &mut bytes[..]);
        MasterKey { bytes }
    }

    /// The key bytes, for comparing with an oracle (e.g. `cryptsetup luksDump
    /// --dump-volume-key`). Never log or store them.
    pub fn as_bytes(&self) -> &[u8; KEY_BYTES] {
        &self.bytes
    }

    fn from_slice(bytes: &[u8]) -> Self {
        let mut key = Box::new([0u8; KEY_BYTES]);
        key.copy_from_slice(bytes);
        MasterKey { bytes: key }
    }
}

impl Drop for MasterKey {
    fn drop(&mut self) {
        self.bytes.zeroize();
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

/// One of the eight key slots of a LUKS1 header.
#[derive(Debug, Clone, PartialEq, Eq)]
struct KeySlot {
    active: bool,
    iterations: u32,
    salt: [u8; SALT_LEN],
    /// First sector of this slot's encrypted, AF-split key material.
    key_material_offset: u32,
}

impl KeySlot {
    fn material_range(&self) -> std::ops::Range<usize> {
        let start = self.key_material_offset as usize * SECTOR;
        start..start + SLOT_SECTORS as usize * SECTOR
    }
}

/// A parsed LUKS1 header (aes, xts-plain64, sha256, 64-byte key). It holds no secret: opening
/// it needs the passphrase and the key material that follows it ([`Header::unlock`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Where the encrypted payload starts, in sectors from the start of the container; data
    /// sector 0 of the volume is stored there.
    pub payload_offset_sectors: u64,
    /// The container's UUID as text (36 characters for the containers kmsim writes).
    pub uuid: String,
    mk_digest: [u8; DIGEST_LEN],
    mk_digest_salt: [u8; SALT_LEN],
    mk_digest_iterations: u32,
    slots: [KeySlot; NUM_SLOTS],
}

/// Creates a LUKS1 container for a new master key, with `passphrase` in key slot 0 and
/// `iterations` PBKDF2 rounds for both the slot and the mk digest (kmsim uses
/// [`DEFAULT_ITERATIONS`]).
///
/// Returns the whole header area — exactly `header.payload_offset_sectors * SECTOR` bytes
/// (2 MiB), to be written at offset 0 of the volume file, after which the payload starts —
/// the master key for [`SectorCipher::new`], and the parsed header. The master key, salts, anti-forensic stripes
/// and UUID are drawn from `entropy`.
pub fn format(
    passphrase: &[u8],
    iterations: u32,
    entropy: &Entropy,
) -> Result<(Vec<u8>, MasterKey, Header), LuksError> {
    if iterations == 0 {
        return Err(LuksError::InvalidParameter("iterations must be at least 1"));
    }
    let master_key = MasterKey::generate(entropy);
    let mk_digest_salt: [u8; SALT_LEN] = entropy.bytes(Purpose::VolumeKey);
    let mut slots: [KeySlot; NUM_SLOTS] = std::array::from_fn(|i| KeySlot {
        active: false,
        iterations: 0,
        salt: [0; SALT_LEN],
        key_material_offset: slot_offset(i),
    });
    slots[0].active = true;
    slots[0].iterations = iterations;
    slots[0].salt = entropy.bytes(Purpose::VolumeKey);
    let header = Header {
        payload_offset_sectors: PAYLOAD_OFFSET_SECTORS,
        uuid: entropy.uuid(Purpose::VolumeKey).hyphenated().to_string(),
        mk_digest: mk_digest(master_key.as_bytes(), &mk_digest_salt, iterations),
        mk_digest_salt,
        mk_digest_iterations: iterations,
        slots,
    };

    let mut area = vec![0u8; PAYLOAD_OFFSET_SECTORS as usize * SECTOR];
    area[..PHDR_LEN].copy_from_slice(&header.to_bytes());
    let slot = &header.slots[0];
    let material = seal_key_material(slot, passphrase, &master_key, entropy);
    area[slot.material_range()].copy_from_slice(&material);
    Ok((area, master_key, header))
}

/// The key material offset of slot `index`, as cryptsetup and qemu lay it out.
fn slot_offset(index: usize) -> u32 {
    let first = (PHDR_LEN as u64).div_ceil(SECTOR as u64 * SLOT_ALIGN_SECTORS) * SLOT_ALIGN_SECTORS;
    let stride = SLOT_SECTORS.div_ceil(SLOT_ALIGN_SECTORS) * SLOT_ALIGN_SECTORS;
    (first + index as u64 * stride) as u32
}

impl Header {
    /// Parses and checks the 592-byte header at the start of `bytes` (more bytes are ignored).
    ///
    /// Strict: the magic, version 1, `aes`/`xts-plain64`, `sha256`, 64 key bytes, a non-zero
    /// payload offset (no detached headers), 4000 stripes in every slot, slots after the header,
    /// before the payload and not overlapping, at least one PBKDF2 iteration where used, and text fields NUL-padded.
    /// Never panics, whatever the bytes.
    pub fn parse(bytes: &[u8]) -> Result<Header, LuksError> {
        let Some(phdr) = bytes.get(..PHDR_LEN) else {
            return Err(LuksError::Truncated { needed: PHDR_LEN, got: bytes.len() });
        };
        if phdr[..MAGIC.len()] != MAGIC {
            return Err(LuksError::NotLuks);
        }
        let version = u16::from_be_bytes([phdr[OFF_VERSION], phdr[OFF_VERSION + 1]]);
        if version != VERSION {
            return Err(LuksError::Unsupported(format!("version {version}")));
        }
        let cipher_name = c_string(phdr, OFF_CIPHER_NAME, NAME_LEN, "cipher-name")?;
        let cipher_mode = c_string(phdr, OFF_CIPHER_MODE, NAME_LEN, "cipher-mode")?;
        if cipher_name != CIPHER_NAME || cipher_mode != CIPHER_MODE {
            return Err(LuksError::Unsupported(format!("cipher {cipher_name}-{cipher_mode}")));
        }
        let hash_spec = c_string(phdr, OFF_HASH_SPEC, NAME_LEN, "hash-spec")?;
        if hash_spec != HASH_SPEC {
            return Err(LuksError::Unsupported(format!("hash {hash_spec}")));
        }
        let key_bytes = be_u32(phdr, OFF_KEY_BYTES);
        if key_bytes as usize != KEY_BYTES {
            return Err(LuksError::Unsupported(format!("{key_bytes}-byte key")));
        }
        let payload_offset_sectors = u64::from(be_u32(phdr, OFF_PAYLOAD));
        if payload_offset_sectors == 0 {
            return Err(LuksError::Unsupported("detached header (payload offset 0)".into()));
        }
        let mk_digest_iterations = be_u32(phdr, OFF_MK_ITER);
        if mk_digest_iterations == 0 {
            return Err(LuksError::Corrupt("mk-digest-iter is 0".into()));
        }
        let uuid = c_string(phdr, OFF_UUID, UUID_LEN, "uuid")?;
        if !uuid.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(LuksError::Corrupt("uuid is not printable ASCII".into()));
        }

        let mut slots: [KeySlot; NUM_SLOTS] = std::array::from_fn(|i| {
            let s = OFF_SLOTS + i * SLOT_LEN;
            KeySlot {
                active: be_u32(phdr, s) == SLOT_ACTIVE,
                iterations: be_u32(phdr, s + 4),
                salt: array(phdr, s + 8),
                key_material_offset: be_u32(phdr, s + 40),
            }
        });
        for (i, slot) in slots.iter().enumerate() {
            let s = OFF_SLOTS + i * SLOT_LEN;
            let state = be_u32(phdr, s);
            if state != SLOT_ACTIVE && state != SLOT_INACTIVE {
                return Err(LuksError::Corrupt(format!("key slot {i} state {state:#010x}")));
            }
            let stripes = be_u32(phdr, s + 44);
            if stripes != STRIPES {
                return Err(LuksError::Corrupt(format!("key slot {i} has {stripes} stripes")));
            }
            let offset = u64::from(slot.key_material_offset);
            if offset * (SECTOR as u64) < PHDR_LEN as u64 {
                return Err(LuksError::Corrupt(format!("key slot {i} overlaps the header")));
            }
            if offset + SLOT_SECTORS > payload_offset_sectors {
                return Err(LuksError::Corrupt(format!("key slot {i} overlaps the payload")));
            }
            if slot.active && slot.iterations == 0 {
                return Err(LuksError::Corrupt(format!("key slot {i} has 0 iterations")));
            }
        }
        let mut by_offset: Vec<u64> = slots.iter().map(|s| u64::from(s.key_material_offset)).collect();
        by_offset.sort_unstable();
        if by_offset.windows(2).any(|w| w[0] + SLOT_SECTORS > w[1]) {
            return Err(LuksError::Corrupt("key slots overlap".into()));
        }
        // Inactive slots carry no meaning beyond their offset; normalise them so that
        // equality of headers is equality of what matters.
        for slot in slots.iter_mut().filter(|s| !s.active) {
            slot.iterations = 0;
            slot.salt = [0; SALT_LEN];
        }

        Ok(Header {
            payload_offset_sectors,
            uuid,
            mk_digest: array(phdr, OFF_MK_DIGEST),
            mk_digest_salt: array(phdr, OFF_MK_SALT),
            mk_digest_iterations,
            slots,
        })
    }

    /// Where the payload starts, in bytes from the start of the container: how many bytes
    /// [`Header::unlock`] needs as its header area.
    pub fn payload_offset_bytes(&self) -> u64 {
        self.payload_offset_sectors * SECTOR as u64
    }

    /// The numbers (0–7) of the key slots in use.
    pub fn active_key_slots(&self) -> Vec<usize> {
        self.slots.iter().enumerate().filter(|(_, slot)| slot.active).map(|(index, _)| index).collect()
    }

    /// PBKDF2 iterations of the master key digest.
    pub fn mk_digest_iterations(&self) -> u32 {
        self.mk_digest_iterations
    }

    /// Recovers the master key: tries each active key slot with `passphrase`, merges its key
    /// material and accepts the result only if its digest matches the mk digest (compared in
    /// constant time). `header_area` is the container from byte 0, at least up to the end of
    /// the active slots' key material (the first [`Header::payload_offset_bytes`] bytes always
    /// suffice).
    pub fn unlock(&self, header_area: &[u8], passphrase: &[u8]) -> Result<MasterKey, LuksError> {
        let active: Vec<&KeySlot> = self.slots.iter().filter(|s| s.active).collect();
        if active.is_empty() {
            return Err(LuksError::NoActiveKeySlot);
        }
        for slot in active {
            let range = slot.material_range();
            let Some(sealed) = header_area.get(range.clone()) else {
                return Err(LuksError::Truncated { needed: range.end, got: header_area.len() });
            };
            let candidate = open_key_material(slot, passphrase, sealed);
            let digest = mk_digest(candidate.as_bytes(), &self.mk_digest_salt, self.mk_digest_iterations);
            if bool::from(digest.ct_eq(&self.mk_digest)) {
                return Ok(candidate);
            }
        }
        Err(LuksError::WrongPassphrase)
    }

    fn to_bytes(&self) -> [u8; PHDR_LEN] {
        let mut out = [0u8; PHDR_LEN];
        out[..MAGIC.len()].copy_from_slice(&MAGIC);
        out[OFF_VERSION..OFF_VERSION + 2].copy_from_slice(&VERSION.to_be_bytes());
        put_str(&mut out, OFF_CIPHER_NAME, CIPHER_NAME);
        put_str(&mut out, OFF_CIPHER_MODE, CIPHER_MODE);
        put_str(&mut out, OFF_HASH_SPEC, HASH_SPEC);
        let payload = u32::try_from(self.payload_offset_sectors).unwrap_or(u32::MAX);
        put_u32(&mut out, OFF_PAYLOAD, payload);
        put_u32(&mut out, OFF_KEY_BYTES, KEY_BYTES as u32);
        out[OFF_MK_DIGEST..OFF_MK_DIGEST + DIGEST_LEN].copy_from_slice(&self.mk_digest);
        out[OFF_MK_SALT..OFF_MK_SALT + SALT_LEN].copy_from_slice(&self.mk_digest_salt);
        put_u32(&mut out, OFF_MK_ITER, self.mk_digest_iterations);
        put_str(&mut out, OFF_UUID, &self.uuid);
        for (i, slot) in self.slots.iter().enumerate() {
            let s = OFF_SLOTS + i * SLOT_LEN;
            let state = if slot.active { SLOT_ACTIVE } else { SLOT_INACTIVE };
            put_u32(&mut out, s, state);
            put_u32(&mut out, s + 4, slot.iterations);
            out[s + 8..s + 8 + SALT_LEN].copy_from_slice(&slot.salt);
            put_u32(&mut out, s + 40, slot.key_material_offset);
            put_u32(&mut out, s + 44, STRIPES);
        }
        out
    }
}

/// AES-256-XTS over 512-byte sectors with plain64 IVs: the payload cipher of a container.
///
/// IEEE 1619 XTS on the `aes` crate: the tweaks of every sector of a request are encrypted in one
/// multi-block call; the data blocks are processed inside the cipher's backend ([`XtsPass`]), so
/// that the masking runs with the backend's CPU features (AVX-512 where the backend is VAES) and
/// AES gets whole parallel batches. The key schedules are wiped on drop (`aes` with `zeroize`).
pub struct SectorCipher {
    data: Aes256,
    tweak: Aes256,
}

/// AES blocks in a sector.
const BLOCKS_PER_SECTOR: usize = SECTOR / 16;

impl SectorCipher {
    /// The payload cipher for `key` (its first 32 bytes key the data, the last 32 the tweak).
    pub fn new(key: &MasterKey) -> Self {
        Self::from_key(key.as_bytes())
    }

    fn from_key(key: &[u8; KEY_BYTES]) -> Self {
        let (data_key, tweak_key) = key.split_at(KEY_BYTES / 2);
        SectorCipher {
            data: Aes256::new_from_slice(data_key).expect("32-byte AES-256 key"),
            tweak: Aes256::new_from_slice(tweak_key).expect("32-byte AES-256 key"),
        }
    }

    /// Encrypts whole sectors in place; `first_sector` counts from the payload's first sector
    /// (data sector 0 of the volume), and is the IV of the first 512 bytes of `data`.
    ///
    /// # Panics
    /// If `data.len()` is not a multiple of [`SECTOR`] (callers check alignment at their edge).
    pub fn encrypt_sectors(&self, first_sector: u64, data: &mut [u8]) {
        let tweaks = self.tweaks(first_sector, data);
        self.data.encrypt_with_backend(XtsPass { data, tweaks: &tweaks });
    }

    /// Decrypts whole sectors in place; the counterpart of [`SectorCipher::encrypt_sectors`].
    ///
    /// # Panics
    /// If `data.len()` is not a multiple of [`SECTOR`].
    pub fn decrypt_sectors(&self, first_sector: u64, data: &mut [u8]) {
        let tweaks = self.tweaks(first_sector, data);
        self.data.decrypt_with_backend(XtsPass { data, tweaks: &tweaks });
    }

    /// T = E(tweak key, plain64(sector)) for each sector of `data`, as little-endian numbers (wiped
    /// on drop, as the masks derived from them are).
    fn tweaks(&self, first_sector: u64, data: &[u8]) -> Zeroizing<Vec<u128>> {
        assert_sectors(data);
        let mut blocks: Vec<Block> = (0..(data.len() / SECTOR) as u64)
            .map(|i| Block::from(plain64(u128::from(first_sector.wrapping_add(i)))))
            .collect();
        self.tweak.encrypt_blocks(&mut blocks);
        let tweaks = blocks.iter().map(|block| u128::from_le_bytes(block.0)).collect();
        Array::slice_as_flattened_mut(&mut blocks).zeroize();
        Zeroizing::new(tweaks)
    }
}

/// One AES block.
type Block = Array<u8, U16>;

/// One XTS pass over whole sectors, run by the block cipher's backend (encrypting or decrypting):
/// block j of a sector with tweak T becomes cipher(P ⊕ T·αʲ) ⊕ T·αʲ.
///
/// Sectors go through in batches of the backend's parallel width (or one sector when that is
/// narrower): the masks of the batch are computed, the masked blocks copied into a batch buffer,
/// the cipher runs over the buffer in parallel blocks, and the unmasked result is copied back.
/// The masks and the buffer are 64-bit word loops the compiler vectorizes; both are wiped at the
/// end, since they hold T·αʲ and plaintext ⊕ mask.
struct XtsPass<'a> {
    data: &'a mut [u8],
    tweaks: &'a [u128],
}

impl XtsPass<'_> {
    #[inline(always)]
    fn run(self, parallel: usize, mut cipher: impl FnMut(&mut [Block])) {
        let batch_sectors = (parallel / BLOCKS_PER_SECTOR).max(1);
        let mut masks = Zeroizing::new(vec![0u64; batch_sectors * BLOCKS_PER_SECTOR * 2]);
        let mut batch = vec![Block::default(); batch_sectors * BLOCKS_PER_SECTOR];
        for (sectors, tweaks) in self.data.chunks_mut(batch_sectors * SECTOR).zip(self.tweaks.chunks(batch_sectors)) {
            for (masks, &tweak) in masks.chunks_exact_mut(BLOCKS_PER_SECTOR * 2).zip(tweaks) {
                sector_masks(tweak, masks);
            }
            let blocks = &mut batch[..sectors.len() / 16];
            xor_words(Array::slice_as_flattened_mut(blocks), sectors, &masks);
            for chunk in blocks.chunks_mut(parallel) {
                cipher(chunk);
            }
            xor_words(sectors, Array::slice_as_flattened(blocks), &masks);
        }
        Array::slice_as_flattened_mut(&mut batch).zeroize();
    }
}

impl BlockSizeUser for XtsPass<'_> {
    type BlockSize = U16;
}

impl BlockCipherEncClosure for XtsPass<'_> {
    #[inline(always)]
    fn call<B: BlockCipherEncBackend<BlockSize = U16>>(self, backend: &B) {
        self.run(B::ParBlocksSize::USIZE, |blocks| match <&mut ParBlocks<B>>::try_from(&mut *blocks) {
            Ok(parallel) => backend.encrypt_par_blocks(parallel.into()),
            Err(_) => blocks.iter_mut().for_each(|block| backend.encrypt_block(block.into())),
        });
    }
}

impl BlockCipherDecClosure for XtsPass<'_> {
    #[inline(always)]
    fn call<B: BlockCipherDecBackend<BlockSize = U16>>(self, backend: &B) {
        self.run(B::ParBlocksSize::USIZE, |blocks| match <&mut ParBlocks<B>>::try_from(&mut *blocks) {
            Ok(parallel) => backend.decrypt_par_blocks(parallel.into()),
            Err(_) => blocks.iter_mut().for_each(|block| backend.decrypt_block(block.into())),
        });
    }
}

/// The XTS masks T·αʲ (j = 0..32) of one sector, as little-endian 64-bit halves (low, high).
///
/// Each is computed from T alone rather than by doubling the previous one, so the 32 are
/// independent and vectorize: T·αʲ is T shifted left by j with the j bits shifted out of the top
/// folded back in as their carry-less product with 0x87 (x¹²⁸ = x⁷ + x² + x + 1).
#[inline(always)]
fn sector_masks(tweak: u128, masks: &mut [u64]) {
    let (low, high) = (tweak as u64, (tweak >> 64) as u64);
    for (j, mask) in masks.chunks_exact_mut(2).enumerate() {
        let j = j as u32;
        // x >> (64 - j) for j in 0..64, without shifting by 64 when j = 0.
        let carry = (low >> 1) >> (63 - j);
        let folded = (high >> 1) >> (63 - j);
        mask[0] = (low << j) ^ folded ^ (folded << 1) ^ (folded << 2) ^ (folded << 7);
        mask[1] = (high << j) | carry;
    }
}

/// `out = input ⊕ masks`, 64 bits at a time.
#[inline(always)]
fn xor_words(out: &mut [u8], input: &[u8], masks: &[u64]) {
    for ((out, input), mask) in out.chunks_exact_mut(8).zip(input.chunks_exact(8)).zip(masks) {
        let word = u64::from_le_bytes(input.try_into().expect("8-byte chunk")) ^ mask;
        out.copy_from_slice(&word.to_le_bytes());
    }
}

impl fmt::Debug for SectorCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SectorCipher(aes-xts-plain64)")
    }
}

fn assert_sectors(data: &[u8]) {
    assert!(data.len().is_multiple_of(SECTOR), "LUKS sector I/O of {} bytes is not a multiple of {SECTOR}", data.len());
}

/// The plain64 IV: the sector number as a little-endian 64-bit integer, zero-padded to 16
/// bytes (it wraps at 2^64, as dm-crypt's does).
fn plain64(sector: u128) -> [u8; 16] {
    u128::from(sector as u64).to_le_bytes()
}

fn pbkdf2_sha256(secret: &[u8], salt: &[u8], iterations: u32, out: &mut [u8]) {
    pbkdf2::pbkdf2_hmac::<Sha256>(secret, salt, iterations, out);
}

fn mk_digest(key: &[u8; KEY_BYTES], salt: &[u8; SALT_LEN], iterations: u32) -> [u8; DIGEST_LEN] {
    let mut digest = [0u8; DIGEST_LEN];
    pbkdf2_sha256(key, salt, iterations, &mut digest);
    digest
}

/// The key that encrypts a slot's key material: PBKDF2-SHA256(passphrase, salt, iterations).
fn slot_key(slot: &KeySlot, passphrase: &[u8]) -> Zeroizing<[u8; KEY_BYTES]> {
    let mut key = Zeroizing::new([0u8; KEY_BYTES]);
    pbkdf2_sha256(passphrase, &slot.salt, slot.iterations, &mut key[..]);
    key
}

/// AF-splits `master_key` and encrypts the stripes for `slot`: the bytes of its key material.
fn seal_key_material(slot: &KeySlot, passphrase: &[u8], master_key: &MasterKey, entropy: &Entropy) -> Vec<u8> {
    let mut material = af_split(master_key.as_bytes(), STRIPES as usize, entropy);
    SectorCipher::from_key(&slot_key(slot, passphrase)).encrypt_sectors(0, &mut material);
    // Encrypted, the stripes are no longer secret.
    std::mem::take(&mut *material)
}

/// Decrypts a slot's key material with `passphrase` and AF-merges it into a candidate key.
fn open_key_material(slot: &KeySlot, passphrase: &[u8], sealed: &[u8]) -> MasterKey {
    let mut material = Zeroizing::new(sealed.to_vec());
    SectorCipher::from_key(&slot_key(slot, passphrase)).decrypt_sectors(0, &mut material);
    let merged = af_merge(&material, STRIPES as usize);
    MasterKey::from_slice(&merged)
}

/// The anti-forensic splitter: `stripes - 1` random blocks s_k, then
/// d_0 = 0, d_k = H(d_{k-1} ⊕ s_k), and the last block is d_{n-1} ⊕ key.
fn af_split(key: &[u8], stripes: usize, entropy: &Entropy) -> Zeroizing<Vec<u8>> {
    let n = key.len();
    let mut out = Zeroizing::new(vec![0u8; n * stripes]);
    let mut d = Zeroizing::new(vec![0u8; n]);
    let (random, last) = out.split_at_mut(n * (stripes - 1));
    entropy.fill(Purpose::VolumeKey, random);
    for stripe in random.chunks_exact(n) {
        xor_into(&mut d, stripe);
        diffuse(&mut d);
    }
    last.copy_from_slice(key);
    xor_into(last, &d);
    out
}

/// The inverse of [`af_split`]: recomputes d_{n-1} from the first stripes and XORs it with the
/// last one.
fn af_merge(material: &[u8], stripes: usize) -> Zeroizing<Vec<u8>> {
    let n = material.len() / stripes;
    let mut d = Zeroizing::new(vec![0u8; n]);
    let (head, last) = material.split_at(n * (stripes - 1));
    for stripe in head.chunks_exact(n) {
        xor_into(&mut d, stripe);
        diffuse(&mut d);
    }
    xor_into(&mut d, last);
    d
}

/// The splitter's diffusion H: each digest-sized block i of `buf` (the last one possibly
/// shorter) becomes the first bytes of SHA-256(be32(i) ‖ block).
fn diffuse(buf: &mut [u8]) {
    for (i, block) in buf.chunks_mut(Sha256::output_size()).enumerate() {
        let mut hash = Sha256::new();
        hash.update((i as u32).to_be_bytes());
        hash.update(&*block);
        let mut digest = hash.finalize();
        block.copy_from_slice(&digest[..block.len()]);
        digest.zeroize();
    }
}

fn xor_into(acc: &mut [u8], other: &[u8]) {
    for (a, b) in acc.iter_mut().zip(other) {
        *a ^= b;
    }
}

fn be_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(array(bytes, at))
}

fn array<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&bytes[at..at + N]);
    out
}

/// A NUL-terminated, NUL-padded ASCII string in a fixed-size field.
fn c_string(bytes: &[u8], at: usize, len: usize, field: &str) -> Result<String, LuksError> {
    let raw = &bytes[at..at + len];
    let Some(end) = raw.iter().position(|&b| b == 0) else {
        return Err(LuksError::Corrupt(format!("{field} is not NUL-terminated")));
    };
    if !raw[..end].is_ascii() {
        return Err(LuksError::Corrupt(format!("{field} is not ASCII")));
    }
    // cryptsetup (strncpy) and qemu (a zeroed header) pad with NULs: anything else is damage.
    if raw[end..].iter().any(|&b| b != 0) {
        return Err(LuksError::Corrupt(format!("{field} has bytes after its end")));
    }
    Ok(String::from_utf8_lossy(&raw[..end]).into_owned())
}

fn put_u32(out: &mut [u8], at: usize, value: u32) {
    out[at..at + 4].copy_from_slice(&value.to_be_bytes());
}

fn put_str(out: &mut [u8], at: usize, value: &str) {
    out[at..at + value.len()].copy_from_slice(value.as_bytes());
}

#[cfg(test)]
mod tests {
    use rand::Rng;

    use super::*;

    const PASSPHRASE: &[u8] = b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    /// The batched XTS equals the `xts-mode` crate's (IEEE 1619, block by block) on random keys, data and
    /// sector numbers, including the plain64 wrap at 2^64.
    #[test]
    fn sector_cipher_matches_the_xts_mode_crate() {
        let mut rng = rand::thread_rng();
        for _ in 0..50 {
            let mut key = [0u8; KEY_BYTES];
            rng.fill(&mut key[..]);
            let ours = SectorCipher::from_key(&key);
            let reference = xts_mode::Xts128::new(
                <aes08::Aes256 as aes08::cipher::KeyInit>::new_from_slice(&key[..32]).unwrap(),
                <aes08::Aes256 as aes08::cipher::KeyInit>::new_from_slice(&key[32..]).unwrap(),
            );
            let sectors = rng.gen_range(1..9);
            let first: u64 = if rng.gen_bool(0.2) { u64::MAX - 2 } else { rng.r#gen() };
            let mut data = vec![0u8; sectors * SECTOR];
            rng.fill(&mut data[..]);
            let mut expected = data.clone();
            reference.encrypt_area(&mut expected, SECTOR, u128::from(first), plain64);
            let mut actual = data.clone();
            ours.encrypt_sectors(first, &mut actual);
            assert_eq!(actual, expected);
            ours.decrypt_sectors(first, &mut actual);
            assert_eq!(actual, data);
        }
    }

    #[test]
    fn layout_matches_cryptsetup() {
        let offsets: Vec<u32> = (0..NUM_SLOTS).map(slot_offset).collect();
        assert_eq!(offsets, [8, 512, 1016, 1520, 2024, 2528, 3032, 3536]);
        assert_eq!(SLOT_SECTORS, 500);
        assert!(u64::from(slot_offset(NUM_SLOTS - 1)) + SLOT_SECTORS <= PAYLOAD_OFFSET_SECTORS);
    }

    #[test]
    fn format_parse_unlock_round_trip() {
        let (area, key, header) = format(PASSPHRASE, DEFAULT_ITERATIONS, &Entropy::os()).unwrap();
        assert_eq!(area.len() as u64, header.payload_offset_bytes());
        assert_eq!(header.payload_offset_sectors, PAYLOAD_OFFSET_SECTORS);
        assert_eq!(header.uuid.len(), 36);
        let parsed = Header::parse(&area).unwrap();
        assert_eq!(parsed, header);
        assert_eq!(parsed.to_bytes()[..], area[..PHDR_LEN]);
        let unlocked = parsed.unlock(&area, PASSPHRASE).unwrap();
        assert_eq!(unlocked.as_bytes(), key.as_bytes());
        assert!(area[PHDR_LEN..8 * SECTOR].iter().all(|&b| b == 0));
    }

    #[test]
    fn wrong_passphrase_is_refused() {
        let (area, _, header) = format(PASSPHRASE, DEFAULT_ITERATIONS, &Entropy::os()).unwrap();
        let mut wrong = PASSPHRASE.to_vec();
        wrong[63] ^= 1;
        assert_eq!(header.unlock(&area, &wrong).unwrap_err(), LuksError::WrongPassphrase);
        assert_eq!(header.unlock(&area, b"").unwrap_err(), LuksError::WrongPassphrase);
    }

    #[test]
    fn zero_iterations_are_refused() {
        assert!(matches!(format(PASSPHRASE, 0, &Entropy::os()), Err(LuksError::InvalidParameter(_))));
    }

    #[test]
    fn any_flipped_bit_in_key_material_fails_to_unlock() {
        let (area, _, header) = format(PASSPHRASE, DEFAULT_ITERATIONS, &Entropy::os()).unwrap();
        let range = header.slots[0].material_range();
        let mut rng = rand::thread_rng();
        let mut positions = vec![range.start, range.end - 1];
        positions.extend((0..30).map(|_| rng.gen_range(range.clone())));
        for pos in positions {
            let mut bad = area.clone();
            bad[pos] ^= 1 << rng.gen_range(0..8);
            assert_eq!(header.unlock(&bad, PASSPHRASE).unwrap_err(), LuksError::WrongPassphrase, "flip at byte {pos}");
        }
    }

    #[test]
    fn flipped_bits_in_the_fields_that_matter_are_errors() {
        let (area, _, header) = format(PASSPHRASE, DEFAULT_ITERATIONS, &Entropy::os()).unwrap();
        let slot0 = OFF_SLOTS..OFF_SLOTS + SLOT_LEN;
        // Magic, version, names, payload offset, key bytes, mk digest and salt, the low byte of
        // the iteration counts (a high bit would only make the test slow), and slot 0's state,
        // salt, offset and stripes: every bit where parsing decides, one random bit per byte
        // where only an unlock can tell (each costs two PBKDF2 runs).
        let unlock_decides =
            |byte: usize| (OFF_MK_DIGEST..OFF_UUID).contains(&byte) || (OFF_SLOTS + 4..OFF_SLOTS + 40).contains(&byte);
        let mut rng = rand::thread_rng();
        let mut bits: Vec<(usize, u8)> = Vec::new();
        for byte in (0..OFF_MK_ITER).chain(OFF_MK_ITER + 3..OFF_MK_ITER + 4).chain(slot0) {
            if (OFF_SLOTS + 4..OFF_SLOTS + 7).contains(&byte) {
                continue; // high bytes of slot 0's iterations
            }
            if unlock_decides(byte) {
                bits.push((byte, rng.gen_range(0..8)));
            } else {
                bits.extend((0..8).map(|bit| (byte, bit)));
            }
        }
        for (byte, bit) in bits {
            let mut bad = area.clone();
            bad[byte] ^= 1 << bit;
            let parsed = Header::parse(&bad);
            if (OFF_PAYLOAD..OFF_PAYLOAD + 4).contains(&byte) {
                // LUKS1 does not authenticate the payload offset: a flip that keeps it past the
                // key material is a valid header, which the caller sees moved.
                if let Ok(moved) = parsed {
                    assert_ne!(moved.payload_offset_sectors, header.payload_offset_sectors);
                }
                continue;
            }
            let result = parsed.and_then(|h| h.unlock(&bad, PASSPHRASE));
            assert!(result.is_err(), "flip of bit {bit} of byte {byte} went unnoticed");
        }
    }

    #[test]
    fn truncation_is_an_error() {
        let (area, _, header) = format(PASSPHRASE, DEFAULT_ITERATIONS, &Entropy::os()).unwrap();
        for len in 0..PHDR_LEN {
            assert!(matches!(Header::parse(&area[..len]), Err(LuksError::Truncated { .. })));
        }
        let end = header.slots[0].material_range().end;
        for len in [PHDR_LEN, 8 * SECTOR, end - 1] {
            assert_eq!(
                header.unlock(&area[..len], PASSPHRASE).unwrap_err(),
                LuksError::Truncated { needed: end, got: len }
            );
        }
        assert!(header.unlock(&area[..end], PASSPHRASE).is_ok());
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let (area, _, _) = format(PASSPHRASE, DEFAULT_ITERATIONS, &Entropy::os()).unwrap();
        let valid = &area[..PHDR_LEN];
        let mut rng = rand::thread_rng();
        for round in 0..20_000 {
            let mut bytes = match round % 3 {
                // Pure noise of any length.
                0 => {
                    let mut b = vec![0u8; rng.gen_range(0..1200)];
                    rng.fill(&mut b[..]);
                    b
                }
                // Noise behind a valid prefix, to reach the deeper checks.
                1 => {
                    let mut b = vec![0u8; PHDR_LEN];
                    rng.fill(&mut b[..]);
                    let keep = rng.gen_range(0..=PHDR_LEN);
                    b[..keep].copy_from_slice(&valid[..keep]);
                    b
                }
                // A valid header with a few random bytes replaced.
                _ => valid.to_vec(),
            };
            if round % 3 == 2 {
                for _ in 0..rng.gen_range(1..6) {
                    let at = rng.gen_range(0..PHDR_LEN);
                    bytes[at] = rng.r#gen();
                }
            }
            let _ = Header::parse(&bytes);
        }
    }

    #[test]
    fn overlapping_or_misplaced_slots_are_corrupt() {
        let (area, _, header) = format(PASSPHRASE, DEFAULT_ITERATIONS, &Entropy::os()).unwrap();
        let cases: [(usize, u32); 4] = [
            (1, 8),    // slot 1 on top of slot 0
            (0, 1),    // slot 0 inside the header
            (7, 3600), // slot 7 runs into the payload
            (3, 1500), // slot 3 overlaps slot 2's end
        ];
        for (slot, offset) in cases {
            let mut h = header.clone();
            h.slots[slot].key_material_offset = offset;
            let mut bytes = area.clone();
            bytes[..PHDR_LEN].copy_from_slice(&h.to_bytes());
            assert!(matches!(Header::parse(&bytes), Err(LuksError::Corrupt(_))), "slot {slot} at {offset}");
        }
    }

    #[test]
    fn no_active_slot_is_reported() {
        let (area, _, mut header) = format(PASSPHRASE, DEFAULT_ITERATIONS, &Entropy::os()).unwrap();
        header.slots[0].active = false;
        assert_eq!(header.unlock(&area, PASSPHRASE).unwrap_err(), LuksError::NoActiveKeySlot);
    }

    #[test]
    fn af_split_merge_round_trip() {
        let key = [0x42u8; KEY_BYTES];
        for stripes in [1, 2, 3, 4000] {
            let split = af_split(&key, stripes, &Entropy::os());
            assert_eq!(split.len(), KEY_BYTES * stripes);
            assert_eq!(af_merge(&split, stripes)[..], key[..]);
        }
        // Diffusion of a block that is not a multiple of the digest size truncates the last
        // hash, as cryptsetup's does.
        let mut odd = [7u8; 40];
        diffuse(&mut odd);
        let mut tail = Sha256::new();
        tail.update(1u32.to_be_bytes());
        tail.update([7u8; 8]);
        assert_eq!(odd[32..], tail.finalize()[..8]);
    }

    #[test]
    fn sector_cipher_round_trip_and_sector_tweak() {
        let key = MasterKey::generate(&Entropy::os());
        let cipher = SectorCipher::new(&key);
        let plain = vec![0x5au8; 4 * SECTOR];
        let mut data = plain.clone();
        cipher.encrypt_sectors(10, &mut data);
        assert_ne!(data, plain);
        // Equal plaintext sectors encrypt differently at different sector numbers.
        assert_ne!(data[..SECTOR], data[SECTOR..2 * SECTOR]);
        // Sector-by-sector encryption equals encrypting the run at once.
        let mut second = plain[SECTOR..2 * SECTOR].to_vec();
        cipher.encrypt_sectors(11, &mut second);
        assert_eq!(second[..], data[SECTOR..2 * SECTOR]);
        cipher.decrypt_sectors(10, &mut data);
        assert_eq!(data, plain);
        assert_eq!(format!("{key:?}"), "MasterKey(..)");
    }

    #[test]
    #[should_panic(expected = "not a multiple of 512")]
    fn partial_sectors_panic() {
        SectorCipher::new(&MasterKey::generate(&Entropy::os())).encrypt_sectors(0, &mut [0u8; 100]);
    }
}
