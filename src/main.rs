//! The `kmsim` binary: parses the command line, loads the configuration, sets up logging, starts a
//! [`kmsim::Stack`] and stops it cleanly on Ctrl-C or SIGTERM. The subcommands `encrypt`, `decrypt` and
//! `inspect` are the client-side envelope tool ([`kmsim::envelope_cli`]) instead; `state export` / `state import`
//! write and read state archives of a data dir ([`kmsim::state`]).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use kmsim::envelope_cli::{self, DecryptArgs, EncryptArgs, InspectArgs, aws_config::Environment};
use kmsim::{Config, Stack};

/// A local simulator of cloud key management (KMS) and envelope encryption.
///
/// Serves the AWS KMS API, the OTC / Huawei Cloud KMS and EVS APIs, the S3 / OBS object store (and the admin API
/// under /_sim/) on one edge port, and attached volumes over NBD. State lives in --data-dir, with key material
/// encrypted under a master key file generated there on first start.
///
/// With a subcommand, kmsim is instead a client of any KMS (kmsim's or AWS's): it encrypts and decrypts files as
/// AWS Encryption SDK messages, and explains them.
#[derive(Debug, Parser)]
#[command(version, args_conflicts_with_subcommands = true)]
struct Args {
    /// Without a subcommand, kmsim serves.
    #[command(subcommand)]
    command: Option<Command>,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Edge port. 0 picks an ephemeral port and prints the endpoints as one JSON line on stdout.
    #[arg(long, default_value_t = 4566)]
    port: u16,
    /// NBD port serving attached volumes; defaults to 10809, or to an ephemeral port with `--port 0`.
    #[arg(long)]
    nbd_port: Option<u16>,
    /// Directory for durable state (keys, master key file, audit log, objects, volumes).
    #[arg(long, default_value = "./kmsim-data")]
    data_dir: PathBuf,
    /// Keep all state in memory (volume files go to a temporary directory removed at exit).
    #[arg(long)]
    in_memory: bool,
    /// Configuration file (TOML): accounts, access keys, region, seeded keys.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Log filter, e.g. `info` or `kms=debug` (the RUST_LOG syntax); default: $RUST_LOG, else `info`.
    /// At `debug`, one line per request (method, path, status, duration, request id, access key id).
    #[arg(long)]
    log: Option<String>,
    /// Start on a non-loopback --host even though the default account's well-known credentials
    /// (`test` / `test`) are enabled.
    #[arg(long)]
    allow_default_credentials: bool,
    /// Serve HTTPS on the edge port, with a certificate from kmsim's own CA (made on first start
    /// in the data dir's `tls/`; its certificate is printed for clients to trust).
    #[arg(long)]
    tls: bool,
    /// Start with the fault rules of this JSON file (one rule, an array, or {"rules": [...]}), as
    /// `POST /_sim/faults` adds them: for test suites that exercise failure paths (docs/testing.md).
    #[arg(long, value_name = "FILE")]
    faults: Option<PathBuf>,
    /// Enforce request quotas: `aws` throttles AWS KMS calls per account and region and S3 requests per prefix at
    /// AWS's documented rates (the config file's `[quotas]` can lower them), answering ThrottlingException and
    /// SlowDown as AWS does; `off` throttles nothing. Default: the config file's `[quotas] mode`, else off.
    #[arg(long, value_name = "aws|off")]
    quotas: Option<kmsim::faults::quotas::Mode>,
    /// FOR TESTS ONLY: draw key ids, key material, data keys, request ids, upload ids, volume ids and tokens from
    /// SEED instead of the OS, so that the same calls get byte-identical answers in every run. Every key is
    /// predictable from SEED. Refuses a data dir made without it or with another seed (docs/testing.md).
    #[arg(long, value_name = "SEED")]
    deterministic: Option<String>,
    /// Start from the state archive FILE (`kmsim state export`, GET /_sim/state), imported before kmsim serves:
    /// into memory, or into a data dir that holds nothing yet. Its passphrase comes from --state-passphrase-file,
    /// else the environment variable KMSIM_STATE_PASSPHRASE (docs/testing.md, "State fixtures").
    #[arg(long, value_name = "FILE")]
    state: Option<PathBuf>,
    /// The file holding the passphrase of the --state archive.
    #[arg(long, value_name = "FILE", requires = "state")]
    state_passphrase_file: Option<PathBuf>,
}

/// The client-side envelope commands.
#[derive(Debug, Subcommand)]
enum Command {
    /// Encrypt a file with a data key from KMS (GenerateDataKey) into an AWS Encryption SDK message (format 2,
    /// suite 0x0478, framed), readable by the AWS Encryption SDKs and their CLI.
    Encrypt(EncryptArgs),
    /// Decrypt an AWS Encryption SDK message (suite 0x0478, or the SDK's default signed 0x0578) through KMS
    /// Decrypt, checking the expected key and encryption context; OUT appears only once everything verified.
    Decrypt(DecryptArgs),
    /// Describe an AWS Encryption SDK message without decrypting it: suite, encryption context, encrypted data
    /// keys with their KMS key ARNs, frames, plaintext length.
    Inspect(InspectArgs),
    /// Export or import a state archive: every key (material wrapped under a passphrase), alias, grant, policy,
    /// IAM identity, bucket, object, volume and snapshot, for test fixtures (docs/testing.md, "State fixtures").
    #[command(subcommand)]
    State(StateCommand),
}

/// `kmsim state ...`.
#[derive(Debug, Subcommand)]
enum StateCommand {
    /// Write the state of a data dir no kmsim is serving to FILE (a running kmsim: GET /_sim/state).
    Export(StateArgs),
    /// Read FILE into an empty or new data dir (a running kmsim that holds nothing yet: PUT /_sim/state).
    Import(StateArgs),
}

/// The archive, the data dir and the passphrase of `kmsim state`.
#[derive(Debug, clap::Args)]
struct StateArgs {
    /// The state archive.
    file: PathBuf,
    /// The data dir.
    #[arg(long, default_value = "./kmsim-data")]
    data_dir: PathBuf,
    /// The configuration file the data dir is served with (its master key file, object store, region).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// A file holding the archive's passphrase; without it, the environment variable KMSIM_STATE_PASSPHRASE.
    #[arg(long, value_name = "FILE")]
    passphrase_file: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    // Every file kmsim creates (keys, audit, objects, volumes, decrypted files) is for its own user only.
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    if let Some(Command::State(command)) = args.command {
        return state_command(command);
    }
    if let Some(command) = args.command {
        let env = Environment::from_process();
        let result = match &command {
            Command::Encrypt(args) => envelope_cli::encrypt(args, &env),
            Command::Decrypt(args) => envelope_cli::decrypt(args, &env),
            Command::Inspect(args) => envelope_cli::inspect::inspect(args),
            Command::State(_) => unreachable!("handled above"),
        };
        return match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("kmsim: {error}");
                ExitCode::FAILURE
            }
        };
    }
    let filter = args.log.clone().or_else(|| std::env::var("RUST_LOG").ok()).unwrap_or_else(|| "info".to_owned());
    let filter = match tracing_subscriber::EnvFilter::try_new(&filter) {
        Ok(filter) => filter,
        Err(e) => {
            eprintln!("kmsim: the log filter '{filter}' is not valid: {e}");
            return ExitCode::FAILURE;
        }
    };
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    let config = match &args.config {
        Some(path) => match Config::load(path) {
            Ok(config) => config,
            Err(e) => {
                eprintln!("kmsim: {e}");
                return ExitCode::FAILURE;
            }
        },
        None => Config::default(),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("kmsim: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(args, config))
}

async fn run(args: Args, mut config: Config) -> ExitCode {
    if let Some(mode) = args.quotas {
        config.quotas.mode = mode;
    }
    let quotas = config.quotas.mode == kmsim::faults::quotas::Mode::Aws;
    let nbd_port = args.nbd_port.unwrap_or(if args.port == 0 { 0 } else { evs::nbd::DEFAULT_PORT });
    if !args.host.is_loopback() {
        eprintln!("{}", exposure_warning(args.host, nbd_port, config.default_account));
        if config.default_account && !args.allow_default_credentials {
            eprintln!(
                "kmsim: refusing to listen on {} with the default credentials test / test, which anyone can guess: \
                 set `default_account = false` and configure accounts in --config, or pass \
                 --allow-default-credentials",
                args.host
            );
            return ExitCode::FAILURE;
        }
    }
    let access_keys = config.access_key_ids();
    let default_credentials = config.default_account;
    let mut builder = Stack::builder()
        .addr(SocketAddr::new(args.host, args.port))
        .nbd_addr(SocketAddr::new(args.host, nbd_port))
        .config(config);
    if !args.host.is_unspecified() && !args.host.is_loopback() {
        builder = builder.admin_host(args.host.to_string());
    }
    if !args.in_memory {
        builder = builder.data_dir(&args.data_dir);
    }
    builder = builder.tls(args.tls);
    if let Some(seed) = &args.deterministic {
        builder = builder.deterministic(seed);
    }
    if let Some(path) = &args.faults {
        match std::fs::read_to_string(path) {
            Ok(rules) => builder = builder.faults(rules),
            Err(e) => {
                eprintln!("kmsim: reading the fault rules {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
        }
    }
    if let Some(archive) = &args.state {
        let env_passphrase = std::env::var_os("KMSIM_STATE_PASSPHRASE").map(|v| {
            use std::os::unix::ffi::OsStringExt;
            zeroize::Zeroizing::new(v.into_vec())
        });
        match kmsim::state::cli::passphrase(
            args.state_passphrase_file.as_deref(),
            env_passphrase.as_ref().map(|v| v.as_slice()),
            "--state-passphrase-file",
        ) {
            Ok(passphrase) => builder = builder.state(archive, passphrase),
            Err(e) => {
                eprintln!("kmsim: --state {}: {e}", archive.display());
                return ExitCode::FAILURE;
            }
        }
    }
    let stack = match builder.start().await {
        Ok(stack) => stack,
        Err(e) => {
            eprintln!("kmsim: {e}");
            return ExitCode::FAILURE;
        }
    };
    if stack.is_deterministic() {
        tracing::warn!("{DETERMINISTIC_WARNING}");
    }
    let (access_key, secret) = stack.credentials();
    let (domain_id, project_id) = stack.project();
    let data = if args.in_memory { "in memory".to_owned() } else { args.data_dir.display().to_string() };
    let key_ids: Vec<&str> = access_keys.iter().map(|(id, _)| id.as_str()).collect();
    if args.port == 0 {
        let mut line = serde_json::json!({
            "endpoint": stack.endpoint(),
            "kms": stack.endpoint(),
            "nbd": format!("nbd://{}", stack.nbd_addr()),
            "region": stack.region(),
            "account_id": stack.account_id(),
            "domain_id": domain_id,
            "project_id": project_id,
            "access_key_ids": key_ids,
            "admin_token": stack.admin_token(),
            "console": stack.console_url(),
            "data": data,
        });
        if quotas {
            line["quotas"] = "aws".into();
        }
        if stack.is_deterministic() {
            line["deterministic"] = DETERMINISTIC_WARNING.into();
        }
        if let Some(imported) = stack.imported() {
            line["imported"] = serde_json::to_value(imported).unwrap_or_default();
        }
        if default_credentials {
            line["access_key_id"] = access_key.into();
            line["secret_access_key"] = secret.into();
        }
        if let Some(ca) = stack.ca_file() {
            line["ca_file"] = ca.display().to_string().into();
            let path = serde_json::Value::from(ca.display().to_string());
            line["ca_env"] = CA_VARIABLES.iter().map(|name| ((*name).to_owned(), path.clone())).collect();
        }
        println!("{line}");
    } else {
        if stack.is_deterministic() {
            println!("{DETERMINISTIC_WARNING}");
        }
        println!("kmsim is running");
        println!("  endpoint     {}", stack.endpoint());
        println!("  nbd          nbd://{}/<volume id>", stack.nbd_addr());
        println!("  region       {}", stack.region());
        if default_credentials {
            println!("  account      {}", stack.account_id());
            println!("  domain id    {domain_id}  (OTC / Huawei Cloud dialect)");
            println!("  project id   {project_id}");
            println!("  credentials  {access_key} / {secret}");
        }
        for (id, account) in access_keys.iter().filter(|(id, _)| !default_credentials || id != access_key) {
            println!("  access key   {id}  (account {account}; secret in the config file)");
        }
        println!("  console      {}  (open it once: it signs you in)", stack.console_url());
        println!("  admin token  {}  (Authorization: Bearer ...; /_sim/ admin API)", stack.admin_token());
        println!("  state        {data}");
        if quotas {
            println!("  quotas       aws  (AWS KMS and S3 request rates enforced; see docs/testing.md)");
        }
        if let Some(ca) = stack.ca_file() {
            println!("  TLS CA       {}  (trust it: curl --cacert, or in the shell:)", ca.display());
            for name in CA_VARIABLES {
                println!("                 export {name}={}", ca.display());
            }
        }
        println!("Press Ctrl-C to stop.");
    }
    shutdown_signal().await;
    tracing::info!("stopping");
    stack.shutdown().await;
    ExitCode::SUCCESS
}

/// Said at every deterministic start (the JSON line's `deterministic`, the banner, the log).
const DETERMINISTIC_WARNING: &str =
    "DETERMINISTIC MODE — FOR TESTS ONLY: keys are predictable from the seed (--deterministic)";
/// `kmsim state export|import FILE`: prints one JSON line (the archive, its size, the time taken and what it
/// holds), or the error on stderr.
fn state_command(command: StateCommand) -> ExitCode {
    let (export, args) = match command {
        StateCommand::Export(args) => (true, args),
        StateCommand::Import(args) => (false, args),
    };
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".to_owned());
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_new(&filter) {
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    }
    let env_passphrase = std::env::var_os("KMSIM_STATE_PASSPHRASE").map(|v| {
        use std::os::unix::ffi::OsStringExt;
        zeroize::Zeroizing::new(v.into_vec())
    });
    let prepared = (|| {
        let passphrase = kmsim::state::cli::passphrase(
            args.passphrase_file.as_deref(),
            env_passphrase.as_ref().map(|v| v.as_slice()),
            "--passphrase-file",
        )?;
        let config = match &args.config {
            Some(path) => Config::load(path).map_err(|e| e.to_string())?,
            None => Config::default(),
        };
        Ok::<_, String>(kmsim::state::cli::StateCommand {
            file: args.file,
            data_dir: args.data_dir,
            config,
            passphrase,
        })
    })();
    let command = match prepared {
        Ok(command) => command,
        Err(e) => {
            eprintln!("kmsim: {e}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("kmsim: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match export {
            true => kmsim::state::cli::export(command).await,
            false => kmsim::state::cli::import(command).await,
        }
    });
    match result {
        Ok(report) => {
            let verb = if export { "exported" } else { "imported" };
            println!("{}", serde_json::json!({ verb: report }));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("kmsim: {e}");
            ExitCode::FAILURE
        }
    }
}

/// What a non-loopback `--host` exposes, for the warning printed at start.
/// The variables common clients read a CA bundle from: botocore and the aws CLI, Python's `ssl`
/// and OpenSSL-based tools, Node.js (the AWS SDK for JavaScript), and `requests`.
const CA_VARIABLES: [&str; 4] = ["AWS_CA_BUNDLE", "SSL_CERT_FILE", "NODE_EXTRA_CA_CERTS", "REQUESTS_CA_BUNDLE"];

fn exposure_warning(host: IpAddr, nbd_port: u16, default_credentials: bool) -> String {
    let credentials =
        if default_credentials { "the default credentials test / test" } else { "the configured access keys" };
    format!(
        "kmsim: WARNING: listening on {host}, which is not a loopback address. Anyone who can reach it can:\n\
         \x20 - call S3, OBS, KMS and EVS with {credentials};\n\
         \x20 - read and write every attached volume over NBD (port {nbd_port}), which has no authentication;\n\
         \x20 - call the admin API (/_sim/: reset, clock, audit) with an access key or the admin token."
    )
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
