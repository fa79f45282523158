//! Objects in etcd, laid out as Kubernetes does (`/registry/<resource>/<ns>/<name>`),
//! with `resourceVersion` taken from etcd's `mod_revision`.
//!
//! Every write is a single transaction guarded by a revision compare, so a failed
//! write never leaves anything half-done and concurrent writers get a clean conflict.
//! The stored JSON carries no `resourceVersion`: it is stamped on read from the
//! key's revision, which keeps it exact even after a restore.
//!
//! Values of resources named in `--encryption-provider-config` pass through
//! [`crate::encryption`] on the way in and out (every write, every read here; the watch
//! cache decrypts its own stream); other resources are stored as plain JSON untouched.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{
    Certificate, Client, Compare, CompareOp, ConnectOptions, GetOptions, GetResponse, Identity,
    KeyValue, KvClient, TlsOptions, Txn, TxnOp, TxnOpResponse, WatchClient, WatchOptions,
    WatchStream,
};
use kadm_apimachinery::{ApiError, meta};
use serde_json::Value;

use crate::encryption::{ResourceTransformer, Transformers};
use crate::error::{Error, Result};

/// How to reach etcd.
#[derive(Debug, Clone)]
pub struct EtcdConfig {
    pub endpoints: Vec<String>,
    pub ca_file: Option<std::path::PathBuf>,
    pub cert_file: Option<std::path::PathBuf>,
    pub key_file: Option<std::path::PathBuf>,
    /// Connections for requests (the watch cache's stream shares the first).
    pub connections: usize,
    /// Requests in flight to etcd at once; 0 = no limit.
    pub max_inflight: usize,
}

/// A stored object with the revision it was last written at.
#[derive(Debug, Clone)]
pub struct Stored {
    pub key: String,
    pub object: Value,
    pub mod_revision: i64,
    /// Read with a key (or provider) other than the one writes use now: an update must
    /// write it even when the object is unchanged, so rewriting re-encrypts.
    pub stale: bool,
}

/// One page of a range read.
#[derive(Debug)]
pub struct Page {
    pub items: Vec<Stored>,
    /// The revision the read was served at (the list's `resourceVersion`).
    pub revision: i64,
    /// Whether more keys follow the last returned one.
    pub more: bool,
    /// Total keys in the requested range at `revision` (for `remainingItemCount`).
    pub count: i64,
}

/// What an optimistic write found.
#[derive(Debug)]
pub enum WriteOutcome {
    /// Written at this revision.
    Written(i64),
    /// The key was changed (or created/removed) since the caller read it.
    Conflict,
}

/// The object write in a [`Store::write_claiming`] transaction.
#[derive(Debug, Clone, Copy)]
pub enum MainWrite<'a> {
    /// Create the key (it must not exist).
    Create(&'a Value),
    /// Replace the key if it is still at this revision.
    Update(&'a Value, i64),
    /// Delete the key if it is still at this revision.
    Delete(i64),
}

/// What a [`Store::write_claiming`] found.
#[derive(Debug)]
pub enum ClaimOutcome {
    /// Written at this revision.
    Written(i64),
    /// The object's key moved on (or exists, for a create).
    Conflict,
    /// These claimed keys are held already (the object's key was as expected).
    Taken(Vec<String>),
}

/// Largest etcd response accepted (tonic's default is 4 MiB, less than one page of
/// large objects or a watch response catching up on many writes).
const MAX_ETCD_MESSAGE: usize = 1 << 30;

#[derive(Clone)]
pub struct Store {
    kv: std::sync::Arc<[KvClient]>,
    next: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    watch: WatchClient,
    /// Bounds the requests in flight to etcd, when configured.
    inflight: Option<std::sync::Arc<tokio::sync::Semaphore>>,
    /// Encryption at rest, when `--encryption-provider-config` is set.
    encryption: Option<Arc<Transformers>>,
}

/// The object stored at `kv`, decrypted with `transformer` when its resource is encrypted.
fn decode(kv: &KeyValue, transformer: Option<&ResourceTransformer>) -> Result<Stored> {
    let key = String::from_utf8_lossy(kv.key()).into_owned();
    let (bytes, stale) = match transformer {
        None => (Cow::Borrowed(kv.value()), false),
        Some(t) => {
            let d = t.from_storage(&key, kv.value())?;
            (d.data, d.stale)
        }
    };
    let mut object: Value = serde_json::from_slice(&bytes).map_err(|e| Error::Corrupt {
        key: key.clone(),
        reason: e.to_string(),
    })?;
    meta::set(
        &mut object,
        "resourceVersion",
        Value::String(kv.mod_revision().to_string()),
    );
    Ok(Stored {
        key,
        object,
        mod_revision: kv.mod_revision(),
        stale,
    })
}

/// The stored bytes of an object: without `resourceVersion`, which etcd owns.
fn encode(obj: &Value) -> Result<Vec<u8>> {
    let mut copy = obj.clone();
    meta::remove(&mut copy, "resourceVersion");
    Ok(serde_json::to_vec(&copy)?)
}

/// The first key after every key with this prefix (etcd's range end for a prefix).
fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// Whether an etcd error says the requested revision was compacted away.
pub fn is_compacted(e: &etcd_client::Error) -> bool {
    e.to_string()
        .contains("required revision has been compacted")
}

impl Store {
    pub async fn connect(cfg: &EtcdConfig) -> Result<Store> {
        let mut opts = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(5))
            .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5));
        if let Some(ca) = &cfg.ca_file {
            let read = |p: &std::path::Path| {
                std::fs::read(p).map_err(|source| Error::Io {
                    action: "read etcd tls file",
                    path: p.to_path_buf(),
                    source,
                })
            };
            let mut tls = TlsOptions::new().ca_certificate(Certificate::from_pem(read(ca)?));
            if let (Some(c), Some(k)) = (&cfg.cert_file, &cfg.key_file) {
                tls = tls.identity(Identity::from_pem(read(c)?, read(k)?));
            }
            opts = opts.with_tls(tls);
        }
        let connect = || async {
            Client::connect(&cfg.endpoints, Some(opts.clone()))
                .await
                .map_err(|e| Error::Etcd {
                    endpoints: cfg.endpoints.join(","),
                    source: e,
                })
        };
        let first = connect().await?;
        let watch = first
            .watch_client()
            .max_decoding_message_size(MAX_ETCD_MESSAGE);
        let mut kv = vec![
            first
                .kv_client()
                .max_decoding_message_size(MAX_ETCD_MESSAGE),
        ];
        for _ in 1..cfg.connections.max(1) {
            kv.push(
                connect()
                    .await?
                    .kv_client()
                    .max_decoding_message_size(MAX_ETCD_MESSAGE),
            );
        }
        Ok(Store {
            kv: kv.into(),
            next: Default::default(),
            watch,
            inflight: (cfg.max_inflight > 0)
                .then(|| std::sync::Arc::new(tokio::sync::Semaphore::new(cfg.max_inflight))),
            encryption: None,
        })
    }

    /// Encrypts the resources `transformers` covers from now on.
    pub fn with_encryption(mut self, transformers: Option<Arc<Transformers>>) -> Store {
        self.encryption = transformers;
        self
    }

    /// The providers of an etcd prefix (`/registry/secrets/`), for the watch cache.
    pub fn transformer_for_prefix(&self, prefix: &str) -> Option<Arc<ResourceTransformer>> {
        self.encryption.as_ref()?.for_prefix(prefix)
    }

    fn transformer(&self, key: &str) -> Option<&ResourceTransformer> {
        self.encryption.as_ref()?.for_key(key)
    }

    /// The bytes to store for `obj` at `key`.
    fn encode_for(&self, key: &str, obj: &Value) -> Result<Vec<u8>> {
        let plain = encode(obj)?;
        match self.transformer(key) {
            None => Ok(plain),
            Some(t) => Ok(t.to_storage(key, plain)?),
        }
    }

    /// A client for one request, and the permit that admits it (when requests in flight
    /// are bounded); hold the permit until the response is in.
    async fn kv(&self) -> (KvClient, Option<tokio::sync::OwnedSemaphorePermit>) {
        let permit = match &self.inflight {
            Some(s) => s.clone().acquire_owned().await.ok(),
            None => None,
        };
        let i = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        (self.kv[i % self.kv.len()].clone(), permit)
    }

    /// etcd's current revision, read linearizably: a count of one key that never
    /// exists, so the cost does not grow with the data.
    pub async fn current_revision(&self) -> Result<i64, etcd_client::Error> {
        let (mut kv, _permit) = self.kv().await;
        let resp = kv
            .get("/registry/", Some(GetOptions::new().with_count_only()))
            .await?;
        Ok(resp.header().map_or(0, |h| h.revision()))
    }

    pub async fn get(&self, key: &str) -> Result<Option<Stored>, StoreError> {
        let (mut kv, _permit) = self.kv().await;
        let resp = kv.get(key, None).await?;
        match resp.kvs().first() {
            Some(kv) => Ok(Some(decode(kv, self.transformer(key))?)),
            None => Ok(None),
        }
    }

    /// One page of keys under `prefix`, starting at `start` (inclusive) when given,
    /// read at `revision` (0 = now).
    pub async fn list(
        &self,
        prefix: &str,
        start: Option<&str>,
        revision: i64,
        limit: i64,
    ) -> Result<Page, StoreError> {
        let from = start.unwrap_or(prefix).to_string();
        let mut opts = GetOptions::new().with_range(prefix_end(prefix));
        if revision > 0 {
            opts = opts.with_revision(revision);
        }
        if limit > 0 {
            opts = opts.with_limit(limit);
        }
        let (mut kv, _permit) = self.kv().await;
        let resp = kv.get(from, Some(opts)).await?;
        let transformer = self.transformer(prefix);
        let items = resp
            .kvs()
            .iter()
            .map(|kv| decode(kv, transformer))
            .collect::<Result<Vec<_>>>()?;
        // etcd's header carries its current revision even for a read at an older one;
        // a read at a fixed revision was served at that revision (a continued list keeps
        // its snapshot).
        let revision = if revision > 0 {
            revision
        } else {
            resp.header().map_or(0, |h| h.revision())
        };
        Ok(Page {
            items,
            revision,
            more: resp.more(),
            count: resp.count(),
        })
    }

    /// One page of raw key-values under `prefix` from `start` (inclusive), at `revision`:
    /// the stored bytes, still encrypted for an encrypted resource (the watch cache
    /// decrypts with [`Self::transformer_for_prefix`]).
    pub async fn list_raw(
        &self,
        prefix: &str,
        start: Option<&str>,
        revision: i64,
        limit: i64,
    ) -> Result<GetResponse, etcd_client::Error> {
        let mut opts = GetOptions::new()
            .with_range(prefix_end(prefix))
            .with_limit(limit);
        if revision > 0 {
            opts = opts.with_revision(revision);
        }
        let (mut kv, _permit) = self.kv().await;
        kv.get(start.unwrap_or(prefix), Some(opts)).await
    }

    /// Creates `key` only if it does not exist.
    pub async fn create(&self, key: &str, obj: &Value) -> Result<WriteOutcome, StoreError> {
        let txn = Txn::new()
            .when([Compare::create_revision(key, CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key, self.encode_for(key, obj)?, None)]);
        let (mut kv, _permit) = self.kv().await;
        let resp = kv.txn(txn).await?;
        if !resp.succeeded() {
            return Ok(WriteOutcome::Conflict);
        }
        Ok(WriteOutcome::Written(
            resp.header().map_or(0, |h| h.revision()),
        ))
    }

    /// Replaces `key` only if it is still at `expected` revision.
    pub async fn update(
        &self,
        key: &str,
        obj: &Value,
        expected: i64,
    ) -> Result<WriteOutcome, StoreError> {
        let txn = Txn::new()
            .when([Compare::mod_revision(key, CompareOp::Equal, expected)])
            .and_then([TxnOp::put(key, self.encode_for(key, obj)?, None)]);
        let (mut kv, _permit) = self.kv().await;
        let resp = kv.txn(txn).await?;
        if !resp.succeeded() {
            return Ok(WriteOutcome::Conflict);
        }
        Ok(WriteOutcome::Written(
            resp.header().map_or(0, |h| h.revision()),
        ))
    }

    /// Deletes `key` only if it is still at `expected` revision.
    pub async fn delete(&self, key: &str, expected: i64) -> Result<WriteOutcome, StoreError> {
        let txn = Txn::new()
            .when([Compare::mod_revision(key, CompareOp::Equal, expected)])
            .and_then([TxnOp::delete(key, None)]);
        let (mut kv, _permit) = self.kv().await;
        let resp = kv.txn(txn).await?;
        if !resp.succeeded() {
            return Ok(WriteOutcome::Conflict);
        }
        let deleted = resp
            .op_responses()
            .iter()
            .any(|r| matches!(r, TxnOpResponse::Delete(d) if d.deleted() > 0));
        if !deleted {
            return Ok(WriteOutcome::Conflict);
        }
        Ok(WriteOutcome::Written(
            resp.header().map_or(0, |h| h.revision()),
        ))
    }

    /// Writes one object together with side keys in a single transaction: `claims` are
    /// created (each must not exist yet) and `releases` deleted. Service allocations use
    /// it, so a Service and the IPs and ports it holds never disagree, even across
    /// concurrent writers or a crash between two writes.
    pub async fn write_claiming(
        &self,
        key: &str,
        op: MainWrite<'_>,
        claims: &[(String, Vec<u8>)],
        releases: &[String],
    ) -> Result<ClaimOutcome, StoreError> {
        let mut compares = vec![match op {
            MainWrite::Create(_) => Compare::create_revision(key, CompareOp::Equal, 0),
            MainWrite::Update(_, rev) | MainWrite::Delete(rev) => {
                Compare::mod_revision(key, CompareOp::Equal, rev)
            }
        }];
        let mut ops = vec![match op {
            MainWrite::Create(obj) | MainWrite::Update(obj, _) => {
                TxnOp::put(key, self.encode_for(key, obj)?, None)
            }
            MainWrite::Delete(_) => TxnOp::delete(key, None),
        }];
        let mut checks = vec![TxnOp::get(key, Some(GetOptions::new().with_keys_only()))];
        for (k, v) in claims {
            compares.push(Compare::create_revision(k.as_str(), CompareOp::Equal, 0));
            ops.push(TxnOp::put(k.as_str(), v.clone(), None));
            checks.push(TxnOp::get(
                k.as_str(),
                Some(GetOptions::new().with_count_only()),
            ));
        }
        for k in releases {
            ops.push(TxnOp::delete(k.as_str(), None));
        }
        let txn = Txn::new().when(compares).and_then(ops).or_else(checks);
        let (mut kv, _permit) = self.kv().await;
        let resp = kv.txn(txn).await?;
        if resp.succeeded() {
            return Ok(ClaimOutcome::Written(
                resp.header().map_or(0, |h| h.revision()),
            ));
        }
        let responses = resp.op_responses();
        let answers: Vec<&etcd_client::GetResponse> = responses
            .iter()
            .filter_map(|r| match r {
                TxnOpResponse::Get(g) => Some(g),
                _ => None,
            })
            .collect();
        let main_ok = answers.first().is_some_and(|g| match op {
            MainWrite::Create(_) => g.kvs().is_empty(),
            MainWrite::Update(_, rev) | MainWrite::Delete(rev) => {
                g.kvs().first().is_some_and(|kv| kv.mod_revision() == rev)
            }
        });
        if !main_ok {
            return Ok(ClaimOutcome::Conflict);
        }
        let taken = claims
            .iter()
            .zip(answers.iter().skip(1))
            .filter(|(_, g)| g.count() > 0)
            .map(|((k, _), _)| k.clone())
            .collect();
        Ok(ClaimOutcome::Taken(taken))
    }

    /// Keys (no values) under `prefix` with their revisions, at most `limit`.
    pub async fn list_keys(
        &self,
        prefix: &str,
        limit: i64,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        let opts = GetOptions::new()
            .with_range(prefix_end(prefix))
            .with_keys_only()
            .with_limit(limit);
        let (mut kv, _permit) = self.kv().await;
        let resp = kv.get(prefix, Some(opts)).await?;
        Ok(resp
            .kvs()
            .iter()
            .map(|kv| {
                (
                    String::from_utf8_lossy(kv.key()).into_owned(),
                    kv.mod_revision(),
                )
            })
            .collect())
    }

    /// Creates a raw side key (no encryption, no `resourceVersion` handling) unless it
    /// exists; returns whether it was created.
    pub async fn create_raw(&self, key: &str, value: Vec<u8>) -> Result<bool, StoreError> {
        let txn = Txn::new()
            .when([Compare::create_revision(key, CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key, value, None)]);
        let (mut kv, _permit) = self.kv().await;
        Ok(kv.txn(txn).await?.succeeded())
    }

    /// Deletes a raw side key if it is still at revision `expected`.
    pub async fn delete_raw(&self, key: &str, expected: i64) -> Result<bool, StoreError> {
        let txn = Txn::new()
            .when([Compare::mod_revision(key, CompareOp::Equal, expected)])
            .and_then([TxnOp::delete(key, None)]);
        let (mut kv, _permit) = self.kv().await;
        Ok(kv.txn(txn).await?.succeeded())
    }

    /// Watches every key in etcd from `start_revision` on (the watch cache's one stream).
    pub async fn watch_all(&self, start_revision: i64) -> Result<WatchStream, etcd_client::Error> {
        let opts = WatchOptions::new()
            .with_all_keys()
            .with_start_revision(start_revision);
        self.watch.clone().watch("\0", Some(opts)).await
    }

    /// Health check for `/readyz`: a linearizable read within `timeout`.
    pub async fn ping(&self, timeout: Duration) -> Result<(), String> {
        match tokio::time::timeout(timeout, self.current_revision()).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("etcd did not answer within {}s", timeout.as_secs())),
        }
    }
}

/// Storage failures as the handlers see them.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Etcd(#[from] etcd_client::Error),
    #[error(transparent)]
    Other(#[from] Error),
}

impl StoreError {
    /// The API error a client sees; compaction becomes 410 Expired like Kubernetes.
    pub fn to_api(&self) -> ApiError {
        match self {
            StoreError::Etcd(e) if is_compacted(e) => {
                ApiError::expired("The resourceVersion for the provided list is too old.")
            }
            StoreError::Etcd(e) => ApiError::internal(format!("etcd: {e}")),
            StoreError::Other(e) => ApiError::internal(e.to_string()),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        e.to_api()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_increments_last_byte() {
        assert_eq!(prefix_end("/registry/pods/"), b"/registry/pods0".to_vec());
        assert_eq!(prefix_end("a\u{7f}"), b"a\x80".to_vec());
    }

    #[test]
    fn encode_drops_resource_version() {
        let v = serde_json::json!({"metadata": {"name": "a", "resourceVersion": "5"}});
        let bytes = encode(&v).expect("encode");
        let back: Value = serde_json::from_slice(&bytes).expect("decode");
        assert!(back["metadata"].get("resourceVersion").is_none());
    }
}
