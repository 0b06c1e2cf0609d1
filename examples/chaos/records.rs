//! What the system holds once the load has stopped — every acknowledged record
//! read back through the gateway, every record dumped straight from Redis —
//! and the targets about it: no acknowledged create lost, no request stored
//! twice, no record that no create asked for.

use std::collections::HashMap;
use std::time::Duration;

use futures_util::StreamExt;

use crate::checks::Target;
use crate::load::{Acked, Op, Sample, Seen, airport_body, airport_name, trip_body, trip_from};
use crate::system::System;

/// The acknowledged records that did not read back as written through the
/// gateway: one line each.
pub struct ReadBack {
    pub wrong: Vec<String>,
}

/// Every record in each backend's Redis: id → its payload (a trip's `from`, an
/// airport's `name`).
pub struct Stored {
    pub trips: HashMap<String, String>,
    pub airports: HashMap<String, String>,
}

/// Reads every acknowledged record back through the gateway.
pub async fn read_back(seen: &Seen) -> ReadBack {
    let checks = seen
        .trips
        .iter()
        .map(|a| (format!("{}/trip/{}", seen.base, a.id), trip_body(a.seq)))
        .chain(seen.airports.iter().map(|a| {
            (
                format!("{}/airport/{}", seen.base, a.id),
                airport_body(a.seq),
            )
        }));
    let client = &seen.client;
    let wrong = futures_util::stream::iter(checks)
        .map(|(url, want)| async move {
            // The system is healthy again; a transient 503 is retried.
            for _ in 0..5 {
                match client.get(&url).send().await {
                    Ok(response) if response.status() == 200 => {
                        let body = response.text().await.unwrap_or_default();
                        return (body != want).then(|| format!("{url} answered {body:?}"));
                    }
                    _ => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            }
            Some(format!("{url} did not answer 200"))
        })
        .buffer_unordered(16)
        .filter_map(|wrong| async move { wrong })
        .collect()
        .await;
    ReadBack { wrong }
}

impl Stored {
    pub async fn dump(system: &System) -> Self {
        Self {
            trips: dump(system, "trips", "trip", "from").await,
            airports: dump(system, "airports", "airport", "name").await,
        }
    }
}

/// Every record of `kind` in `backend`'s Redis: id → the value of `field`.
/// (`redis-cli` reads any size of reply; the records are few thousand.)
async fn dump(system: &System, backend: &str, kind: &str, field: &str) -> HashMap<String, String> {
    const SCRIPT: &str = "local out = {} \
        for _, key in ipairs(redis.call('KEYS', ARGV[1])) do \
          out[#out + 1] = key \
          out[#out + 1] = redis.call('HGET', key, ARGV[2]) or '' \
        end \
        return out";
    let pattern = format!("{kind}:{}", "?".repeat(32));
    let args = ["--raw", "EVAL", SCRIPT, "0", &pattern, field];
    let text = match system {
        System::Native(native) => {
            let redis = match backend {
                "trips" => &native.stack.trips_redis,
                _ => &native.stack.airports_redis,
            };
            let output = tokio::process::Command::new("redis-cli")
                .arg("-s")
                .arg(redis.socket())
                .args(args)
                .output()
                .await
                .expect("cannot run redis-cli");
            assert!(output.status.success(), "redis-cli failed: {output:?}");
            String::from_utf8(output.stdout).expect("UTF-8 from redis-cli")
        }
        System::Cluster(cluster) => cluster.redis_cli(backend, &args).await,
    };
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() % 2 == 0, "odd redis-cli output: {text:.200}");
    lines
        .chunks(2)
        .map(|pair| {
            let id = pair[0]
                .strip_prefix(&format!("{kind}:"))
                .expect("a record key");
            (id.to_owned(), pair[1].to_owned())
        })
        .collect()
}

/// No acknowledged create lost: each reads back as written through the
/// gateway, and is in Redis as written.
pub struct Lost {
    pub via_gateway: usize,
    pub in_redis: usize,
    examples: Vec<String>,
}

impl Lost {
    pub fn count(&self) -> usize {
        self.via_gateway.max(self.in_redis)
    }

    /// Up to 5 records lost.
    pub fn examples(&self) -> &[String] {
        &self.examples
    }
}

pub fn lost(seen: &Seen, read_back: &ReadBack, stored: &Stored) -> Lost {
    let mut examples: Vec<String> = read_back.wrong.iter().take(5).cloned().collect();
    let mut in_redis = 0;
    for (acked, stored, name) in [
        (&seen.trips, &stored.trips, trip_from as fn(u64) -> String),
        (&seen.airports, &stored.airports, airport_name),
    ] {
        for Acked { id, seq } in acked {
            if stored.get(id) != Some(&name(*seq)) {
                in_redis += 1;
                if examples.len() < 5 {
                    examples.push(format!(
                        "acknowledged {id} ({}) is {:?} in Redis",
                        name(*seq),
                        stored.get(id)
                    ));
                }
            }
        }
    }
    Lost {
        via_gateway: read_back.wrong.len(),
        in_redis,
        examples,
    }
}

impl Target for Lost {
    fn missed(&self, why: &mut Vec<String>) {
        let (lost, via_gateway, in_redis) = (self.count(), self.via_gateway, self.in_redis);
        if lost > 0 {
            why.push(format!(
                "{lost} acknowledged creates lost ({via_gateway} by reading back through the gateway, {in_redis} in Redis)"
            ));
        }
    }
}

/// Each store's records grouped by payload: payload → the ids holding it.
fn by_payload(stored: &HashMap<String, String>) -> HashMap<&str, Vec<&str>> {
    let mut by_payload: HashMap<&str, Vec<&str>> = HashMap::new();
    for (id, payload) in stored {
        by_payload.entry(payload).or_default().push(id);
    }
    by_payload
}

/// No request stored twice: no two records with the same payload.
pub struct Duplicates {
    pub count: usize,
    examples: Vec<String>,
}

pub fn duplicates(stored: &Stored) -> Duplicates {
    let mut found = Duplicates {
        count: 0,
        examples: Vec::new(),
    };
    for records in [&stored.trips, &stored.airports] {
        for (payload, ids) in by_payload(records) {
            if ids.len() > 1 {
                found.count += ids.len() - 1;
                if found.examples.len() < 10 {
                    let times = ids.len();
                    found
                        .examples
                        .push(format!("{payload} is stored {times} times: {ids:?}"));
                }
            }
        }
    }
    found
}

impl Duplicates {
    /// Up to 10 payloads stored more than once.
    pub fn examples(&self) -> &[String] {
        &self.examples
    }
}

impl Target for Duplicates {
    fn missed(&self, why: &mut Vec<String>) {
        if self.count > 0 {
            why.push(format!("{} duplicate records", self.count));
        }
    }
}

/// Every record was asked for by a create of the load; some were stored by
/// creates whose answer failed (allowed, and counted).
pub struct Strays {
    /// Records no create asked for: payload and ids.
    pub unasked: Vec<String>,
    pub stored_after_failure: usize,
}

pub fn strays(stored: &Stored, samples: &[Sample]) -> Strays {
    let outcome_of: HashMap<u64, &Sample> = samples.iter().map(|s| (s.seq, s)).collect();
    let mut found = Strays {
        unasked: Vec::new(),
        stored_after_failure: 0,
    };
    for (records, prefix, create) in [
        (&stored.trips, 'T', Op::CreateTrip),
        (&stored.airports, 'A', Op::CreateAirport),
    ] {
        for (payload, ids) in by_payload(records) {
            let seq = payload
                .strip_prefix(prefix)
                .and_then(|s| s.parse::<u64>().ok());
            match seq.and_then(|s| outcome_of.get(&s)) {
                Some(sample) if sample.op == create => {
                    if sample.failed() {
                        found.stored_after_failure += 1;
                    }
                }
                _ => found.unasked.push(format!("{payload} {ids:?}")),
            }
        }
    }
    found
}

impl Target for Strays {
    fn missed(&self, why: &mut Vec<String>) {
        for record in &self.unasked {
            why.push(format!("a record nobody asked for: {record}"));
        }
    }
}
