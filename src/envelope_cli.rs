//! `kmsim encrypt`, `kmsim decrypt` and `kmsim inspect`: client-side envelope encryption of files against any AWS
//! KMS endpoint (kmsim, or AWS KMS itself), writing and reading AWS Encryption SDK messages.
//!
//! `encrypt` asks KMS for a data key (GenerateDataKey) and streams the input through [`obs::envelope::Encryptor`]:
//! format version 2, suite `0x0478` (committing, unsigned), framed, one encrypted data key with provider id
//! `aws-kms` and the key ARN as provider info, as the AWS Encryption SDK writes it. `decrypt` reads such a message,
//! or one of the SDK's default signed suite `0x0578`, checks the key and context the caller expects, has KMS decrypt
//! the data key (Decrypt, naming the key ARN, in that key's region) and streams the body through
//! [`obs::envelope::Decryptor`]. `inspect` explains a message without decrypting it. The message code is the object
//! store's: one implementation in the workspace.
//!
//! Memory stays bounded whatever the input's size: one read buffer ([`CHUNK`]), the frames it completes, and at
//! most one frame held back. Outputs are [`files::Output`]s: a file appears whole after the last check passed, or
//! not at all.
//!
//! Modules: [`aws_config`] (credentials, region, endpoint, as the SDKs resolve them), [`kms_client`] (the two KMS
//! calls), [`files`] (inputs, atomic outputs, progress bar), [`inspect`].

pub mod aws_config;
pub mod files;
pub mod inspect;
pub mod kms_client;

use std::collections::BTreeMap;
use std::path::PathBuf;

use obs::envelope::{self, EncryptedDataKey, EnvelopeError, Header};
use zeroize::Zeroizing;

use self::aws_config::{AwsSettings, ConfigError, Environment, Overrides};
use self::files::{Input, Output, Progress};
use self::kms_client::{DataKey, KmsClient, KmsError};

/// The key provider id of AWS KMS in an encrypted data key.
pub const AWS_KMS_PROVIDER_ID: &str = "aws-kms";

/// Plaintext (or ciphertext) read per step: the bound on what a command holds besides one frame.
pub const CHUNK: usize = 1024 * 1024;

/// The frame length `kmsim encrypt` writes unless told otherwise (the object store's; the AWS Encryption SDK's
/// default is 4096).
pub const DEFAULT_FRAME_LENGTH: u32 = envelope::FRAME_LENGTH;

/// The prefix the AWS Encryption SDK reserves for its own encryption context keys.
const RESERVED_CONTEXT_PREFIX: &str = "aws-crypto-";

/// Why a command failed. Every one ends the command with exit code 1 and leaves no output file.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The arguments make no sense together.
    #[error("{0}")]
    Usage(String),
    /// A file could not be read or written.
    #[error("{what}: {source}")]
    Io {
        /// What was being done (`reading in.bin`).
        what: String,
        /// Why it failed.
        source: std::io::Error,
    },
    /// Credentials, region or endpoint could not be resolved.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A KMS call failed.
    #[error(transparent)]
    Kms(#[from] KmsError),
    /// The message is malformed, or failed authentication.
    #[error("{what}: {source}")]
    Envelope {
        /// What was being done (`decrypting in.enc`).
        what: String,
        /// What was wrong.
        source: EnvelopeError,
    },
    /// The message is well formed but not what the caller said to expect (key, context).
    #[error("refusing to decrypt {input}: {reason}")]
    Refused {
        /// The input.
        input: String,
        /// Why.
        reason: String,
    },
}

/// Result of the envelope commands.
pub type Result<T, E = CliError> = std::result::Result<T, E>;

fn io_error(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> CliError {
    let what = what.into();
    move |source| CliError::Io { what, source }
}

/// The AWS settings every KMS-calling command takes.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct AwsArgs {
    /// Profile of ~/.aws/credentials and ~/.aws/config; its credentials win over AWS_ACCESS_KEY_ID (default:
    /// $AWS_PROFILE, else `default`).
    #[arg(long)]
    pub profile: Option<String>,
    /// Region for keys not named by ARN (default: $AWS_REGION, $AWS_DEFAULT_REGION, the profile's region).
    #[arg(long)]
    pub region: Option<String>,
    /// KMS endpoint, e.g. http://127.0.0.1:4566 for kmsim (default: $AWS_ENDPOINT_URL_KMS, $AWS_ENDPOINT_URL,
    /// else https://kms.<region>.amazonaws.com).
    #[arg(long, value_name = "URL")]
    pub endpoint_url: Option<String>,
    /// PEM file of certificate authorities to trust besides the system's, e.g. the CA `kmsim --tls` prints
    /// (default: $AWS_CA_BUNDLE, the profile's ca_bundle).
    #[arg(long, value_name = "FILE")]
    pub ca_bundle: Option<PathBuf>,
}

impl AwsArgs {
    fn overrides(&self) -> Overrides {
        Overrides {
            profile: self.profile.clone(),
            region: self.region.clone(),
            endpoint_url: self.endpoint_url.clone(),
            ca_bundle: self.ca_bundle.clone(),
        }
    }
}

/// `kmsim encrypt`.
#[derive(Debug, Clone, clap::Args)]
pub struct EncryptArgs {
    /// The KMS key: key id, key ARN, alias name (alias/x) or alias ARN.
    #[arg(long, value_name = "KEY")]
    pub key: String,
    /// An encryption context pair, k=v (repeat for more); stored in the message and bound to the data key.
    #[arg(long = "context", value_name = "K=V")]
    pub context: Vec<String>,
    /// Plaintext bytes per frame.
    #[arg(long, default_value_t = DEFAULT_FRAME_LENGTH, value_name = "N")]
    pub frame_length: u32,
    /// KMS access, IN and OUT.
    #[command(flatten)]
    pub io: KmsFiles,
}

/// `kmsim decrypt`.
#[derive(Debug, Clone, clap::Args)]
pub struct DecryptArgs {
    /// A key ARN the message may be encrypted under (repeat for more); without one, any KMS key the credentials
    /// may use is accepted.
    #[arg(long = "key", value_name = "KEY_ARN")]
    pub keys: Vec<String>,
    /// A pair the message's encryption context must hold, k=v (repeat for more).
    #[arg(long = "context", value_name = "K=V")]
    pub context: Vec<String>,
    /// KMS access, IN and OUT.
    #[command(flatten)]
    pub io: KmsFiles,
}

/// What `encrypt` and `decrypt` share: how to reach KMS, what to read and where to write.
#[derive(Debug, Clone, clap::Args)]
pub struct KmsFiles {
    /// KMS access.
    #[command(flatten)]
    pub aws: AwsArgs,
    /// The file to read (plaintext for encrypt, a message for decrypt), or - for stdin.
    #[arg(value_name = "IN")]
    pub input: String,
    /// The file to write, or - for stdout; it appears only when the command succeeds.
    #[arg(value_name = "OUT")]
    pub output: String,
}

/// `kmsim inspect`.
#[derive(Debug, Clone, clap::Args)]
pub struct InspectArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// The message to describe, or - for stdin.
    #[arg(value_name = "FILE")]
    pub input: String,
}

/// Parses `k=v` pairs (the value may contain `=`; keys must be unique and not empty).
pub fn parse_context(pairs: &[String]) -> Result<BTreeMap<String, String>> {
    let mut context = BTreeMap::new();
    for pair in pairs {
        let Some((key, value)) = pair.split_once('=') else {
            return Err(CliError::Usage(format!("--context wants k=v, not '{pair}'")));
        };
        if key.is_empty() {
            return Err(CliError::Usage(format!("--context '{pair}' has an empty key")));
        }
        if context.insert(key.to_owned(), value.to_owned()).is_some() {
            return Err(CliError::Usage(format!("--context names '{key}' twice")));
        }
    }
    Ok(context)
}

/// A current-thread runtime for the KMS calls (the file work is synchronous).
fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(io_error("starting the runtime for the KMS calls"))
}

/// Attempts per KMS call: `AWS_MAX_ATTEMPTS`, else the SDKs' default.
fn max_attempts(env: &Environment) -> u32 {
    env.get("AWS_MAX_ATTEMPTS").and_then(|value| value.parse().ok()).unwrap_or(kms_client::DEFAULT_MAX_ATTEMPTS)
}

fn kms_client(settings: &AwsSettings, region: &str, env: &Environment) -> Result<KmsClient> {
    Ok(KmsClient::new(
        &settings.endpoint_for(region),
        region,
        settings.credentials.clone(),
        settings.ca_bundle.as_deref(),
        max_attempts(env),
    )?)
}

/// Opens IN and prepares OUT, refusing to write a file over the input it reads.
fn open_files(input: &str, output: &str) -> Result<(Input, Output)> {
    files::remove_when_interrupted();
    let source = Input::open(input).map_err(io_error(format!("opening {input}")))?;
    if output != files::STDIO && source.is_same_file(output) {
        return Err(CliError::Usage(format!("{output} is the input file: write the output elsewhere")));
    }
    let sink = Output::create(output).map_err(io_error(format!("creating {output}")))?;
    Ok((source, sink))
}

/// `kmsim encrypt`: GenerateDataKey, then the input streamed into a message.
pub fn encrypt(args: &EncryptArgs, env: &Environment) -> Result<()> {
    let context = parse_context(&args.context)?;
    if let Some(key) = context.keys().find(|key| key.starts_with(RESERVED_CONTEXT_PREFIX)) {
        return Err(CliError::Usage(format!(
            "--context key '{key}': keys starting with {RESERVED_CONTEXT_PREFIX} are reserved for the AWS Encryption SDK"
        )));
    }
    if args.frame_length == 0 || args.frame_length > envelope::MAX_FRAME_LENGTH {
        return Err(CliError::Usage(format!(
            "--frame-length must be between 1 and {} bytes",
            envelope::MAX_FRAME_LENGTH
        )));
    }
    let (mut input, mut output) = open_files(&args.io.input, &args.io.output)?;
    let settings = AwsSettings::resolve(&args.io.aws.overrides(), env)?;
    let region = settings.region_for(&args.key)?;
    let client = kms_client(&settings, &region, env)?;
    let data_key = runtime()?.block_on(client.generate_data_key(&args.key, &context))?;
    if aws_config::arn_region(&data_key.key_arn).is_none() {
        return Err(KmsError::BadAnswer {
            operation: "GenerateDataKey",
            reason: format!("KeyId '{}' is not a key ARN", data_key.key_arn),
        }
        .into());
    }
    let DataKey { key_arn, plaintext, ciphertext } = data_key;
    let edk = EncryptedDataKey { provider_id: AWS_KMS_PROVIDER_ID.into(), provider_info: key_arn, ciphertext };
    let what = format!("encrypting {}", args.io.input);
    let envelope_error = |source| CliError::Envelope { what: what.clone(), source };
    let mut encryptor =
        envelope::Encryptor::new(&plaintext, &context, &[edk], args.frame_length, &shared::Entropy::os())
            .map_err(envelope_error)?;
    drop(plaintext);

    let mut progress = Progress::new("encrypting", input.known_len());
    let mut buf = Zeroizing::new(vec![0; CHUNK]);
    let mut out = Vec::with_capacity(CHUNK + CHUNK / 16 + 4096);
    let write_error = || io_error(format!("writing {}", args.io.output));
    loop {
        let n = input.fill(&mut buf).map_err(io_error(format!("reading {}", args.io.input)))?;
        if n == 0 {
            break;
        }
        encryptor.push(&buf[..n], &mut out).map_err(envelope_error)?;
        output.write_all(&out).map_err(write_error())?;
        out.clear();
        progress.advance(n);
    }
    encryptor.finish(&mut out).map_err(envelope_error)?;
    output.write_all(&out).map_err(write_error())?;
    progress.finish();
    output.commit().map_err(write_error())
}

/// `kmsim decrypt`: the header read and checked against the expectations, KMS Decrypt of the data key, then the
/// body streamed out frame by frame; a file output appears only once every frame (and a signed message's
/// signature) verified.
pub fn decrypt(args: &DecryptArgs, env: &Environment) -> Result<()> {
    let expected_context = parse_context(&args.context)?;
    if let Some(key) = args.keys.iter().find(|key| aws_config::arn_region(key).is_none()) {
        return Err(CliError::Usage(format!(
            "--key '{key}' is not a key ARN: decrypt checks the key ARN the message names (arn:aws:kms:<region>:<account>:key/<id>)"
        )));
    }
    let (mut input, mut output) = open_files(&args.io.input, &args.io.output)?;
    let what = format!("decrypting {}", args.io.input);
    let (header, mut body) = read_header(&mut input, &args.io.input)?;
    let refused = |reason: String| CliError::Refused { input: args.io.input.clone(), reason };
    check_context(&header, &expected_context).map_err(refused)?;
    let candidates = candidate_keys(&header, &args.keys).map_err(refused)?;

    let settings = AwsSettings::resolve(&args.io.aws.overrides(), env)?;
    let runtime = runtime()?;
    let mut last_error = None;
    let mut data_key = None;
    // Each key the message names in turn, as the SDK does: one that cannot be called is passed over, not fatal.
    for edk in candidates {
        let attempt = settings
            .region_for(&edk.provider_info)
            .map_err(CliError::from)
            .and_then(|region| kms_client(&settings, &region, env))
            .and_then(|client| {
                runtime
                    .block_on(client.decrypt(&edk.provider_info, &edk.ciphertext, header.encryption_context()))
                    .map_err(CliError::from)
            });
        match attempt {
            Ok(key) => {
                data_key = Some(key);
                break;
            }
            Err(error) => last_error = Some(error),
        }
    }
    let Some(data_key) = data_key else {
        return Err(last_error.expect("at least one candidate key was tried"));
    };
    let envelope_error = |source| CliError::Envelope { what: what.clone(), source };
    let mut decryptor = envelope::Decryptor::new(&header, &data_key.plaintext).map_err(envelope_error)?;
    drop(data_key);

    let mut progress = Progress::new("decrypting", input.known_len());
    let mut out = Zeroizing::new(Vec::with_capacity(CHUNK + envelope::MAX_FRAME_LENGTH as usize));
    let write_error = || io_error(format!("writing {}", args.io.output));
    let mut buf = vec![0; CHUNK];
    loop {
        decryptor.push(&body, &mut out).map_err(envelope_error)?;
        output.write_all(&out).map_err(write_error())?;
        progress.advance(body.len());
        out.clear();
        let n = input.fill(&mut buf).map_err(io_error(format!("reading {}", args.io.input)))?;
        if n == 0 {
            break;
        }
        body.clear();
        body.extend_from_slice(&buf[..n]);
    }
    decryptor.finish().map_err(envelope_error)?;
    progress.finish();
    output.commit().map_err(write_error())
}

/// Reads until the header parses; returns it and the body bytes read after it.
pub fn read_header(input: &mut Input, name: &str) -> Result<(Header, Vec<u8>)> {
    let mut bytes = Vec::with_capacity(4096);
    let mut buf = vec![0; 4096];
    loop {
        match Header::parse(&bytes) {
            Ok(header) => {
                let body = bytes.split_off(header.serialized_len());
                return Ok((header, body));
            }
            Err(EnvelopeError::Incomplete { .. }) => {
                let n = input.read_some(&mut buf).map_err(io_error(format!("reading {name}")))?;
                if n == 0 {
                    let source = if bytes.is_empty() {
                        EnvelopeError::Malformed("the input is empty")
                    } else {
                        EnvelopeError::Truncated
                    };
                    return Err(CliError::Envelope { what: format!("reading the header of {name}"), source });
                }
                bytes.extend_from_slice(&buf[..n]);
            }
            Err(source) => return Err(CliError::Envelope { what: format!("reading the header of {name}"), source }),
        }
    }
}

/// Checks that the message's context holds every expected pair.
fn check_context(header: &Header, expected: &BTreeMap<String, String>) -> std::result::Result<(), String> {
    for (key, value) in expected {
        match header.encryption_context().get(key) {
            Some(found) if found == value => {}
            Some(found) => {
                let found = inspect::shown(found);
                return Err(format!("its encryption context has {key}={found}, not the expected {key}={value}"));
            }
            None => return Err(format!("its encryption context lacks the expected pair {key}={value}")),
        }
    }
    Ok(())
}

/// The message's AWS KMS encrypted data keys that may be used: those under an expected key, or all of them when
/// no key is expected.
fn candidate_keys<'a>(
    header: &'a Header,
    expected: &[String],
) -> std::result::Result<Vec<&'a EncryptedDataKey>, String> {
    let kms_keys: Vec<&EncryptedDataKey> =
        header.encrypted_data_keys().iter().filter(|edk| edk.provider_id == AWS_KMS_PROVIDER_ID).collect();
    if kms_keys.is_empty() {
        let providers: Vec<_> =
            header.encrypted_data_keys().iter().map(|edk| inspect::shown(&edk.provider_id)).collect();
        return Err(format!("its data key is not encrypted by AWS KMS (key providers: {})", providers.join(", ")));
    }
    if expected.is_empty() {
        return Ok(kms_keys);
    }
    let chosen: Vec<&EncryptedDataKey> =
        kms_keys.iter().copied().filter(|edk| expected.contains(&edk.provider_info)).collect();
    if chosen.is_empty() {
        let found: Vec<_> = kms_keys.iter().map(|edk| inspect::shown(&edk.provider_info)).collect();
        return Err(format!(
            "its data key is encrypted under {}, which is not an expected key (--key {})",
            found.join(", "),
            expected.join(", --key ")
        ));
    }
    Ok(chosen)
}
