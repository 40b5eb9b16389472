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
//! TrentService.*` (the AWS KMS API) → `/v1.0/{project_id}/kms/...` (the OTC / Huawei Cloud KMS API) → the
//! EVS and compute paths (`/v2/{project_id}/cloudvolumes`, ..., the volume service, `evs-sim`) → everything else
//! is S3 / OBS (the object store, `obs-sim`). Attached volumes are served over NBD on a second listener.

pub mod admin;
pub mod config;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use evs_sim::{Evs, EvsApi};
use kms::{AwsApi, InProcessKeyService, Kms, OtcApi, Storage};
use obs_sim::S3Api;
use obs_sim::store::Store as ObjectStore;
use shared::accounts;
use shared::sigv4::Verifier;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use config::Config;

/// How often the background sweep purges keys whose deletion window ended and rotates keys whose
/// period passed (advancing the simulated clock sweeps at once).
const SWEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Why a stack did not start.
#[derive(Debug, thiserror::Error)]
pub enum StackError {
    /// The KMS could not open its state.
    #[error("opening the KMS: {0}")]
    Kms(#[from] kms::Error),
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
    /// The object store could not open its state.
    #[error("opening the object store: {0}")]
    Objects(#[from] obs_sim::S3Error),
    /// The object store's persistence could not be opened (in plain words, naming the place).
    #[error(transparent)]
    ObjectStore(#[from] obs_sim::StoreError),
    /// The volume service could not open its state.
    #[error("opening the volume service: {0}")]
    Volumes(#[from] evs_sim::EvsError),
}

/// Options of a [`Stack`].
#[derive(Debug, Clone)]
pub struct StackBuilder {
    addr: SocketAddr,
    nbd_addr: SocketAddr,
    data_dir: Option<PathBuf>,
    config: Config,
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
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Opens the state, binds the listener and starts serving.
    pub async fn start(self) -> Result<Stack, StackError> {
        self.config.check()?;
        let storage = match &self.data_dir {
            Some(dir) => Storage::Dir { dir: dir.clone(), master_key_file: self.config.master_key_file.clone() },
            None => Storage::Memory,
        };
        let seeds = self.config.seeds();
        let kms = Arc::new(tokio::task::block_in_place(|| Kms::open(&storage, seeds))?);
        let verifier = Arc::new(Verifier::new(Arc::new(self.config.accounts())));
        let objects = match (&self.config.object_store, &self.data_dir) {
            (Some(remote), _) => ObjectStore::s3(&remote.url, &remote.options()).await?,
            (None, Some(dir)) => ObjectStore::local(&dir.join("objects")).await?,
            (None, None) => ObjectStore::in_memory().await?,
        };
        let keys: Arc<dyn shared::KeyService> = Arc::new(InProcessKeyService::new(kms.clone()));
        let sse_s3 = match &self.data_dir {
            Some(dir) => {
                let key = shared::secret_file::load_or_create(&dir.join("sse-s3.key"), "SSE-S3 service key")
                    .map_err(|e| StackError::Objects(obs_sim::S3Error::internal(e)))?;
                obs_sim::sse_s3::SseS3Key::new(&key)
            }
            None => obs_sim::sse_s3::SseS3Key::generate(),
        };
        // Volume snapshots live in the same object store as objects (under `snapshots/`).
        let snapshot_store = objects.backend().clone();
        let snapshot_root = match (&self.config.object_store, &self.data_dir) {
            (None, Some(dir)) => Some(dir.join("objects")),
            _ => None,
        };
        let obs = Arc::new(obs_sim::Obs::new(objects, keys.clone(), sse_s3));
        let s3 = S3Api::new(obs, verifier.clone(), &self.config.region);
        let evs = Arc::new(Evs::open(self.data_dir.as_deref(), snapshot_store, snapshot_root, keys).await?);
        let services = Services { s3, evs: evs.clone() };
        let listener =
            TcpListener::bind(self.addr).await.map_err(|source| StackError::Bind { addr: self.addr, source })?;
        let addr = listener.local_addr().map_err(|source| StackError::Bind { addr: self.addr, source })?;
        let nbd_listener = TcpListener::bind(self.nbd_addr)
            .await
            .map_err(|source| StackError::Bind { addr: self.nbd_addr, source })?;
        let nbd_addr = nbd_listener.local_addr().map_err(|source| StackError::Bind { addr: self.nbd_addr, source })?;
        let app = router(kms.clone(), verifier, services, &self.config.region);
        let (stop, stopped) = oneshot::channel::<()>();
        let (stop_nbd, nbd_stopped) = oneshot::channel::<()>();
        let nbd = tokio::spawn(evs_sim::nbd::serve(nbd_listener, evs, async {
            let _ = nbd_stopped.await;
        }));
        let server = tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
                let _ = stop_nbd.send(());
            };
            if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(shutdown).await {
                tracing::error!(error = %e, "edge listener failed");
            }
            let _ = nbd.await;
        });
        let sweeper = tokio::spawn(sweep_forever(kms.clone()));
        Ok(Stack {
            addr,
            nbd_addr,
            region: self.config.region.clone(),
            kms,
            stop: Some(stop),
            server: Some(server),
            sweeper,
        })
    }
}

async fn sweep_forever(kms: Arc<Kms>) {
    let mut interval = tokio::time::interval(SWEEP_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
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
}

/// The services behind the edge listener.
#[derive(Debug, Clone)]
struct Edge {
    kms: AwsApi,
    otc_kms: OtcApi,
    evs: EvsApi,
    s3: S3Api,
}

/// The edge router: admin API, then the services by the shape of the request. The OTC dialect's resources live
/// in `region`.
pub fn router(kms: Arc<Kms>, verifier: Arc<Verifier>, services: Services, region: &str) -> Router {
    let accounts = verifier.accounts().clone();
    let otc_kms = OtcApi::new(kms.clone(), accounts.clone(), region);
    let evs = EvsApi::new(services.evs, accounts, region);
    let edge_state = Edge { kms: AwsApi::new(kms.clone(), verifier), otc_kms, evs, s3: services.s3 };
    Router::new().fallback(edge).with_state(edge_state).nest("/_sim", admin::router(kms))
}

async fn edge(State(edge): State<Edge>, request: Request<Body>) -> Response {
    if AwsApi::accepts(request.headers()) {
        return edge.kms.handle(request).await;
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
    region: String,
    kms: Arc<Kms>,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
    sweeper: JoinHandle<()>,
}

impl Stack {
    /// Options, starting from: in memory, `127.0.0.1:0`, default configuration.
    pub fn builder() -> StackBuilder {
        StackBuilder {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            nbd_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: None,
            config: Config::default(),
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

    /// `http://<addr>`: the endpoint URL for every service's clients.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The default region.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The default account id.
    pub fn account_id(&self) -> &str {
        accounts::DEFAULT_ACCOUNT_ID
    }

    /// The default account's OTC / Huawei Cloud domain id and project id (32 zeros each).
    pub fn project(&self) -> (&str, &str) {
        (accounts::DEFAULT_DOMAIN_ID, accounts::DEFAULT_PROJECT_ID)
    }

    /// The default credentials: (access key id, secret access key).
    pub fn credentials(&self) -> (&str, &str) {
        (accounts::DEFAULT_ACCESS_KEY_ID, accounts::DEFAULT_SECRET_ACCESS_KEY)
    }

    /// The KMS core (for in-process assertions, e.g. on the audit log).
    pub fn kms(&self) -> &Arc<Kms> {
        &self.kms
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
        // axum's graceful shutdown returns once every connection task has signalled, a moment
        // before those tasks drop their clone of the router (and so of the KMS and its store
        // lock). Wait for them, so a stack on the same data dir can start as soon as this returns.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while Arc::strong_count(&self.kms) > 1 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(1)).await;
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
