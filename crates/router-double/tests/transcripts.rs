//! The double against the real router's recorded answers: every management
//! exchange of `router-transcripts` (files 01..64 and 66..68; 00 is the
//! connection set-up and 65 vanflow) is replayed, in the recorded order,
//! on a real AMQP connection to a double set up like the recorded router,
//! and each answer is compared with the recorded one in the transcripts'
//! typed notation: same sections, same format codes, same status, same
//! attribute names in the same order, same values.
//!
//! Requests go out as their recorded bytes. What must differ is
//! substituted in the requests and in the recorded answers alike, each
//! for a stated reason ([`Substitutions`]); values that cannot be the
//! same are compared more loosely, each named with its reason
//! ([`EXCEPTIONS`]). Everything else must match exactly.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream as StdTcpStream;
use std::sync::Arc;
use std::time::Duration;

use common::Pki;
use reference_check::transcripts::{self, load_all, Transcript};
use router_double::{config, DoubleConfig, RouterDouble};
use serde_json::{json, Value as Json};
use skupperd_amqp::codec::typed;
use skupperd_amqp::message::section_ranges;
use skupperd_amqp::{Connection, Options, Receiver, Sender, Terminus};
use tokio::net::TcpStream;

/// The recorded router's identity values (README).
const SITE_ID: &str = "0f1e2d3c-5b6a-4d7e-8f90-a1b2c3d4e5f6";
/// The random parts of the recorded dynamic reply addresses
/// (`amqp:/_topo/0/demo-0f1e2d3c/temp.<id>`, router.address `Ltemp.<id>`).
const RECORDED_REPLY_TO: &str = "temp.xJiWymTVYCLaGiQ";
const RECORDED_SMALL_FRAME_REPLY_TO: &str = "temp.3b4xD6OtOcCYGJ5";
/// The recorded router's vanflow source id prefix (`llNiF:0`).
const RECORDED_VANFLOW_PREFIX: &str = "llNiF";
/// The recorded management client's local port (connection row, file 23).
const RECORDED_CLIENT_PORT: &str = "41280";

/// Ports of the recording and why each is replaced.
const RECORDED_MGMT_PORT: &str = "29671";
const RECORDED_BACKEND_PORT: &str = "29080";
const RECORDED_ECHO_PORT: &str = "29691";
const RECORDED_BUSY_PORT: &str = "29685";

/// The README's skrouterd.json, with the ports the test picks.
fn recorded_config(mgmt: u16, backend: u16) -> String {
    format!(
        r#"[["router",{{"id":"demo-0f1e2d3c","mode":"interior"}}],
 ["listener",{{"name":"mgmt","host":"127.0.0.1","port":{mgmt},"role":"normal","authenticatePeer":false,"saslMechanisms":"ANONYMOUS"}}],
 ["sslProfile",{{"name":"skupper-local-server","caCertFile":"/var/lib/skupper/namespaces/demo/runtime/certs/skupper-local-server/ca.crt","certFile":"/var/lib/skupper/namespaces/demo/runtime/certs/skupper-local-server/tls.crt","privateKeyFile":"/var/lib/skupper/namespaces/demo/runtime/certs/skupper-local-server/tls.key"}}],
 ["address",{{"prefix":"mc","distribution":"multicast"}}],
 ["tcpListener",{{"name":"listener/backend","host":"127.0.0.1","port":"{backend}","address":"backend"}}],
 ["site",{{"name":"demo-0f1e2d3c","namespace":"demo","platform":"linux","version":"0.1.0"}}]]"#
    )
}

// ---------------------------------------------------------------------------
// Transcripts

fn transcripts() -> Vec<Transcript> {
    let all = load_all().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(all.len(), 69, "00..68 in the router transcripts");
    all
}

fn payload(message: &Json) -> Vec<u8> {
    transcripts::payload(message).unwrap_or_else(|| panic!("no payload in {message}"))
}

// ---------------------------------------------------------------------------
// Substitutions: values that differ between the recording and the replay
// by construction. They are applied to the request bytes (same length, so
// the recorded encodings stay as they are) and to every string of the
// recorded answers.

struct Substitutions {
    pairs: Vec<(String, String, &'static str)>,
}

impl Substitutions {
    fn add(&mut self, recorded: &str, ours: &str, why: &'static str) {
        assert_eq!(
            recorded.len(),
            ours.len(),
            "{why}: substitutions keep lengths ({recorded} -> {ours})"
        );
        self.pairs.push((recorded.into(), ours.into(), why));
    }

    fn text(&self, s: &str) -> String {
        let mut s = s.to_string();
        for (recorded, ours, _) in &self.pairs {
            s = s.replace(recorded, ours);
        }
        s
    }

    fn bytes(&self, bytes: &[u8]) -> Vec<u8> {
        let mut out = bytes.to_vec();
        for (recorded, ours, _) in &self.pairs {
            let (from, to) = (recorded.as_bytes(), ours.as_bytes());
            let mut i = 0;
            while i + from.len() <= out.len() {
                if &out[i..i + from.len()] == from {
                    out[i..i + from.len()].copy_from_slice(to);
                    i += from.len();
                } else {
                    i += 1;
                }
            }
        }
        out
    }

    /// Applies the substitutions to every string and symbol of a value in
    /// typed notation.
    fn typed(&self, node: &mut Json) {
        let Some(items) = node.as_array_mut() else {
            return;
        };
        let code = items
            .first()
            .and_then(Json::as_str)
            .unwrap_or("")
            .to_string();
        match code.as_str() {
            "0xa1" | "0xb1" | "0xa3" | "0xb3" => {
                if let Some(Json::String(s)) = items.get_mut(1) {
                    *s = self.text(s);
                }
            }
            "0x00" => {
                for child in items.iter_mut().skip(1) {
                    self.typed(child);
                }
            }
            "0xc0" | "0xd0" | "0x45" => {
                for child in items[1].as_array_mut().unwrap() {
                    self.typed(child);
                }
            }
            "0xc1" | "0xd1" => {
                for pair in items[1].as_array_mut().unwrap() {
                    for child in pair.as_array_mut().unwrap() {
                        self.typed(child);
                    }
                }
            }
            "0xe0" | "0xf0" => {
                if matches!(items[1].as_str(), Some("0xa1" | "0xb1" | "0xa3" | "0xb3")) {
                    for s in items[2].as_array_mut().unwrap() {
                        if let Json::String(text) = s {
                            *text = self.text(text);
                        }
                    }
                }
            }
            _ => {}
        }
    }
}

// ---------------------------------------------------------------------------
// Exceptions: attributes whose values cannot be the same, with how they
// are compared instead.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Loose {
    /// The same format code; any value.
    SameCode,
    /// An integer of the same family (ulong: 44/53/80, uint: 43/52/70,
    /// int: 54/71, long: 55/81); any value.
    SameFamily,
    /// Anything (the value describes the replay's own transport).
    Any,
}

struct Exception {
    entity_type: &'static str,
    attributes: &'static [&'static str],
    /// Only in these rows (by their first column, `name`); empty: all.
    rows: &'static [&'static str],
    loose: Loose,
    why: &'static str,
}

const EXCEPTIONS: &[Exception] = &[
    Exception {
        entity_type: "router",
        attributes: &["hostName"],
        rows: &[],
        loose: Loose::SameCode,
        why: "the machine's host name (the recording ran in a UTS namespace named \
              localhost)",
    },
    Exception {
        entity_type: "router.node",
        attributes: &["instance"],
        rows: &[],
        loose: Loose::SameCode,
        why: "the router's start time in seconds",
    },
    Exception {
        entity_type: "router.address",
        attributes: &["deliveriesFromContainer"],
        rows: &["Lqdhello", "Tqdrouter"],
        loose: Loose::SameFamily,
        why: "the router's own hello and router-advert messages, sent on timers: \
              their count depends on how long the router has run",
    },
    Exception {
        entity_type: "router.link",
        attributes: &["settleRate", "creditAvailable"],
        rows: &[],
        loose: Loose::SameFamily,
        why: "rates over time and the credit the client chose to grant (proton's \
              10 then 20; the replay client tops credit up its own way)",
    },
    Exception {
        entity_type: "connection",
        attributes: &["uptimeSeconds"],
        rows: &[],
        loose: Loose::SameFamily,
        why: "seconds since the connection opened",
    },
    Exception {
        entity_type: "connection",
        attributes: &[
            "sasl",
            "user",
            "isEncrypted",
            "sslProto",
            "sslCipher",
            "sslSsf",
            "ssl",
        ],
        rows: &[],
        loose: Loose::Any,
        why: "the recording's client used plain AMQP with SASL ANONYMOUS; the double \
              serves mutual TLS with SASL EXTERNAL only (like skupperd's management \
              listener), so the replay's connection is encrypted and authenticated \
              by certificate",
    },
];

fn exception(entity_type: &str, row: &str, attribute: &str) -> Option<&'static Exception> {
    EXCEPTIONS.iter().find(|e| {
        e.entity_type == entity_type
            && e.attributes.contains(&attribute)
            && (e.rows.is_empty() || e.rows.contains(&row))
    })
}

/// The exception attributes whose values did differ: every named
/// exception must be needed.
type Used = std::collections::BTreeSet<(&'static str, String)>;

fn family(code: &str) -> &str {
    match code {
        "0x44" | "0x53" | "0x80" => "ulong",
        "0x43" | "0x52" | "0x70" => "uint",
        "0x54" | "0x71" => "int",
        "0x55" | "0x81" => "long",
        other => other,
    }
}

fn loosely_equal(loose: Loose, expected: &Json, actual: &Json) -> bool {
    let code = |v: &Json| v[0].as_str().unwrap_or("").to_string();
    match loose {
        Loose::SameCode => code(expected) == code(actual),
        Loose::SameFamily => family(&code(expected)) == family(&code(actual)),
        Loose::Any => true,
    }
}

/// The short entity type of a request.
fn request_type(request: &skupperd_amqp::Message) -> String {
    let t = request
        .application_property("entityType")
        .or_else(|| request.application_property("type"))
        .and_then(skupperd_amqp::Value::as_str)
        .unwrap_or("");
    t.strip_prefix("io.skupper.router.")
        .unwrap_or(t)
        .to_string()
}

/// Differences between a recorded body and ours, in typed notation.
fn body_diffs(entity_type: &str, expected: &Json, actual: &Json, used: &mut Used) -> Vec<String> {
    let mut out = Vec::new();
    let exp_map = map_pairs(expected);
    let act_map = map_pairs(actual);
    let (Some(exp_map), Some(act_map)) = (exp_map, act_map) else {
        if expected != actual {
            out.push(format!("body: expected {expected}, got {actual}"));
        }
        return out;
    };
    let keys = |m: &[(Json, Json)]| m.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>();
    if keys(&exp_map) != keys(&act_map) {
        out.push(format!(
            "keys: expected {}, got {}",
            Json::from(keys(&exp_map)),
            Json::from(keys(&act_map))
        ));
        return out;
    }
    let get = |m: &[(Json, Json)], k: &str| {
        m.iter()
            .find(|(key, _)| key[1] == k)
            .map(|(_, v)| v.clone())
    };
    let is_table = get(&exp_map, "attributeNames").is_some() && get(&exp_map, "results").is_some();
    if !is_table {
        for ((k, e), (_, a)) in exp_map.iter().zip(&act_map) {
            let name = k[1].as_str().unwrap_or("?");
            value_diff(entity_type, "", name, e, a, used, &mut out);
        }
        return out;
    }
    let names = get(&exp_map, "attributeNames").unwrap();
    let act_names = get(&act_map, "attributeNames").unwrap();
    if names != act_names {
        out.push(format!("attributeNames: expected {names}, got {act_names}"));
        return out;
    }
    let names: Vec<String> = names[1]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n[1].as_str().unwrap().to_string())
        .collect();
    let exp_rows = get(&exp_map, "results").unwrap();
    let act_rows = get(&act_map, "results").unwrap();
    if exp_rows[0] != act_rows[0] {
        out.push(format!(
            "results: expected code {}, got {}",
            exp_rows[0], act_rows[0]
        ));
    }
    let (exp_rows, act_rows) = (
        exp_rows[1].as_array().unwrap(),
        act_rows[1].as_array().unwrap(),
    );
    if exp_rows.len() != act_rows.len() {
        out.push(format!(
            "results: expected {} rows, got {}",
            exp_rows.len(),
            act_rows.len()
        ));
    }
    for (i, (e, a)) in exp_rows.iter().zip(act_rows).enumerate() {
        if e[0] != a[0] {
            out.push(format!("row {i}: expected code {}, got {}", e[0], a[0]));
            continue;
        }
        let (e, a) = (e[1].as_array().unwrap(), a[1].as_array().unwrap());
        if e.len() != a.len() {
            out.push(format!(
                "row {i}: expected {} values, got {}",
                e.len(),
                a.len()
            ));
            continue;
        }
        let row = e.first().and_then(|v| v[1].as_str()).unwrap_or("");
        for ((name, ev), av) in names.iter().zip(e).zip(a) {
            let mut diffs = Vec::new();
            value_diff(entity_type, row, name, ev, av, used, &mut diffs);
            out.extend(diffs.into_iter().map(|d| format!("row {i} {d}")));
        }
    }
    out
}

fn value_diff(
    entity_type: &str,
    row: &str,
    name: &str,
    expected: &Json,
    actual: &Json,
    used: &mut Used,
    out: &mut Vec<String>,
) {
    let exception = exception(entity_type, row, name);
    if let Some(x) = exception {
        if expected != actual {
            used.insert((x.why, name.to_string()));
        }
    }
    match exception {
        Some(x) if !loosely_equal(x.loose, expected, actual) => out.push(format!(
            "{name}: expected {expected} ({:?}: {}), got {actual}",
            x.loose, x.why
        )),
        Some(_) => {}
        None if expected != actual => {
            out.push(format!("{name}: expected {expected}, got {actual}"))
        }
        None => {}
    }
}

/// The pairs of a typed map.
fn map_pairs(node: &Json) -> Option<Vec<(Json, Json)>> {
    let items = node.as_array()?;
    if !matches!(items.first()?.as_str()?, "0xd1" | "0xc1") {
        return None;
    }
    Some(
        items[1]
            .as_array()?
            .iter()
            .map(|p| (p[0].clone(), p[1].clone()))
            .collect(),
    )
}

/// Differences between a recorded answer and ours, section by section.
fn answer_diffs(
    entity_type: &str,
    subs: &Substitutions,
    recorded: &[u8],
    ours: &[u8],
    used: &mut Used,
) -> Vec<String> {
    let typed_sections = |bytes: &[u8]| -> Vec<Json> {
        section_ranges(bytes)
            .unwrap()
            .into_iter()
            .map(|r| typed(&bytes[r]).unwrap())
            .collect()
    };
    let mut expected = typed_sections(recorded);
    for s in &mut expected {
        subs.typed(s);
    }
    let actual = typed_sections(ours);
    let names = |s: &[Json]| s.iter().map(|x| x[1].clone()).collect::<Vec<_>>();
    if names(&expected) != names(&actual) {
        return vec![format!(
            "sections: expected {:?}, got {:?}",
            names(&expected),
            names(&actual)
        )];
    }
    let mut out = Vec::new();
    for (e, a) in expected.iter().zip(&actual) {
        if e[1] == json!(["0x53", 119]) {
            out.extend(body_diffs(entity_type, &e[2], &a[2], used));
        } else if e != a {
            out.push(format!("section {}: expected {e}, got {a}", e[1]));
        }
    }
    out
}

// ---------------------------------------------------------------------------
// The replay client: mutual TLS, SASL EXTERNAL, one session, the recorded
// link names.

struct Client {
    connection: Connection,
    sender: Sender,
    receiver: Receiver,
    reply_to: String,
    local_port: u16,
}

async fn connect(port: u16, pki: &Pki, container: &str, max_frame_size: u32) -> Client {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(&pki.ca) {
        roots.add(ca.unwrap()).unwrap();
    }
    let chain: Vec<_> = CertificateDer::pem_slice_iter(&pki.client.cert)
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_slice(&pki.client.key).unwrap();
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_client_auth_cert(chain, key)
    .unwrap();
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let local_port = tcp.local_addr().unwrap().port();
    let server = ServerName::try_from("127.0.0.1").unwrap();
    let mut stream = tokio_rustls::TlsConnector::from(Arc::new(tls))
        .connect(server, tcp)
        .await
        .unwrap();
    skupperd_amqp::sasl::client(&mut stream, "EXTERNAL", b"")
        .await
        .unwrap();
    let mut options = Options::new(container);
    options.max_frame_size = max_frame_size;
    let connection = skupperd_amqp::client(stream, options).await.unwrap();
    let receiver = connection
        .receiver("mgmt-replies", Terminus::dynamic())
        .await
        .unwrap();
    let reply_to = receiver.address.clone().unwrap();
    let sender = connection
        .sender("mgmt-requests", "$management")
        .await
        .unwrap();
    Client {
        connection,
        sender,
        receiver,
        reply_to,
        local_port,
    }
}

impl Client {
    async fn exchange(&mut self, request: Vec<u8>) -> Vec<u8> {
        self.sender.send(request, false).unwrap();
        let delivery = tokio::time::timeout(Duration::from_secs(10), self.receiver.recv())
            .await
            .expect("an answer within 10 s")
            .expect("the reply link is open");
        assert!(delivery.settled, "answers come pre-settled");
        delivery.payload
    }
}

/// `temp.<id>` of a dynamic address `amqp:/_topo/0/<router>/temp.<id>`.
fn temp_part(address: &str) -> &str {
    let (topo, temp) = address.rsplit_once('/').unwrap();
    assert_eq!(topo, "amqp:/_topo/0/demo-0f1e2d3c", "{address}");
    temp
}

/// A port that was free a moment ago, with five digits so it replaces a
/// recorded port byte for byte.
fn free_port() -> u16 {
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if port >= 10000 {
            return port;
        }
    }
}

/// An echo server on `port` (the recording's was on 29691).
fn echo_server(port: u16) {
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = conn.read(&mut buf) {
                    if n == 0 || conn.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
}

/// One client connection through a tcpListener: sends `data`, reads
/// until the far end closes, answers what came back.
fn round_trip(port: u16, data: &[u8]) -> Vec<u8> {
    let mut conn = StdTcpStream::connect(("127.0.0.1", port)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    conn.write_all(data).unwrap();
    let mut back = Vec::new();
    // The echo comes back whole before the client half-closes; a refused
    // connector closes at once.
    let mut buf = [0u8; 4096];
    while back.len() < data.len() {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => back.extend_from_slice(&buf[..n]),
        }
    }
    // The far end may have closed already.
    let _ = conn.shutdown(std::net::Shutdown::Write);
    while let Ok(n) = conn.read(&mut buf) {
        if n == 0 {
            break;
        }
        back.extend_from_slice(&buf[..n]);
    }
    back
}

/// Waits until every connection through the tcpListener `name` has been
/// counted as closed by the double.
async fn connections_settled(double: &RouterDouble, name: &str) {
    for _ in 0..200 {
        let e = double.entity(name).unwrap();
        if e.attrs.get("connectionsOpened") == e.attrs.get("connectionsClosed") {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{name}: connections did not end");
}

// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_double_answers_every_recorded_management_request_like_the_router() {
    let transcripts = transcripts();
    let pki = Pki::new("skupper-local-ca");

    let mgmt_port = free_port();
    let backend_port = free_port();
    let echo_port = free_port();
    // Held for the port-in-use case, as the recording's unrelated process.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_port = busy.local_addr().unwrap().port();
    assert!(busy_port >= 10000);

    let (_, entities) = config::parse(&recorded_config(mgmt_port, backend_port)).unwrap();
    let mut double_config: DoubleConfig = pki.double_config();
    double_config.port = mgmt_port;
    double_config.entities = entities;
    double_config.site_id = SITE_ID.into();
    // The recorded profile's files are on the capture machine only, and
    // nothing here uses the profile.
    double_config.check_ssl_files = false;
    let double = RouterDouble::start(double_config).await.unwrap();

    let mut client = connect(mgmt_port, &pki, "mgmt-client", 32768).await;

    let mut subs = Substitutions { pairs: Vec::new() };
    subs.add(
        RECORDED_REPLY_TO,
        temp_part(&client.reply_to),
        "the dynamic reply address the router made up",
    );
    subs.add(
        RECORDED_VANFLOW_PREFIX,
        &double.vanflow_id()[..5],
        "the vanflow source id, random per router",
    );
    subs.add(
        RECORDED_CLIENT_PORT,
        &client.local_port.to_string(),
        "the management client's own port (connection row)",
    );
    subs.add(
        RECORDED_MGMT_PORT,
        &mgmt_port.to_string(),
        "the management listener's port, picked at test time",
    );
    subs.add(
        RECORDED_BACKEND_PORT,
        &backend_port.to_string(),
        "listener/backend's port, picked at test time",
    );
    subs.add(
        RECORDED_ECHO_PORT,
        &echo_port.to_string(),
        "the echo server's port, picked at test time",
    );
    subs.add(
        RECORDED_BUSY_PORT,
        &busy_port.to_string(),
        "the port another process holds, picked at test time",
    );

    let mut failures: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut used = Used::new();
    let mut compared = 0;
    for t in &transcripts {
        if t.number() == 0 || t.number() == 65 {
            continue;
        }
        // What happened between the recorded exchanges (the descriptions).
        match t.number() {
            45 => {
                let back = round_trip(backend_port, b"ping");
                assert_eq!(back, b"", "nothing listens behind the connector");
                connections_settled(&double, "listener/backend").await;
            }
            47 => echo_server(echo_port),
            48 => {
                let line = b"hello through the router\n";
                assert_eq!(round_trip(backend_port, line), line);
                connections_settled(&double, "listener/backend").await;
            }
            _ => {}
        }
        let mut small;
        let (client, subs) = if t.number() == 64 {
            small = connect(mgmt_port, &pki, "mgmt-client-small-frames", 512).await;
            let mut s = Substitutions { pairs: Vec::new() };
            s.add(
                RECORDED_SMALL_FRAME_REPLY_TO,
                temp_part(&small.reply_to),
                "the second connection's reply address",
            );
            s.pairs.extend(subs.pairs.iter().cloned());
            (&mut small, s)
        } else {
            (
                &mut client,
                Substitutions {
                    pairs: subs.pairs.clone(),
                },
            )
        };
        let requests = t.messages_from("client->router");
        let answers = t.messages_from("router->client");
        assert_eq!(requests.len(), answers.len(), "{}", t.file);
        for (i, (request, answer)) in requests.into_iter().zip(answers).enumerate() {
            let recorded_request = payload(request);
            let entity_type =
                request_type(&skupperd_amqp::Message::decode(&recorded_request).unwrap());
            let ours = client.exchange(subs.bytes(&recorded_request)).await;
            let diffs = answer_diffs(&entity_type, &subs, &payload(answer), &ours, &mut used);
            compared += 1;
            if !diffs.is_empty() {
                failures.insert(format!("{}#{i}", t.file), diffs);
            }
        }
        if t.number() == 64 {
            client.connection.close().await;
        }
    }
    drop(busy);
    assert_eq!(compared, 81, "every recorded management exchange");
    // Every exception is needed: each attribute it names differed at least
    // once.
    let unneeded: Vec<String> = EXCEPTIONS
        .iter()
        .flat_map(|x| {
            x.attributes
                .iter()
                .filter(|a| !used.contains(&(x.why, a.to_string())))
                .map(|a| format!("{}.{a}", x.entity_type))
        })
        .collect();
    assert!(unneeded.is_empty(), "exceptions not needed: {unneeded:?}");
    if !failures.is_empty() {
        let mut report = String::new();
        for (file, diffs) in &failures {
            report.push_str(&format!("{file}:\n"));
            for d in diffs {
                report.push_str(&format!("    {d}\n"));
            }
        }
        panic!(
            "{} of {compared} answers differ from the recording:\n{report}",
            failures.len()
        );
    }
}

#[test]
fn the_comparison_sees_what_differs() {
    let transcripts = transcripts();
    let answer = |n: u32| {
        let t = transcripts.iter().find(|t| t.number() == n).unwrap();
        payload(t.messages_from("router->client")[0])
    };
    let none = Substitutions { pairs: Vec::new() };
    let mut used = Used::new();
    // The same answer: nothing differs.
    assert!(answer_diffs("tcpListener", &none, &answer(18), &answer(18), &mut used).is_empty());
    // Listener rows before and after traffic: the counters and rows show.
    let diffs = answer_diffs("tcpListener", &none, &answer(18), &answer(64), &mut used);
    assert!(
        diffs.iter().any(|d| d.contains("connectionsOpened")),
        "{diffs:?}"
    );
    assert!(diffs
        .iter()
        .any(|d| d.contains("correlation") || d.contains("section")));
    // Another agent's answer: the status order and the body differ.
    assert!(!answer_diffs("router", &none, &answer(1), &answer(2), &mut used).is_empty());
    // Loose comparisons are not blind.
    let ulong0 = json!(["0x44", 0]);
    assert!(loosely_equal(
        Loose::SameFamily,
        &ulong0,
        &json!(["0x53", 7])
    ));
    assert!(!loosely_equal(
        Loose::SameFamily,
        &ulong0,
        &json!(["0x43", 0])
    ));
    assert!(!loosely_equal(
        Loose::SameCode,
        &json!(["0x71", 5]),
        &json!(["0x54", 5])
    ));
}
