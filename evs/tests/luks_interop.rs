//! `evs::luks` against real LUKS1 implementations: qemu (`qemu-img`, `qemu-io`,
//! `driver=luks`) opens the containers we write, we open the ones qemu and cryptsetup write, and
//! `cryptsetup luksDump` accepts our headers and recovers our master key.
//!
//! A test whose tool is not installed prints `SKIP` and passes; install them with
//! `apt-get install -y qemu-utils cryptsetup-bin`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use evs::luks::{self, DEFAULT_ITERATIONS, Header, LuksError, MasterKey, SECTOR, SectorCipher};
use rand::RngCore;

const MIB: usize = 1024 * 1024;
/// Payload size of the test volumes.
const VOLUME_BYTES: usize = 4 * MIB;

/// The full path of `name` if it is installed (cryptsetup lives in /usr/sbin).
fn tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// The tools a test needs, or `None` after printing why it is skipped.
fn tools<const N: usize>(test: &str, names: [&str; N]) -> Option<[PathBuf; N]> {
    let found = names.map(tool);
    if let Some(missing) = names.iter().zip(&found).find(|(_, path)| path.is_none()) {
        eprintln!("SKIP {test}: `{}` is not installed", missing.0);
        return None;
    }
    Some(found.map(Option::unwrap))
}

/// A passphrase as kmsim makes them: the lowercase hex of a 256-bit data key.
fn passphrase() -> String {
    let mut dek = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut dek);
    hex::encode(dek)
}

fn secret_object(passphrase: &str) -> String {
    format!("secret,id=sec0,data={passphrase}")
}

fn image_opts(path: &Path) -> String {
    format!("driver=luks,key-secret=sec0,file.filename={}", path.display())
}

/// Runs `command`, returning its output; panics with stdout and stderr if it fails.
fn run(command: &mut Command) -> Output {
    let output = command.output().expect("tool runs");
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn qemu_io(qemu_io: &Path, passphrase: &str, image: &Path, commands: &[&str]) -> Output {
    let mut command = Command::new(qemu_io);
    command.arg("--object").arg(secret_object(passphrase)).arg("--image-opts");
    for c in commands {
        command.arg("-c").arg(c);
    }
    command.arg(image_opts(image)).output().expect("qemu-io runs")
}

/// The plaintext of the test volumes: 1 MiB of 0x5a, 1 MiB of 0xa5, then bytes that differ in
/// every sector and position.
fn plaintext() -> Vec<u8> {
    let mut data = vec![0x5au8; VOLUME_BYTES];
    data[MIB..2 * MIB].fill(0xa5);
    for (i, byte) in data[2 * MIB..].iter_mut().enumerate() {
        let sector = i / SECTOR;
        *byte = (sector as u8).wrapping_mul(7) ^ (i as u8);
    }
    data
}

/// Writes a container with our code: header area, then `plain` encrypted from data sector 0.
fn write_volume(path: &Path, passphrase: &str, plain: &[u8]) -> (MasterKey, Header) {
    let (mut file, key, header) =
        luks::format(passphrase.as_bytes(), DEFAULT_ITERATIONS, &shared::Entropy::os()).unwrap();
    assert_eq!(file.len() as u64, header.payload_offset_bytes());
    let mut payload = plain.to_vec();
    SectorCipher::new(&key).encrypt_sectors(0, &mut payload);
    file.extend_from_slice(&payload);
    fs::write(path, file).unwrap();
    (key, header)
}

/// Opens a container file with our code and decrypts its whole payload.
fn read_volume(path: &Path, passphrase: &str) -> Result<(Header, MasterKey, Vec<u8>), LuksError> {
    let file = fs::read(path).unwrap();
    let header = Header::parse(&file)?;
    let key = header.unlock(&file, passphrase.as_bytes())?;
    let mut payload = file[header.payload_offset_bytes() as usize..].to_vec();
    SectorCipher::new(&key).decrypt_sectors(0, &mut payload);
    Ok((header, key, payload))
}

/// The master key that `cryptsetup luksDump --dump-volume-key` recovers with `passphrase`.
fn cryptsetup_master_key(cryptsetup: &Path, image: &Path, passphrase: &str) -> Vec<u8> {
    let key_file = tempfile::NamedTempFile::new().unwrap();
    fs::write(key_file.path(), passphrase).unwrap();
    let output = run(Command::new(cryptsetup)
        .args(["luksDump", "--dump-volume-key", "-q", "--key-file"])
        .arg(key_file.path())
        .arg(image));
    let text = String::from_utf8(output.stdout).unwrap();
    let dump = text.split_once("MK dump:").expect("an MK dump").1;
    let bytes: Vec<u8> = dump.split_whitespace().map_while(|t| u8::from_str_radix(t, 16).ok()).collect();
    assert_eq!(bytes.len(), luks::KEY_BYTES, "{text}");
    bytes
}

#[test]
fn qemu_io_reads_and_verifies_our_volume() {
    let Some([qemu_io_bin]) = tools("qemu_io_reads_and_verifies_our_volume", ["qemu-io"]) else { return };
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("ours.luks");
    let pass = passphrase();
    write_volume(&image, &pass, &plaintext());

    let output = qemu_io(&qemu_io_bin, &pass, &image, &["read -P 0x5a 0 1M", "read -P 0xa5 1M 1M"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "qemu-io failed: {stdout}\n{stderr}");
    assert!(!stdout.contains("Pattern verification failed"), "{stdout}");
    assert!(stdout.contains("read 1048576/1048576 bytes at offset 0\n"), "{stdout}");
    assert!(stdout.contains("read 1048576/1048576 bytes at offset 1048576\n"), "{stdout}");

    // The check has teeth: a wrong pattern is reported.
    let output = qemu_io(&qemu_io_bin, &pass, &image, &["read -P 0x00 0 512"]);
    assert!(String::from_utf8_lossy(&output.stdout).contains("Pattern verification failed"));

    // A wrong passphrase is refused by qemu too.
    let output = qemu_io(&qemu_io_bin, &passphrase(), &image, &["read 0 512"]);
    assert!(!output.status.success(), "qemu-io opened the volume with a wrong passphrase");
}

#[test]
fn qemu_img_convert_decrypts_our_volume_byte_for_byte() {
    let Some([qemu_img]) = tools("qemu_img_convert_decrypts_our_volume_byte_for_byte", ["qemu-img"]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("ours.luks");
    let raw = dir.path().join("out.raw");
    let pass = passphrase();
    let plain = plaintext();
    write_volume(&image, &pass, &plain);

    run(Command::new(qemu_img)
        .args(["convert", "--object", &secret_object(&pass), "--image-opts", &image_opts(&image), "-O", "raw"])
        .arg(&raw));
    let out = fs::read(&raw).unwrap();
    assert_eq!(out.len(), plain.len());
    assert!(out == plain, "qemu-img convert output differs from what we encrypted");
}

#[test]
fn qemu_writes_into_our_volume_and_we_read_it() {
    let Some([qemu_io_bin]) = tools("qemu_writes_into_our_volume_and_we_read_it", ["qemu-io"]) else { return };
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("ours.luks");
    let pass = passphrase();
    let mut expected = plaintext();
    write_volume(&image, &pass, &expected);

    // Sector-aligned but crossing our patterns' boundaries, and one lone sector near the end.
    let output = qemu_io(&qemu_io_bin, &pass, &image, &["write -P 0x3c 1020K 8K", "write -P 0xc3 4095K 512"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    expected[1020 * 1024..1028 * 1024].fill(0x3c);
    expected[4095 * 1024..4095 * 1024 + 512].fill(0xc3);

    let (_, _, payload) = read_volume(&image, &pass).unwrap();
    assert!(payload == expected, "our decryption of qemu's writes differs");
}

#[test]
fn cryptsetup_accepts_our_header_and_recovers_our_key() {
    let Some([cryptsetup]) = tools("cryptsetup_accepts_our_header_and_recovers_our_key", ["cryptsetup"]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("ours.luks");
    let pass = passphrase();
    let (key, header) = write_volume(&image, &pass, &plaintext());

    let output = run(Command::new(&cryptsetup).arg("luksDump").arg(&image));
    let dump = String::from_utf8(output.stdout).unwrap();
    let field = |name: &str| {
        let line = dump.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("no {name} in {dump}"));
        line[name.len()..].trim().to_string()
    };
    assert_eq!(field("Version:"), "1");
    assert_eq!(field("Cipher name:"), "aes");
    assert_eq!(field("Cipher mode:"), "xts-plain64");
    assert_eq!(field("Hash spec:"), "sha256");
    assert_eq!(field("Payload offset:"), "4096");
    assert_eq!(field("MK bits:"), "512");
    assert_eq!(field("MK iterations:"), DEFAULT_ITERATIONS.to_string());
    assert_eq!(field("UUID:"), header.uuid);
    assert_eq!(field("Key Slot 0:"), "ENABLED");
    assert_eq!(field("Key Slot 7:"), "DISABLED");
    let offsets: Vec<String> = dump
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Key material offset:"))
        .map(|v| v.trim().to_string())
        .collect();
    assert_eq!(offsets, ["8"], "{dump}");

    // cryptsetup opens our key slot and the key it finds is ours.
    assert_eq!(cryptsetup_master_key(&cryptsetup, &image, &pass), key.as_bytes());
}

#[test]
fn we_open_a_volume_qemu_img_created_and_qemu_io_wrote() {
    let Some([qemu_img, qemu_io_bin]) =
        tools("we_open_a_volume_qemu_img_created_and_qemu_io_wrote", ["qemu-img", "qemu-io"])
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("qemu.luks");
    let pass = passphrase();
    run(Command::new(&qemu_img)
        .args(["create", "--object", &secret_object(&pass), "-f", "luks", "-o"])
        .arg(
            "key-secret=sec0,cipher-alg=aes-256,cipher-mode=xts,ivgen-alg=plain64,hash-alg=sha256,\
             iter-time=10",
        )
        .arg(&image)
        .arg("4M"));
    let output = qemu_io(&qemu_io_bin, &pass, &image, &["write -P 0x5a 0 1M", "write -P 0xa5 3M 4K"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));

    let (header, _, payload) = read_volume(&image, &pass).unwrap();
    // qemu aligns the payload to the key material (4040), cryptsetup to 1 MiB (4096): both parse.
    assert_eq!(header.payload_offset_sectors, 4040);
    assert_eq!(payload.len(), VOLUME_BYTES);
    assert!(payload[..MIB].iter().all(|&b| b == 0x5a));
    assert!(payload[3 * MIB..3 * MIB + 4096].iter().all(|&b| b == 0xa5));
    // Sectors never written are zero ciphertext, which decrypts to noise: there we must agree
    // with what qemu itself reads.
    let raw = dir.path().join("out.raw");
    run(Command::new(qemu_img)
        .args(["convert", "--object", &secret_object(&pass), "--image-opts", &image_opts(&image), "-O", "raw"])
        .arg(&raw));
    assert!(fs::read(&raw).unwrap() == payload, "our decryption differs from qemu's");

    // A wrong passphrase, and a flipped bit in the key slot, are errors.
    assert_eq!(read_volume(&image, &passphrase()).unwrap_err(), LuksError::WrongPassphrase);
    let mut file = fs::read(&image).unwrap();
    file[8 * SECTOR + 1000] ^= 0x10;
    fs::write(&image, &file).unwrap();
    assert_eq!(read_volume(&image, &pass).unwrap_err(), LuksError::WrongPassphrase);
}

#[test]
fn we_open_every_key_slot_of_a_cryptsetup_volume() {
    let Some([cryptsetup]) = tools("we_open_every_key_slot_of_a_cryptsetup_volume", ["cryptsetup"]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("cryptsetup.luks");
    fs::File::create(&image).unwrap().set_len(VOLUME_BYTES as u64).unwrap();
    let passes = [passphrase(), passphrase()];
    let key_files: Vec<PathBuf> = passes
        .iter()
        .enumerate()
        .map(|(i, pass)| {
            let path = dir.path().join(format!("key{i}"));
            fs::write(&path, pass).unwrap();
            path
        })
        .collect();
    let common = ["--type", "luks1", "--cipher", "aes-xts-plain64", "--key-size", "512", "--hash", "sha256"];
    run(Command::new(&cryptsetup)
        .args(["luksFormat", "-q", "--pbkdf-force-iterations", "1000"])
        .args(common)
        .arg("--key-file")
        .arg(&key_files[0])
        .arg(&image));
    run(Command::new(&cryptsetup)
        .args(["luksAddKey", "-q", "--pbkdf-force-iterations", "1000", "--key-file"])
        .arg(&key_files[0])
        .arg(&image)
        .arg(&key_files[1]));

    let expected = cryptsetup_master_key(&cryptsetup, &image, &passes[0]);
    let file = fs::read(&image).unwrap();
    let header = Header::parse(&file).unwrap();
    assert_eq!(header.payload_offset_sectors, 4096);
    for pass in &passes {
        let key = header.unlock(&file, pass.as_bytes()).unwrap();
        assert_eq!(key.as_bytes()[..], expected[..]);
    }
    assert_eq!(header.unlock(&file, passphrase().as_bytes()).unwrap_err(), LuksError::WrongPassphrase);
}

#[test]
fn random_bytes_are_a_clean_error() {
    let mut rng = rand::thread_rng();
    for len in [0, 6, 591, 592, 4096, 2 * MIB] {
        let mut bytes = vec![0u8; len];
        rng.fill_bytes(&mut bytes);
        let error = Header::parse(&bytes).unwrap_err();
        assert!(matches!(error, LuksError::Truncated { .. } | LuksError::NotLuks), "{len}: {error}");
    }
}
