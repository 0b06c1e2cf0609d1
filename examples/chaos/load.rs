//! The steady mixed load: an open loop of REST requests at a fixed rate (40%
//! trip creates, 30% trip reads, 15% airport creates, 15% airport reads), each
//! answer classified and kept as a [`Sample`], each acknowledged create kept
//! so it can be read back.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::CLIENT_TIMEOUT;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Op {
    CreateTrip,
    GetTrip,
    CreateAirport,
    GetAirport,
}

impl Op {
    pub const ALL: [Op; 4] = [
        Op::CreateTrip,
        Op::GetTrip,
        Op::CreateAirport,
        Op::GetAirport,
    ];

    /// 40% trip creates, 30% trip reads, 15% airport creates, 15% airport reads.
    fn nth(seq: u64) -> Op {
        match seq % 20 {
            0..8 => Op::CreateTrip,
            8..14 => Op::GetTrip,
            14..17 => Op::CreateAirport,
            _ => Op::GetAirport,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Op::CreateTrip => "POST /trip",
            Op::GetTrip => "GET /trip/{id}",
            Op::CreateAirport => "POST /airport",
            Op::GetAirport => "GET /airport/{id}",
        }
    }
}

#[derive(Clone, Debug)]
pub enum Answer {
    Ok,
    /// An HTTP status other than 200.
    Status(u16, String),
    /// Connection refused.
    Refused,
    /// No answer within [`CLIENT_TIMEOUT`].
    Timeout,
    /// The connection broke without an answer.
    Broken(String),
    /// 200 with the wrong body (a read of an acknowledged record that is not
    /// there, or not as written).
    Wrong(String),
}

#[derive(Clone, Debug)]
pub struct Sample {
    pub seq: u64,
    pub op: Op,
    /// Since the scenario's start.
    pub sent: Duration,
    pub took: Duration,
    pub answer: Answer,
}

impl Answer {
    pub fn describe(&self) -> String {
        match self {
            Answer::Ok => "200".into(),
            Answer::Status(code, body) => format!("{code} {body}"),
            Answer::Refused => "connection refused".into(),
            Answer::Timeout => format!("no answer within {} ms", CLIENT_TIMEOUT.as_millis()),
            Answer::Broken(why) => format!("connection broke: {why}"),
            Answer::Wrong(why) => format!("wrong answer: {why}"),
        }
    }
}

impl Sample {
    pub fn answered(&self) -> Duration {
        self.sent + self.took
    }

    pub fn failed(&self) -> bool {
        !matches!(self.answer, Answer::Ok)
    }
}

/// A record whose create was acknowledged.
#[derive(Clone, Debug)]
pub struct Acked {
    pub id: String,
    pub seq: u64,
}

/// The trip a create numbered `seq` asks for comes from here.
pub fn trip_from(seq: u64) -> String {
    format!("T{seq}")
}

const TRIP_TO: &str = "CPC";

pub fn airport_name(seq: u64) -> String {
    format!("A{seq}")
}

/// The body a read of trip `seq` answers.
pub fn trip_body(seq: u64) -> String {
    format!(
        r#"{{"trip": {{"from": "{}", "to": "{TRIP_TO}"}}}}"#,
        trip_from(seq)
    )
}

/// The body a read of airport `seq` answers.
pub fn airport_body(seq: u64) -> String {
    format!(r#"{{"airport": "{}"}}"#, airport_name(seq))
}

struct Load {
    client: reqwest::Client,
    base: String,
    start: Instant,
    trips: Mutex<Vec<Acked>>,
    airports: Mutex<Vec<Acked>>,
    samples: Mutex<Vec<Sample>>,
}

/// The load while it runs.
pub struct Running {
    /// The scenario's start, which every time is counted from.
    pub start: Instant,
    load: Arc<Load>,
    stop: CancellationToken,
    tasks: TaskTracker,
    generator: JoinHandle<()>,
}

/// What the load saw, once stopped.
pub struct Seen {
    pub samples: Vec<Sample>,
    pub trips: Vec<Acked>,
    pub airports: Vec<Acked>,
    /// When the last request was sent.
    pub until: Duration,
    /// The load's client, to read records back with.
    pub client: reqwest::Client,
    pub base: String,
}

impl Running {
    /// Starts `rate` requests a second against the gateway at `base`.
    pub fn start(base: String, rate: u32) -> Self {
        let start = Instant::now();
        let load = Arc::new(Load::new(base, start));
        let stop = CancellationToken::new();
        let tasks = TaskTracker::new();
        let generator = tokio::spawn(load.clone().run(rate, stop.clone(), tasks.clone()));
        Self {
            start,
            load,
            stop,
            tasks,
            generator,
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// Stops sending, waits for every answer, and returns what was seen.
    pub async fn finish(self) -> Seen {
        self.stop.cancel();
        self.generator.await.expect("the load generator");
        let until = self.start.elapsed();
        self.tasks.close();
        self.tasks.wait().await;
        let load = &self.load;
        Seen {
            samples: load.samples.lock().unwrap().clone(),
            trips: load.trips.lock().unwrap().clone(),
            airports: load.airports.lock().unwrap().clone(),
            until,
            client: load.client.clone(),
            base: load.base.clone(),
        }
    }
}

impl Load {
    fn new(base: String, start: Instant) -> Self {
        Self {
            client: reqwest::Client::builder()
                .timeout(CLIENT_TIMEOUT)
                .build()
                .expect("an HTTP client"),
            base,
            start,
            trips: Mutex::new(Vec::new()),
            airports: Mutex::new(Vec::new()),
            samples: Mutex::new(Vec::new()),
        }
    }

    /// Sends `rate` requests a second, each on its own task (an open loop: a
    /// slow answer never holds back the next request), until `stop`.
    async fn run(self: Arc<Self>, rate: u32, stop: CancellationToken, tasks: TaskTracker) {
        let mut tick = tokio::time::interval(Duration::from_secs(1) / rate);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut seq = 0;
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                _ = tick.tick() => {}
            }
            let load = self.clone();
            tasks.spawn(async move { load.one(seq).await });
            seq += 1;
        }
    }

    fn pick(list: &Mutex<Vec<Acked>>, seq: u64) -> Option<Acked> {
        let list = list.lock().unwrap();
        // Spread reads over everything created so far.
        let n = list.len() as u64;
        (n > 0).then(|| list[(seq.wrapping_mul(2_654_435_761) % n) as usize].clone())
    }

    /// Sends request `seq` and keeps its sample.
    async fn one(&self, seq: u64) {
        let mut op = Op::nth(seq);
        let read = match op {
            Op::GetTrip => Self::pick(&self.trips, seq),
            Op::GetAirport => Self::pick(&self.airports, seq),
            _ => None,
        };
        // Nothing to read yet: create instead.
        op = match (op, &read) {
            (Op::GetTrip, None) => Op::CreateTrip,
            (Op::GetAirport, None) => Op::CreateAirport,
            (op, _) => op,
        };
        let request = match op {
            Op::CreateTrip => self
                .client
                .post(format!("{}/trip", self.base))
                .body(format!(
                    r#"{{"airport_from": "{}", "airport_to": "{TRIP_TO}"}}"#,
                    trip_from(seq)
                )),
            Op::CreateAirport => self
                .client
                .post(format!("{}/airport", self.base))
                .body(format!(r#"{{"airport": "{}"}}"#, airport_name(seq))),
            Op::GetTrip => self.client.get(format!(
                "{}/trip/{}",
                self.base,
                read.as_ref().expect("picked").id
            )),
            Op::GetAirport => self.client.get(format!(
                "{}/airport/{}",
                self.base,
                read.as_ref().expect("picked").id
            )),
        };
        let sent = self.start.elapsed();
        let started = Instant::now();
        let answer = match request.send().await {
            Err(err) => classify_error(&err),
            Ok(response) => {
                let status = response.status().as_u16();
                match response.text().await {
                    Err(err) => classify_error(&err),
                    Ok(body) if status != 200 => Answer::Status(status, body),
                    Ok(body) => self.judge(op, seq, read, body),
                }
            }
        };
        self.samples.lock().unwrap().push(Sample {
            seq,
            op,
            sent,
            took: started.elapsed(),
            answer,
        });
    }

    /// A 200's body: a create answers a new id (kept as acknowledged), a read
    /// answers the record as written.
    fn judge(&self, op: Op, seq: u64, read: Option<Acked>, body: String) -> Answer {
        match op {
            Op::CreateTrip | Op::CreateAirport => {
                if airbridge::id::is_id(&body) {
                    let list = if op == Op::CreateTrip {
                        &self.trips
                    } else {
                        &self.airports
                    };
                    list.lock().unwrap().push(Acked { id: body, seq });
                    Answer::Ok
                } else {
                    Answer::Wrong(format!("create answered {body:?}"))
                }
            }
            Op::GetTrip | Op::GetAirport => {
                let read = read.expect("picked");
                let want = if op == Op::GetTrip {
                    trip_body(read.seq)
                } else {
                    airport_body(read.seq)
                };
                if body == want {
                    Answer::Ok
                } else {
                    Answer::Wrong(format!(
                        "read of acknowledged {} answered {body:?}, not {want:?}",
                        read.id
                    ))
                }
            }
        }
    }
}

fn classify_error(err: &reqwest::Error) -> Answer {
    if err.is_timeout() {
        Answer::Timeout
    } else if err.is_connect() && is_refused(err) {
        Answer::Refused
    } else {
        let mut text = err.to_string();
        let mut source = std::error::Error::source(err);
        while let Some(inner) = source {
            text.push_str(": ");
            text.push_str(&inner.to_string());
            source = inner.source();
        }
        Answer::Broken(text)
    }
}

fn is_refused(err: &reqwest::Error) -> bool {
    let mut source = std::error::Error::source(err);
    while let Some(inner) = source {
        if let Some(io) = inner.downcast_ref::<std::io::Error>() {
            return io.kind() == std::io::ErrorKind::ConnectionRefused;
        }
        source = inner.source();
    }
    false
}
