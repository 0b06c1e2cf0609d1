//! Records in Redis, the way the backends keep them.
//!
//! A record is a hash under `<kind>:<id>` (`trip:9f1c…` with fields `from` and
//! `to`; `airport:…` with `name`), readable with `redis-cli HGETALL`. Ids are
//! UUIDv4 as 32 lowercase hex characters.
//!
//! Creating is idempotent per request: the request's AMQP `message_id` is
//! remembered for a day under `<kind>:request:<message_id>`, with the id it
//! created and a fingerprint of its fields (`<id> <sha1 hex>`), and one Lua
//! script checks it, writes the hash and remembers both atomically. A
//! redelivered request therefore gets the id of the first delivery and leaves
//! exactly one record. A caller chooses the `message_id` with an
//! idempotency key; the same key with other fields is refused
//! ([`StoreError::KeyReused`]), as the IETF Idempotency-Key draft asks,
//! rather than answered with the id of a different record.
//!
//! Errors are the store's own [`StoreError`]; `status.rs` turns them into gRPC
//! statuses where a service answers its caller. Each command is observed
//! (span, latency, errors) by `telemetry/redis.rs`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deadpool_redis::redis::aio::MultiplexedConnection;
use deadpool_redis::redis::{self, AsyncCommands, ErrorKind};
use deadpool_redis::{Pool, PoolConfig, PoolError, Runtime, Timeouts};

use crate::config::ConfigError;
use crate::id::{is_id, new_id};
use crate::telemetry::redis::observe;

/// How long a request's `message_id` is remembered for idempotent creates.
const IDEMPOTENCY_TTL_SECS: u64 = 24 * 60 * 60;
/// Longest wait for a Redis connection or reply before answering UNAVAILABLE.
const REDIS_TIMEOUT: Duration = Duration::from_secs(2);

// KEYS: the request's key, the new record's key. ARGV: the new id, the TTL,
// then the record's fields and values. Answers {id, outcome}. The
// fingerprint length-prefixes each field and value, so no two different
// records share its input. A request remembered before fingerprints were
// (a bare id) counts as the same request.
const CREATE_ONCE: &str = r"
local parts = {}
for i = 3, #ARGV do
  parts[#parts + 1] = #ARGV[i] .. ':' .. ARGV[i]
end
local fingerprint = redis.sha1hex(table.concat(parts))
local existing = redis.call('GET', KEYS[1])
if existing then
  local id, seen = string.match(existing, '^(%x+) (%x+)$')
  if not id then
    return {existing, 'same'}
  end
  if seen == fingerprint then
    return {id, 'same'}
  end
  return {id, 'other'}
end
redis.call('HSET', KEYS[2], unpack(ARGV, 3))
redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. fingerprint, 'EX', ARGV[2])
return {ARGV[1], 'new'}
";

/// Why a store call failed; its `Display` is the message callers see.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Redis cannot be reached now (down, timed out, connection lost): the
    /// same call may succeed later.
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    /// Redis refused the command or its answer is unusable; trying again will
    /// not help.
    #[error("the store failed: {0}")]
    Failed(String),
    /// The request's idempotency key was used before by a request with other
    /// fields; nothing was stored.
    #[error("this idempotency key was already used with a different request")]
    KeyReused,
}

/// The records of one kind in one Redis.
///
/// Every call shares one multiplexed connection, which pipelines concurrent
/// commands. The deadpool pool makes and verifies connections: a new one is
/// taken from it when there is none yet or the last one failed. (Taking a
/// pooled connection per call would cost a verifying PING round trip each
/// time, as much Redis work again as the call itself.)
#[derive(Clone)]
pub struct RecordStore {
    pool: Pool,
    shared: Arc<Mutex<Option<MultiplexedConnection>>>,
    kind: &'static str,
    create_once: redis::Script,
}

impl RecordStore {
    /// A store of `kind` records (`trip`, `airport`) in the Redis at `url`.
    /// Connects lazily: a Redis that is down now only fails calls, not start-up.
    pub fn new(url: &str, kind: &'static str) -> Result<Self, ConfigError> {
        let mut config = deadpool_redis::Config::from_url(url);
        config.pool = Some(PoolConfig {
            max_size: 32,
            timeouts: Timeouts {
                wait: Some(REDIS_TIMEOUT),
                create: Some(REDIS_TIMEOUT),
                recycle: Some(REDIS_TIMEOUT),
            },
            ..PoolConfig::default()
        });
        let pool = config
            .create_pool(Some(Runtime::Tokio1))
            .map_err(|err| ConfigError::new("REDIS_URL", url, err))?;
        Ok(Self {
            pool,
            shared: Arc::new(Mutex::new(None)),
            kind,
            create_once: redis::Script::new(CREATE_ONCE),
        })
    }

    /// Stores a new record and returns its id, once the write is acknowledged.
    /// Calls with the same `message_id` and fields (redeliveries or retries
    /// of one request) get the same id; the same `message_id` with other
    /// fields is [`StoreError::KeyReused`]; without one, every call creates a
    /// record.
    pub async fn create(
        &self,
        message_id: Option<&str>,
        fields: &[(&str, &str)],
    ) -> Result<String, StoreError> {
        let message_id = message_id.map_or_else(new_id, str::to_owned);
        let id = new_id();
        let (id, outcome): (String, String) = observe("EVALSHA", async {
            let mut connection = self.connection().await?;
            let mut invocation = self.create_once.prepare_invoke();
            invocation
                .key(format!("{}:request:{message_id}", self.kind))
                .key(self.key(&id))
                .arg(&id)
                .arg(IDEMPOTENCY_TTL_SECS);
            for (field, value) in fields {
                invocation.arg(*field).arg(*value);
            }
            invocation
                .invoke_async(&mut connection)
                .await
                .map_err(|err| self.failed(err))
        })
        .await?;
        match outcome.as_str() {
            "new" | "same" => Ok(id),
            "other" => Err(StoreError::KeyReused),
            other => Err(StoreError::Failed(format!(
                "unexpected answer {other:?} from the create script"
            ))),
        }
    }

    /// The fields of record `id`, or `None` when there is no such record.
    pub async fn get(&self, id: &str) -> Result<Option<HashMap<String, String>>, StoreError> {
        if !is_id(id) {
            return Ok(None);
        }
        let fields: HashMap<String, String> = observe("HGETALL", async {
            let mut connection = self.connection().await?;
            connection
                .hgetall(self.key(id))
                .await
                .map_err(|err| self.failed(err))
        })
        .await?;
        Ok((!fields.is_empty()).then_some(fields))
    }

    /// Whether Redis answers a PING right now.
    pub async fn ping(&self) -> bool {
        observe("PING", async {
            let mut connection = self.connection().await?;
            let pong: String = redis::cmd("PING")
                .query_async(&mut connection)
                .await
                .map_err(|err| self.failed(err))?;
            Ok(pong)
        })
        .await
        .is_ok()
    }

    fn key(&self, id: &str) -> String {
        format!("{}:{id}", self.kind)
    }

    /// The shared connection, or a new one from the pool.
    async fn connection(&self) -> Result<MultiplexedConnection, StoreError> {
        if let Some(connection) = self.shared.lock().expect("poisoned").clone() {
            return Ok(connection);
        }
        let pooled = self.pool.get().await.map_err(|err| {
            tracing::warn!(error = %err, "Redis unreachable");
            match err {
                PoolError::Backend(err) => classify(err),
                other => StoreError::Unavailable(other.to_string()),
            }
        })?;
        let connection = deadpool_redis::Connection::take(pooled);
        *self.shared.lock().expect("poisoned") = Some(connection.clone());
        Ok(connection)
    }

    /// Turns a command's error into a [`StoreError`]; after a connection-level
    /// error the next call gets a new connection.
    fn failed(&self, err: redis::RedisError) -> StoreError {
        let err = classify(err);
        if matches!(err, StoreError::Unavailable(_)) {
            self.shared.lock().expect("poisoned").take();
        }
        err
    }
}

/// Whether a Redis error may pass (unavailable) or will not (failed).
fn classify(err: redis::RedisError) -> StoreError {
    let reachable_later = err.is_io_error()
        || err.is_timeout()
        || err.is_connection_dropped()
        || err.is_connection_refusal()
        || matches!(err.kind(), ErrorKind::Client)
        || matches!(
            err.retry_method(),
            redis::RetryMethod::WaitAndRetry | redis::RetryMethod::Reconnect
        );
    if reachable_later {
        StoreError::Unavailable(err.to_string())
    } else {
        StoreError::Failed(err.to_string())
    }
}
