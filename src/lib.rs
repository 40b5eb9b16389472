//! kmsim: a local simulator of cloud key management and envelope encryption.
//!
//! [`Stack`] starts the services in-process on one edge listener, the way the `kmsim` binary
//! does; Rust tests start one on an ephemeral port and get its endpoint and credentials:
//!
//! ```no_run
//! # async fn demo() -> Result<(), kmsim::StackError> {
//! let stack = kmsim::Stack::builder().start().await?; // in memory, 127.0.0.1:0
//! println!("KMS at {}", stack.endpoint());
//! stack.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Requests are routed in this order: `/_sim/...` (the [`admin`] API) → `X-Amz-Target:
//! TrentService.*` (the AWS KMS API) → a SigV4 credential scope of service `iam` or `sts`, or an unsigned
//! `POST /` form (the IAM and STS Query APIs, `iam`) → `/v1.0/{project_id}/kms/...` (the OTC / Huawei Cloud KMS API) → the
//! EVS and compute paths (`/v2/{project_id}/cloudvolumes`, ..., the volume service, `evs`) → everything else
//! is S3 / OBS (the object store, `obs`). Attached volumes are served over NBD on a second listener.

pub mod admin;
pub mod config;
pub mod console;
pub mod entropy_marker;
pub mod envelope_cli;
pub mod serve;
pub mod state;
pub mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use auth::Verifier;
use auth::accounts;
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use evs::{Evs, EvsApi};
use iam::{IamApi, Identities};
use kms::{AwsApi, InProcessKeyService, Kms, OtcApi, Storage};
use obs::S3Api;
use obs::store::Store as ObjectStore;
use shared::caller;
use shared::entropy::Entropy;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use admin::{Admin, AdminToken};
pub use config::Config;
pub use faults;

/// `docs/testing.md`, whose Rust example `cargo test` runs as a doc-test (its other examples are run by
/// `tests/clients/test_docs_testing.py`).
#[cfg(doctest)]
#[doc = include_str!("../docs/testing.md")]
pub struct TestingGuide;

/// The file in the data dir that holds the admin token (mode 0600), rewritten at every start.
pub const ADMIN_TOKEN_FILE: &str = "admin.token";

/// How often the background sweep purges keys whose deletion window ended and rotates keys whose
/// period passed (advancing the simulated clock sweeps at once).
const SWEEP_INTERVAL: Duration = Duration::from_secs(5);

/// How long a shutdown waits for volume jobs and I/O to finish.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(10);

/// Why a stack did not start.
#[derive(Debug, thiserror::Error)]
pub enum StackError {
    /// The KMS could not open its state: what failed, naming the file (`master key file … has mode
    /// 644: …`, `stored key record … is unreadable: …`).
    #[error("opening the KMS: {0}")]
    Kms(String),
    /// The listener could not be bound.
    #[error("binding {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// The object store could not open its state (in plain words, naming the place).
    #[error(transparent)]
    ObjectStore(#[from] obs::StoreError),
    /// The volume service could not open its state: what failed, naming the place.
    #[error("opening the volume service: {0}")]
    Volumes(String),
    /// The identity store could not open its state, or the configuration's identities do not fit.
    #[error("opening the identity store: {0}")]
    Identities(String),
    /// The data dir cannot be used (missing permissions, readable by others, ...).
    #[error("{0}")]
    DataDir(String),
    /// The local CA or the edge's certificate could not be prepared (`--tls`).
    #[error("preparing TLS: {0}")]
    Tls(String),
    /// The state archive given at start (`--state FILE`) was not imported.
    #[error("importing the state archive {path}: {message}")]
    State {
        /// The archive.
        path: String,
        /// Why it was not imported.
        message: String,
    },
    /// The fault rules given at start (`--faults FILE`) were refused.
    #[error("the fault rules: {0}")]
    Faults(String),
}

impl StackError {
    /// The KMS's open error in plain words: an internal failure is told by its detail alone (a
    /// client would get a generic error; a person starting kmsim needs the cause).
    fn from_kms(error: kms::Error) -> Self {
        match error {
            kms::Error::Internal(detail) => StackError::Kms(detail),
            other => StackError::Kms(other.to_string()),
        }
    }

    /// The identity store's open error in plain words (a configuration that does not fit names its entity).
    fn from_iam(error: iam::Error) -> Self {
        match error {
            iam::Error::Internal(detail) => StackError::Identities(detail),
            other => StackError::Identities(other.to_string()),
        }
    }

    /// The volume service's open error in plain words.
    fn from_evs(error: evs::EvsError) -> Self {
        match error {
            evs::EvsError::Internal { detail } => StackError::Volumes(detail),
            other => StackError::Volumes(other.to_string()),
        }
    }
}

/// Options of a [`Stack`].
#[derive(Debug, Clone)]
pub struct StackBuilder {
    addr: SocketAddr,
    nbd_addr: SocketAddr,
    data_dir: Option<PathBuf>,
    config: Config,
    admin_hosts: Vec<String>,
    limits: serve::ServerLimits,
    tls: bool,
    faults: Option<String>,
    /// `--deterministic`: the seeded generator (its `Debug` shows the seed's fingerprint, never the seed).
    deterministic: Option<Arc<Entropy>>,
    /// Whether the configuration's seeded keys and declared identities are applied at open (not when a state
    /// archive is about to be imported: they would make the state non-empty).
    declarations: bool,
    /// A state archive to import before serving ([`StackBuilder::state`]).
    state: Option<(PathBuf, state::archive::Passphrase)>,
    /// Whether opening a data dir checks and records its entropy ([`StackBuilder::leave_entropy_record`]).
    entropy_record: bool,
}

/// What a stack serves with, prepared before anything is imported or served ([`StackBuilder::prepare_edge`]).
struct Bound {
    admin_token: AdminToken,
    tls: Option<tls::EdgeTls>,
    listener: TcpListener,
    addr: SocketAddr,
    nbd_listener: TcpListener,
    nbd_addr: SocketAddr,
}

/// The services of a stack, opened on its state.
struct Opened {
    kms: Arc<Kms>,
    identities: Arc<Identities>,
    verifier: Arc<Verifier>,
    obs: Arc<obs::Obs>,
    s3: S3Api,
    evs: Arc<Evs>,
    /// The stack's source of ids and keys (seeded under `--deterministic`).
    entropy: Arc<Entropy>,
}

impl StackBuilder {
    /// Listen on `addr` (default `127.0.0.1:0`, an ephemeral port).
    pub fn addr(mut self, addr: SocketAddr) -> Self {
        self.addr = addr;
        self
    }

    /// Serve attached volumes over NBD on `addr` (default `127.0.0.1:0`, an ephemeral port).
    pub fn nbd_addr(mut self, addr: SocketAddr) -> Self {
        self.nbd_addr = addr;
        self
    }

    /// Keep state in `dir` (default: in memory only).
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }

    /// Use this configuration (accounts, seeded keys, ...).
    /// Its `[server]` table sets the edge listener's limits (as [`StackBuilder::limits`] does).
    pub fn config(mut self, config: Config) -> Self {
        self.limits = config.server.limits();
        self.config = config;
        self
    }

    /// Also serve admin calls (`/_sim/...`) to requests whose `Host` names `host` (an address or
    /// a name, without port); loopback names are always served. See [`admin`].
    pub fn admin_host(mut self, host: impl Into<String>) -> Self {
        self.admin_hosts.push(host.into());
        self
    }

    /// Bound what clients may hold on the edge listener (default [`serve::ServerLimits::default`]).
    pub fn limits(mut self, limits: serve::ServerLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Serve HTTPS on the edge port, with a certificate from kmsim's local CA ([`tls`]): its
    /// certificate is [`Stack::ca_file`], the endpoint `https://`.
    pub fn tls(mut self, on: bool) -> Self {
        self.tls = on;
        self
    }

    /// Start with the fault rules of this JSON document (one rule, an array, or `{"rules": [...]}`; see
    /// `docs/testing.md`), as `POST /_sim/faults` would add them; [`Stack::faults`] changes them later.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let stack = kmsim::Stack::builder()
    ///     .faults(r#"{"service": "kms", "operation": "GenerateDataKey", "trigger": {"next": 2},
    ///                 "effect": {"type": "error", "code": "ThrottlingException"}}"#)
    ///     .start()
    ///     .await?;
    /// stack.faults().load(r#"{"service": "s3", "effect": {"type": "latency", "ms": 50}}"#)?;
    /// assert_eq!(stack.faults().list().len(), 2);
    /// stack.faults().clear();
    /// stack.shutdown().await;
    /// # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    pub fn faults(mut self, rules: impl Into<String>) -> Self {
        self.faults = Some(rules.into());
        self
    }

    /// Enforce request quotas as `quotas` says (`mode = aws`, and rates replacing AWS's defaults); this replaces
    /// the `[quotas]` of the configuration, so call it after [`StackBuilder::config`]. [`Stack::quotas`] is the
    /// running stack's.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use kmsim::faults::quotas::{Mode, QuotaConfig};
    /// let quotas = QuotaConfig { mode: Mode::Aws, kms: [("CreateKey".to_owned(), 2.0)].into(), ..Default::default() };
    /// let stack = kmsim::Stack::builder().quotas(quotas).start().await?;
    /// assert!(stack.quotas().enabled());
    /// stack.shutdown().await;
    /// # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    pub fn quotas(mut self, quotas: faults::quotas::QuotaConfig) -> Self {
        self.config.quotas = quotas;
        self
    }

    /// Draw every id, key, data key, nonce, request id and token from a generator keyed by `seed` instead of the
    /// OS, so that the same sequence of calls gets byte-identical answers in every run (`--deterministic SEED`;
    /// `docs/testing.md`, "Deterministic runs"). For tests only: every key is predictable from the seed. A data dir
    /// made otherwise is refused ([`entropy_marker`]).
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let first = kmsim::Stack::builder().deterministic("my-test").start().await?;
    /// let second = kmsim::Stack::builder().deterministic("my-test").start().await?;
    /// assert_eq!(first.admin_token(), second.admin_token());
    /// # Ok::<(), kmsim::StackError>(()) }).unwrap();
    /// ```
    pub fn deterministic(mut self, seed: impl AsRef<[u8]>) -> Self {
        self.deterministic = Some(Arc::new(Entropy::deterministic(seed.as_ref())));
        self
    }

    /// Leave out the configuration's seeded keys and declared identities (they come back at the next start): for
    /// opening a data dir to import a state archive into ([`StackBuilder::open_state`]).
    pub fn without_declarations(mut self) -> Self {
        self.declarations = false;
        self
    }

    /// Open a data dir without checking or recording which entropy made it (`entropy.json`): for `kmsim state
    /// export` and `import`, which draw nothing the data dir keeps and carry a deterministic data dir's record into
    /// the archive and back ([`entropy_marker`]).
    pub fn leave_entropy_record(mut self) -> Self {
        self.entropy_record = false;
        self
    }

    /// Start from the state archive at `archive` (`kmsim state export`, `GET /_sim/state`), imported under
    /// `passphrase` before the listener accepts a call: into memory, or into a data dir that holds nothing yet (a
    /// data dir with state is refused). The configuration's seeded keys and declared identities are not applied,
    /// as for any import. [`Stack::imported`] tells what came in.
    pub fn state(mut self, archive: impl Into<PathBuf>, passphrase: state::archive::Passphrase) -> Self {
        self.state = Some((archive.into(), passphrase));
        self.declarations = false;
        self
    }

    /// Opens the services on the state (the data dir, or memory) without serving anything: what `kmsim state
    /// export` and `import` work on ([`state::export`], [`state::import`]). Stop the volume service
    /// ([`evs::Evs::shutdown`]) when done. A data dir a running kmsim holds is refused (its key store is locked).
    pub async fn open_state(self) -> Result<state::StateServices, StackError> {
        let opened = self.open().await?;
        Ok(state::StateServices {
            kms: opened.kms,
            identities: opened.identities,
            obs: opened.obs,
            evs: opened.evs,
            data_dir: self.data_dir,
            gate: state::StateGate::default(),
        })
    }

    async fn open(&self) -> Result<Opened, StackError> {
        self.config.check()?;
        // Each stack's draws start from the first, even for stacks started from clones of one builder.
        let entropy = Arc::new(match &self.deterministic {
            Some(seeded) => seeded.fresh(),
            None => Entropy::os(),
        });
        if let Some(dir) = &self.data_dir {
            prepare_data_dir(dir)?;
            if self.entropy_record {
                // A data dir served before holds what earlier generations drew: draw in the next one.
                let generation = entropy_marker::check_and_record(dir, &entropy)?;
                entropy.start_generation(generation);
            }
        }
        let storage = match &self.data_dir {
            Some(dir) => Storage::Dir { dir: dir.clone(), master_key_file: self.config.master_key_file.clone() },
            None => Storage::Memory,
        };
        let seeds = if self.declarations { self.config.seeds() } else { Vec::new() };
        let audit = self.config.audit.clone();
        let kms_entropy = entropy.clone();
        let kms = Arc::new(
            tokio::task::spawn_blocking(move || Kms::open_with(&storage, seeds, audit, kms_entropy))
                .await
                .map_err(|e| StackError::Kms(e.to_string()))?
                .map_err(StackError::from_kms)?,
        );
        kms.audit_injected_faults();
        if let Some(rules) = &self.faults {
            kms.faults.load(rules).map_err(|e| StackError::Faults(e.to_string()))?;
        }
        // Checked with the rest of the configuration above.
        kms.faults
            .quotas
            .configure(&self.config.quotas)
            .map_err(|e| StackError::Config(config::ConfigError::Invalid(e)))?;
        let accounts = Arc::new(self.config.accounts());
        // Session credentials expire on the simulated clock, which `/_sim/clock` advances.
        let session_clock: auth::SessionClock = {
            let kms = kms.clone();
            Arc::new(move || kms.clock.now())
        };
        let verifier = Arc::new(Verifier::new(accounts.clone()).with_session_clock(session_clock.clone()));
        // Every service evaluates its policies with the identity policies of the caller's access key.
        let key_identities: Arc<dyn shared::identity::Identities> =
            Arc::new(auth::AccessKeyIdentities::new(accounts.clone()));
        kms.use_identities(key_identities.clone());
        let identities = {
            let declarations = if self.declarations { self.config.identities() } else { Vec::new() };
            let (dir, entropy) = (self.data_dir.clone(), entropy.clone());
            Arc::new(
                tokio::task::spawn_blocking(move || {
                    Identities::open_with(dir.as_deref(), accounts, session_clock, declarations, entropy)
                })
                .await
                .map_err(|e| StackError::Identities(e.to_string()))?
                .map_err(StackError::from_iam)?,
            )
        };
        let objects = match (&self.config.object_store, &self.data_dir) {
            (Some(remote), _) => ObjectStore::s3(&remote.url, &remote.options()).await?,
            (None, Some(dir)) => ObjectStore::local(&dir.join("objects")).await?,
            (None, None) => ObjectStore::in_memory().await?,
        };
        let keys: Arc<dyn shared::KeyService> = Arc::new(InProcessKeyService::new(kms.clone()));
        let sse_s3 = match &self.data_dir {
            Some(dir) => {
                let key = shared::secret_file::load_or_create(&dir.join("sse-s3.key"), "SSE-S3 service key")
                    .map_err(StackError::DataDir)?;
                obs::sse_s3::SseS3Key::new(&key)
            }
            None => obs::sse_s3::SseS3Key::generate(&entropy),
        };
        // Volume snapshots live in the same object store as objects (under `snapshots/`).
        let snapshot_store = objects.backend().clone();
        let snapshot_root = match (&self.config.object_store, &self.data_dir) {
            (None, Some(dir)) => Some(dir.join("objects")),
            _ => None,
        };
        let obs = Arc::new(
            obs::Obs::new(objects, keys.clone(), sse_s3)
                .with_identities(key_identities)
                .with_entropy(entropy.clone())
                .with_clock(kms.clock.clone()),
        );
        let s3 = S3Api::new(obs.clone(), verifier.clone(), &self.config.region)
            .with_faults(kms.faults.clone())
            .with_clock(kms.clock.clone());
        let evs = Arc::new(
            Evs::open(self.data_dir.as_deref(), snapshot_store, snapshot_root, keys)
                .await
                .map_err(StackError::from_evs)?,
        );
        evs.use_faults(kms.faults.clone());
        evs.use_entropy(entropy.clone());
        evs.use_clock(kms.clock.clone());
        Ok(Opened { kms, identities, verifier, obs, s3, evs, entropy })
    }

    /// The admin token (written to the data dir), the edge's TLS and both listeners, bound.
    async fn prepare_edge(&self, entropy: &Entropy) -> Result<Bound, StackError> {
        let admin_token = AdminToken::generate(entropy);
        if let Some(dir) = &self.data_dir {
            let path = dir.join(ADMIN_TOKEN_FILE);
            let text = zeroize::Zeroizing::new(format!("{}\n", admin_token.as_str()));
            shared::secret_file::write_durably(&path, text.as_bytes(), 0o600)
                .map_err(|e| StackError::DataDir(format!("writing the admin token to {}: {e}", path.display())))?;
        }
        let tls = if self.tls { Some(tls::prepare(self.data_dir.as_deref(), &self.admin_hosts)?) } else { None };
        let listener =
            TcpListener::bind(self.addr).await.map_err(|source| StackError::Bind { addr: self.addr, source })?;
        let addr = listener.local_addr().map_err(|source| StackError::Bind { addr: self.addr, source })?;
        let nbd_listener = TcpListener::bind(self.nbd_addr)
            .await
            .map_err(|source| StackError::Bind { addr: self.nbd_addr, source })?;
        let nbd_addr = nbd_listener.local_addr().map_err(|source| StackError::Bind { addr: self.nbd_addr, source })?;
        Ok(Bound { admin_token, tls, listener, addr, nbd_listener, nbd_addr })
    }

    /// Opens the state, binds the listener and starts serving.
    pub async fn start(mut self) -> Result<Stack, StackError> {
        let Opened { kms, identities, verifier, obs, s3, evs, entropy } = self.open().await?;
        // Everything that can fail before serving comes before the import: a refused start leaves no state behind
        // that would refuse the next one.
        let bound = match self.prepare_edge(&entropy).await {
            Ok(bound) => bound,
            Err(e) => {
                evs.shutdown(SHUTDOWN_DEADLINE).await;
                return Err(e);
            }
        };
        let Bound { admin_token, tls: edge_tls, listener, addr, nbd_listener, nbd_addr } = bound;
        let gate = state::StateGate::default();
        let imported = match self.state.take() {
            None => None,
            Some((path, passphrase)) => {
                let services = state::StateServices {
                    kms: kms.clone(),
                    identities: identities.clone(),
                    obs: obs.clone(),
                    evs: evs.clone(),
                    data_dir: self.data_dir.clone(),
                    gate: gate.clone(),
                };
                let outcome = match std::fs::File::open(&path) {
                    Ok(file) => state::import(&services, file, passphrase).await.map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                };
                match outcome {
                    Ok(summary) => {
                        tracing::info!(archive = %path.display(), ?summary, "state archive imported");
                        Some(summary)
                    }
                    Err(message) => {
                        evs.shutdown(SHUTDOWN_DEADLINE).await;
                        return Err(StackError::State { path: path.display().to_string(), message });
                    }
                }
            }
        };
        let iam = IamApi::new(identities.clone(), verifier.clone()).with_faults(kms.faults.clone());
        let services = Services { s3, evs: evs.clone(), iam };
        let admin = Admin {
            kms: kms.clone(),
            obs,
            evs: evs.clone(),
            iam: identities.clone(),
            verifier: verifier.clone(),
            token: admin_token.clone(),
            extra_hosts: self.admin_hosts.clone(),
            persistent: self.data_dir.is_some(),
            region: self.config.region.clone(),
            secure: edge_tls.is_some(),
            nbd_addr: Some(nbd_addr),
            data_dir: self.data_dir.clone(),
            gate: gate.clone(),
        };
        let app = router(admin, services, &self.config.region);
        let (stop, stopped) = oneshot::channel::<()>();
        let (stop_nbd, nbd_stopped) = oneshot::channel::<()>();
        let nbd = tokio::spawn(evs::nbd::serve_with(nbd_listener, evs.clone(), self.config.nbd.clone(), async {
            let _ = nbd_stopped.await;
        }));
        let limits = self.limits.clone();
        let acceptor = edge_tls.as_ref().map(|t| t.acceptor.clone());
        let server = tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
                let _ = stop_nbd.send(());
            };
            serve::serve_with_tls(listener, app, limits, acceptor, shutdown).await;
            let _ = nbd.await;
        });
        let sweeper = tokio::spawn(sweep_forever(kms.clone(), gate));
        Ok(Stack {
            addr,
            nbd_addr,
            ca_file: edge_tls.as_ref().map(|t| t.ca_file.clone()),
            tls_temporary_dir: edge_tls.and_then(|t| t.temporary_dir),
            region: self.config.region.clone(),
            kms,
            evs,
            identities,
            admin_token,
            stop: Some(stop),
            server: Some(server),
            sweeper,
            imported,
        })
    }
}

/// Creates the data dir with mode 0700, or checks that an existing one is not open to others: it
/// holds the master key's wrapped keys, objects and volumes.
fn prepare_data_dir(dir: &std::path::Path) -> Result<(), StackError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    match std::fs::metadata(dir) {
        Ok(meta) if !meta.is_dir() => {
            Err(StackError::DataDir(format!("data dir {} is not a directory", dir.display())))
        }
        Ok(meta) => {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(StackError::DataDir(format!(
                    "data dir {} has mode {mode:o}: others could read its keys, objects and volumes; \
                     make it private with `chmod 700 {}`",
                    dir.display(),
                    dir.display()
                )));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .and_then(|()| std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)))
            .map_err(|e| StackError::DataDir(format!("creating data dir {}: {e}", dir.display()))),
        Err(e) => Err(StackError::DataDir(format!("reading data dir {}: {e}", dir.display()))),
    }
}

async fn sweep_forever(kms: Arc<Kms>, gate: state::StateGate) {
    let mut interval = tokio::time::interval(SWEEP_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        // A sweep purges and rotates keys: not in the middle of a state export or import.
        let _shared = gate.shared().await;
        let kms = kms.clone();
        match tokio::task::spawn_blocking(move || kms.sweep()).await {
            Ok(Err(e)) => tracing::error!(error = %e, "key sweep failed"),
            Err(e) => tracing::error!(error = %e, "key sweep panicked"),
            Ok(Ok(_)) => {}
        }
    }
}

/// The storage services behind the edge listener, besides the KMS.
#[derive(Debug, Clone)]
pub struct Services {
    /// The object store's S3 / OBS front end.
    pub s3: S3Api,
    /// The volume service.
    pub evs: Arc<Evs>,
    /// The IAM and STS Query APIs.
    pub iam: IamApi,
}

/// The services behind the edge listener.
#[derive(Debug, Clone)]
struct Edge {
    /// Held shared by every request, so that a state export or import sees none half-applied.
    gate: state::StateGate,
    kms: AwsApi,
    iam: IamApi,
    otc_kms: OtcApi,
    evs: EvsApi,
    s3: S3Api,
}

/// The edge router: admin API, then the services by the shape of the request. The OTC dialect's resources live
/// in `region`.
pub fn router(admin: Admin, services: Services, region: &str) -> Router {
    let kms = admin.kms.clone();
    let verifier = admin.verifier.clone();
    let otc_kms = OtcApi::new(kms.clone(), verifier.clone(), region);
    let evs = EvsApi::new(services.evs, verifier.clone(), region);
    let gate = admin.gate.clone();
    let edge_state = Edge { gate, kms: AwsApi::new(kms, verifier), iam: services.iam, otc_kms, evs, s3: services.s3 };
    Router::new().fallback(edge).with_state(edge_state).nest("/_sim", admin::router(admin))
}

async fn edge(State(edge): State<Edge>, request: Request<Body>) -> Response {
    let _shared = edge.gate.shared().await;
    if AwsApi::accepts(request.headers()) {
        return edge.kms.handle(request).await;
    }
    if IamApi::accepts(request.method(), request.uri().path(), request.uri().query().unwrap_or(""), request.headers()) {
        return edge.iam.handle(request).await;
    }
    if OtcApi::accepts(request.uri().path()) {
        return edge.otc_kms.handle(request).await;
    }
    if EvsApi::accepts(request.uri().path(), request.headers()) {
        return edge.evs.handle(request).await;
    }
    edge.s3.handle(request).await
}

/// kmsim running in-process.
#[derive(Debug)]
pub struct Stack {
    addr: SocketAddr,
    nbd_addr: SocketAddr,
    /// The local CA's certificate when the edge speaks HTTPS.
    ca_file: Option<PathBuf>,
    /// An in-memory stack's CA directory, removed on shutdown.
    tls_temporary_dir: Option<PathBuf>,
    region: String,
    kms: Arc<Kms>,
    evs: Arc<Evs>,
    identities: Arc<Identities>,
    admin_token: AdminToken,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
    sweeper: JoinHandle<()>,
    /// What the state archive given at start held ([`StackBuilder::state`]).
    imported: Option<state::Summary>,
}

impl Stack {
    /// Options, starting from: in memory, `127.0.0.1:0`, default configuration.
    pub fn builder() -> StackBuilder {
        StackBuilder {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            nbd_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: None,
            config: Config::default(),
            admin_hosts: Vec::new(),
            limits: serve::ServerLimits::default(),
            tls: false,
            faults: None,
            deterministic: None,
            declarations: true,
            state: None,
            entropy_record: true,
        }
    }

    /// The address of the edge listener.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address of the NBD listener that serves attached volumes.
    pub fn nbd_addr(&self) -> SocketAddr {
        self.nbd_addr
    }

    /// The console's login URL, with the admin token: opened once in a browser, it sets the console's cookie
    /// and shows the console (`docs/console.md`).
    pub fn console_url(&self) -> String {
        format!("{}/_sim/console/login?token={}", self.endpoint(), self.admin_token.as_str())
    }

    /// `http://<addr>` (`https://` with TLS): the endpoint URL for every service's clients.
    pub fn endpoint(&self) -> String {
        let scheme = if self.ca_file.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// The certificate of the CA that issued the edge's, when the edge speaks HTTPS: what clients
    /// must trust (`AWS_CA_BUNDLE`, `SSL_CERT_FILE`, `NODE_EXTRA_CA_CERTS`, `curl --cacert`).
    pub fn ca_file(&self) -> Option<&std::path::Path> {
        self.ca_file.as_deref()
    }

    /// The default region.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The default account id.
    pub fn account_id(&self) -> &str {
        caller::DEFAULT_ACCOUNT_ID
    }

    /// The default account's OTC / Huawei Cloud domain id and project id (32 zeros each).
    pub fn project(&self) -> (&str, &str) {
        (caller::DEFAULT_DOMAIN_ID, caller::DEFAULT_PROJECT_ID)
    }

    /// The default credentials: (access key id, secret access key).
    pub fn credentials(&self) -> (&str, &str) {
        (accounts::DEFAULT_ACCESS_KEY_ID, accounts::DEFAULT_SECRET_ACCESS_KEY)
    }

    /// What the state archive given at start held ([`StackBuilder::state`]); `None` without one.
    pub fn imported(&self) -> Option<&state::Summary> {
        self.imported.as_ref()
    }

    /// The bearer token of the admin API (`Authorization: Bearer <token>`), new at every start; also
    /// in `admin.token` (mode 0600) in the data dir.
    pub fn admin_token(&self) -> &str {
        self.admin_token.as_str()
    }

    /// The request quotas in force ([`StackBuilder::quotas`], `--quotas aws`).
    pub fn quotas(&self) -> &faults::quotas::Quotas {
        &self.kms.faults.quotas
    }

    /// The fault rules in force (`/_sim/faults`): Rust tests add, list and delete rules here directly.
    pub fn faults(&self) -> &Arc<faults::Faults> {
        &self.kms.faults
    }

    /// Whether ids and keys come from a seed ([`StackBuilder::deterministic`]).
    pub fn is_deterministic(&self) -> bool {
        self.kms.entropy.is_deterministic()
    }

    /// The KMS core (for in-process assertions, e.g. on the audit log).
    pub fn kms(&self) -> &Arc<Kms> {
        &self.kms
    }

    /// The identity store (IAM users, roles, policies, sessions).
    pub fn identities(&self) -> &Arc<Identities> {
        &self.identities
    }

    /// Stops accepting requests and waits for in-flight ones to finish.
    pub async fn shutdown(mut self) {
        self.stop_and_wait().await;
    }

    async fn stop_and_wait(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.sweeper.abort();
        let _ = (&mut self.sweeper).await;
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
        // The edge and NBD servers return only once every connection task has ended, so no request
        // holds the services any more; volume jobs and I/O are waited for (bounded). When `self` is
        // dropped after this, the KMS closes its store, and a stack on the same data dir can start.
        self.evs.shutdown(SHUTDOWN_DEADLINE).await;
        if let Some(dir) = self.tls_temporary_dir.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }

    /// Waits until the stack stops (after [`Stack::stop_handle`] fires or the task ends).
    pub async fn wait(mut self) {
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
        self.sweeper.abort();
    }

    /// A handle that stops the stack when sent to (or dropped).
    pub fn stop_handle(&mut self) -> Option<oneshot::Sender<()>> {
        self.stop.take()
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.sweeper.abort();
    }
}
