//! skupperd's AMQP reading against a real skupper-router's bytes: the
//! recorded exchanges in `router-transcripts` (reference directory, see its
//! README). Every section of every message must read back in the
//! transcripts' own typed notation; every management answer must decode
//! with the client's `read_answer`, with the status, correlation-id and
//! table values skupperd relies on; the vanflow messages must feed the
//! network view; and the router's answers must re-encode to their exact
//! bytes, except where the codec's `Value` cannot carry the encoding (the
//! C agent's empty `list32`, named below).

use std::time::Instant;

use reference_check::transcripts::{self, load_all, Transcript};
use serde_json::{json, Value as Json};
use skupperd::router::mgmt::{entity_body, read_answer, read_table};
use skupperd::router::vanflow::{self, parse_records, read_message, NetworkView, VanflowMessage};
use skupperd_amqp::codec::{typed, Reader};
use skupperd_amqp::message::{section_ranges, sections, CORRELATION_ID, PROPERTIES};
use skupperd_amqp::{Message, Value};

/// Each client request with the router's answer to it, paired by
/// correlation-id (request and answer alternate in every file).
fn exchanges(t: &Transcript) -> Vec<(Vec<u8>, Vec<u8>)> {
    let requests = t.messages_from("client->router");
    let answers = t.messages_from("router->client");
    assert_eq!(requests.len(), answers.len(), "{}", t.file);
    requests
        .into_iter()
        .zip(answers)
        .map(|(q, a)| (payload(q), payload(a)))
        .collect()
}

/// Every `NN-*.json` of the transcripts, in order. Fails (never skips)
/// when the reference directory is missing.
fn transcripts() -> Vec<Transcript> {
    let all = load_all().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(all.len(), 69, "00..68 in the router transcripts");
    all
}

fn unhex(text: &str) -> Vec<u8> {
    transcripts::unhex(text).unwrap_or_else(|| panic!("not hex: {text}"))
}

/// A message's payload: its sections' bytes, which are contiguous.
fn payload(message: &Json) -> Vec<u8> {
    transcripts::payload(message).unwrap_or_else(|| panic!("no payload in {message}"))
}

/// The payload as carried by the message's transfer frames: each frame's
/// bytes after its 8-byte header, extended header and performative.
fn payload_from_frames(t: &Transcript, message: &Json) -> Vec<u8> {
    let frames = t.doc["frames"].as_array().unwrap();
    let mut out = Vec::new();
    for seq in message["frame_seqs"].as_array().unwrap() {
        let frame = frames
            .iter()
            .find(|f| f["seq"] == *seq)
            .unwrap_or_else(|| panic!("{}: no frame {seq}", t.file));
        assert_eq!(frame["type"], "transfer", "{}: frame {seq}", t.file);
        let bytes = unhex(frame["hex"].as_str().unwrap());
        let size = u32::from_be_bytes(bytes[0..4].try_into().unwrap()) as usize;
        assert_eq!(size, bytes.len(), "{}: frame {seq} size", t.file);
        let body = &bytes[usize::from(bytes[4]) * 4..];
        let mut reader = Reader::new(body);
        reader.next_value().expect("the transfer performative");
        out.extend_from_slice(&body[reader.position()..]);
    }
    out
}

fn is_vanflow(t: &Transcript) -> bool {
    t.number() == 65
}

// ---------------------------------------------------------------------------
// (a) the codec reads every section exactly as the transcripts render it

#[test]
fn every_section_of_every_message_reads_in_the_transcripts_typed_notation() {
    let mut checked = 0;
    for t in transcripts() {
        for (i, message) in t.messages().into_iter().enumerate() {
            let bytes = payload(message);
            assert_eq!(
                Some(bytes.len() as u64),
                message["payload_bytes"].as_u64(),
                "{} message {i}: the sections cover the payload",
                t.file
            );
            assert_eq!(
                bytes,
                payload_from_frames(&t, message),
                "{} message {i}: the sections are what the transfer frames carried",
                t.file
            );
            let ranges = section_ranges(&bytes).unwrap();
            let recorded = message["sections"].as_array().unwrap();
            assert_eq!(ranges.len(), recorded.len(), "{} message {i}", t.file);
            for (range, section) in ranges.into_iter().zip(recorded) {
                let hex = unhex(section["hex"].as_str().unwrap());
                assert_eq!(bytes[range].to_vec(), hex);
                let ours = typed(&hex).unwrap_or_else(|e| {
                    panic!("{} message {i} {}: {e}", t.file, section["section"])
                });
                assert_eq!(
                    ours, section["decoded_with_types"],
                    "{} message {i} {}",
                    t.file, section["section"]
                );
                checked += 1;
            }
            // And the message reader takes every message (both directions).
            Message::decode(&bytes).unwrap_or_else(|e| panic!("{} message {i}: {e}", t.file));
        }
    }
    // 81 requests (one without a body), 81 answers, 12 vanflow messages.
    assert_eq!(checked, 80 * 3 + 2 + 81 * 4 + 8 * 3 + 4 * 2);
}

// ---------------------------------------------------------------------------
// (b) the management client reads every answer

/// Which of the router's two agents answers a request (README "Which agent
/// answers").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Agent {
    Python,
    C,
}

fn agent_of(request: &Message) -> Agent {
    let prop = |k: &str| request.application_property(k).and_then(Value::as_str);
    let c_types = [
        "io.skupper.router.router.address",
        "io.skupper.router.router.link",
        "io.skupper.router.connection",
        "io.skupper.router.router.config.address",
    ];
    if prop("operation") == Some("QUERY")
        && prop("entityType").is_some_and(|t| c_types.contains(&t))
    {
        Agent::C
    } else {
        Agent::Python
    }
}

/// The correlation-id echo of the README table: the C agent copies the
/// id; the Python agent turns an integer into the smallest signed type
/// that holds it (a ulong above i64::MAX wraps) and loses a uuid.
fn echoed(agent: Agent, id: &Value) -> Option<Value> {
    let signed = |n: i64| i32::try_from(n).map_or(Value::Long(n), Value::Int);
    match (agent, id) {
        (Agent::C, id) => Some(id.clone()),
        (Agent::Python, Value::Uuid(_)) => None,
        (Agent::Python, Value::Ulong(n)) => Some(signed(i64::from_ne_bytes(n.to_ne_bytes()))),
        (Agent::Python, other) => match other.as_int() {
            Some(n) => Some(signed(i64::try_from(n).unwrap())),
            None => Some(other.clone()),
        },
    }
}

/// The Python agent's encoding of an integer id: smallint, int or long.
fn python_int_code(v: &Value) -> &'static str {
    match v.as_int() {
        Some(n) if (-128..=127).contains(&n) => "0x54",
        Some(n) if i32::try_from(n).is_ok() => "0x71",
        _ => "0x81",
    }
}

/// The typed notation of the properties' correlation-id field.
fn typed_correlation(payload: &[u8]) -> Json {
    let ranges = section_ranges(payload).unwrap();
    let secs = sections(payload).unwrap();
    let (range, _) = ranges
        .into_iter()
        .zip(secs)
        .find(|(_, (code, _))| *code == PROPERTIES)
        .expect("a properties section");
    let t = typed(&payload[range]).unwrap();
    t[2][1][CORRELATION_ID].clone()
}

/// The status every answer of a file carries (README "Files"): 200 OK
/// unless listed.
fn expected_status(file: u32) -> (u16, &'static str) {
    match file {
        16 => (400, "No such entity type 'io.skupper.router.address'"),
        29 => (
            404,
            "Unknown attributes ['nope'] for type io.skupper.router.tcpListener.",
        ),
        31 => (
            400,
            "io.skupper.router.tcpListener: No name or identity provided",
        ),
        33 | 59 => (404, "No entity with name=listener/nope"),
        34 | 37 | 38 | 41 | 47 | 49 | 51 => (201, "Created"),
        // The whole text is checked below.
        35 => (400, "adding TcpListenerEntity("),
        36 => (
            400,
            "Unknown attribute 'bogus' for 'io.skupper.router.tcpListener'",
        ),
        46 | 58 | 60 => (204, "No Content"),
        55 => (400, "Cannot update attribute 'port' in UPDATE"),
        57 => (
            501,
            "Operation 'UPDATE' not implemented for 'io.skupper.router.tcpConnector' ['CREATE', 'DELETE', 'READ']",
        ),
        _ => (200, "OK"),
    }
}

/// Every management answer of every file, decoded with `read_answer`,
/// with its request.
struct Answer {
    file: u32,
    request: Message,
    request_payload: Vec<u8>,
    payload: Vec<u8>,
    correlation: Option<Value>,
    reply: skupperd::router::mgmt::Reply,
}

fn answers() -> Vec<Answer> {
    let mut out = Vec::new();
    for t in transcripts() {
        if is_vanflow(&t) {
            continue;
        }
        for (request, answer) in exchanges(&t) {
            let (correlation, reply) = read_answer(&answer)
                .unwrap_or_else(|e| panic!("{}: read_answer failed: {e}", t.file));
            out.push(Answer {
                file: t.number(),
                request: Message::decode(&request).unwrap(),
                request_payload: request,
                payload: answer,
                correlation,
                reply,
            });
        }
    }
    out
}

#[test]
fn every_management_answer_reads_with_its_status_and_correlation_id() {
    let answers = answers();
    assert_eq!(answers.len(), 81, "management answers in files 01..68");
    for a in &answers {
        let (code, description) = expected_status(a.file);
        assert_eq!(a.reply.code, code, "file {:02}", a.file);
        if a.file == 35 {
            assert!(
                a.reply.description.starts_with(description)
                    && a.reply.description.contains(
                        ") duplicates unique attribute 'name' from existing TcpListenerEntity("
                    ),
                "{}",
                a.reply.description
            );
        } else {
            assert_eq!(a.reply.description, description, "file {:02}", a.file);
        }

        // The correlation-id as the README's echo table says.
        let agent = agent_of(&a.request);
        let sent = a
            .request
            .correlation_id()
            .unwrap_or_else(|| panic!("file {:02}: request without id", a.file));
        assert_eq!(
            a.correlation,
            echoed(agent, sent),
            "file {:02} ({agent:?} agent)",
            a.file
        );
        let request_bytes = &a.request_payload;
        let reply_id = typed_correlation(&a.payload);
        match (agent, &a.correlation) {
            (Agent::C, _) => assert_eq!(
                reply_id,
                typed_correlation(request_bytes),
                "file {:02}: the C agent copies the id",
                a.file
            ),
            (Agent::Python, Some(id)) if id.as_int().is_some() => {
                assert_eq!(reply_id[0], python_int_code(id), "file {:02}", a.file)
            }
            (Agent::Python, None) => assert_eq!(reply_id, json!(["0x40", null])),
            (Agent::Python, Some(_)) => assert_eq!(reply_id, typed_correlation(request_bytes)),
        }

        // statusCode is an int (0x71) from both agents; the key order
        // tells the agent.
        let message = Message::decode(&a.payload).unwrap();
        let keys: Vec<&str> = message
            .application_properties
            .as_ref()
            .unwrap()
            .iter()
            .filter_map(|(k, _)| k.as_str())
            .collect();
        match agent {
            Agent::Python => assert_eq!(keys, ["statusCode", "statusDescription"]),
            Agent::C => assert_eq!(keys, ["statusDescription", "statusCode"]),
        }
        assert_eq!(
            message.application_property("statusCode"),
            Some(&Value::Int(i32::from(code)))
        );
        assert_eq!(
            message.header,
            Some(vec![Value::Bool(false)]),
            "file {:02}",
            a.file
        );
    }

    // The README's echo table, literally.
    let by_file = |n: u32| answers.iter().find(|a| a.file == n).unwrap();
    assert_eq!(by_file(1).correlation, Some(Value::Int(1)));
    assert_eq!(by_file(2).correlation, Some(Value::Ulong(1)));
    assert_eq!(by_file(3).correlation, Some(Value::Int(0)));
    assert_eq!(by_file(4).correlation, Some(Value::Ulong(0)));
    assert_eq!(by_file(5).correlation, Some(Value::Long(5_000_000_000)));
    assert_eq!(by_file(6).correlation, Some(Value::Ulong(5_000_000_000)));
    assert_eq!(by_file(7).correlation, Some(Value::str("req-7")));
    assert_eq!(by_file(8).correlation, Some(Value::str("req-7")));
    let binary = Some(Value::Binary(vec![0x00, 0x01, 0xfe, 0xff]));
    assert_eq!(by_file(9).correlation, binary);
    assert_eq!(by_file(10).correlation, binary);
    assert!(matches!(by_file(11).correlation, Some(Value::Uuid(_))));
    assert_eq!(
        by_file(66).correlation,
        None,
        "the Python agent loses a uuid"
    );
    assert_eq!(by_file(67).correlation, Some(Value::Int(-1)));
    assert_eq!(
        typed_correlation(&by_file(29).payload),
        json!(["0x71", 128])
    );
}

/// The entities of a QUERY answer.
fn table(a: &Answer) -> Vec<serde_json::Map<String, Json>> {
    read_table(a.reply.body.clone())
        .unwrap_or_else(|e| panic!("file {:02}: read_table: {e}", a.file))
}

fn operation(a: &Answer) -> &str {
    a.request
        .application_property("operation")
        .and_then(Value::as_str)
        .unwrap_or("")
}

#[test]
fn query_answers_read_as_tables_with_the_values_skupperd_relies_on() {
    let answers = answers();
    let mut tables = 0;
    for a in answers.iter().filter(|a| a.reply.code == 200) {
        match operation(a) {
            "QUERY" => {
                let rows = table(a);
                tables += 1;
                for row in &rows {
                    if let Some(port) = row.get("port") {
                        assert!(port.is_string(), "file {:02}: port {port}", a.file);
                    }
                    if let Some(msg) = row.get("connectionMsg") {
                        assert!(msg.is_string(), "file {:02}: connectionMsg {msg}", a.file);
                    }
                }
            }
            "READ" | "CREATE" | "UPDATE" => {
                let entity = entity_body(a.reply.body.clone()).unwrap();
                if let Some(port) = entity.get("port") {
                    assert!(port.is_string(), "file {:02}: port {port}", a.file);
                }
            }
            _ => {
                entity_body(a.reply.body.clone()).unwrap();
            }
        }
    }
    assert_eq!(tables, 54, "QUERY answers with status 200");

    let by_file = |n: u32| -> Vec<&Answer> { answers.iter().filter(|a| a.file == n).collect() };
    let rows = |n: u32, i: usize| table(by_file(n)[i]);

    // The config file's tcpListener, all attributes (Python agent).
    let backend = &rows(18, 0)[0];
    assert_eq!(backend["name"], "listener/backend");
    assert_eq!(backend["port"], "29080");
    assert_eq!(backend["operStatus"], "down");
    assert_eq!(backend["connectionMsg"], "");
    assert_eq!(backend["observer"], "auto");
    assert_eq!(backend["siteId"], Json::Null, "unset is null");
    assert_eq!(
        backend["identity"],
        "tcpListener/127.0.0.1:29080:listener/backend"
    );
    assert_eq!(backend["connectionsOpened"], 0);

    // Empty answers: the Python agent's list0 and the C agent's list32.
    for n in [14, 19, 25] {
        assert!(rows(n, 0).is_empty(), "file {n}");
    }
    let paged = by_file(27);
    assert_eq!(paged.len(), 10);
    for (i, page) in paged.iter().enumerate() {
        assert_eq!(table(page).len(), if i < 9 { 2 } else { 0 }, "page {i}");
    }
    assert_eq!(table(paged[8])[1]["key"], "Ltemp.xJiWymTVYCLaGiQ");
    assert_eq!(table(paged[8])[1]["subscriberCount"], 1);
    // The Python agent ignores offset and count.
    let logs = by_file(28);
    assert_eq!(table(logs[0]).len(), 23);
    assert_eq!(table(logs[0]), table(logs[1]));

    // router.address through the C agent: counters of every width read
    // as numbers, an unknown attribute comes back as `name`.
    let addresses = rows(22, 0);
    let mbackend = addresses.iter().find(|r| r["key"] == "Mbackend").unwrap();
    assert_eq!(mbackend["watch"], true);
    assert_eq!(mbackend["subscriberCount"], 0);
    assert_eq!(mbackend["inProcess"], 0);
    assert_eq!(mbackend["priority"], -1);
    let management = addresses
        .iter()
        .find(|r| r["key"] == "M$management")
        .unwrap();
    assert_eq!(management["deliveriesIngress"], 22);
    assert_eq!(management["inProcess"], 1);
    let unknown = rows(30, 0);
    assert_eq!(unknown[0].keys().collect::<Vec<_>>(), ["key", "name"]);
    let backend_row = |n: u32, i: usize| {
        table(by_file(n)[i])
            .into_iter()
            .find(|r| r["key"] == "Mbackend")
            .unwrap()
    };
    assert_eq!(backend_row(40, 0)["subscriberCount"], 0);
    assert_eq!(backend_row(44, 0)["subscriberCount"], 1);
    assert_eq!(backend_row(48, 2)["subscriberCount"], 1);

    // operStatus and connectionMsg through the connector's life.
    let status = |n: u32, i: usize, name: &str| {
        let row = table(by_file(n)[i])
            .into_iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("file {n}: no {name}"));
        (
            row["operStatus"].as_str().unwrap().to_string(),
            row["connectionMsg"].as_str().unwrap().to_string(),
        )
    };
    let down = ("down".to_string(), String::new());
    assert_eq!(status(39, 0, "listener/backend"), down);
    assert_eq!(status(39, 0, "listener/badport"), down);
    assert_eq!(status(43, 0, "listener/backend").0, "up");
    assert_eq!(status(50, 0, "listener/busy"), down);
    assert_eq!(
        status(52, 0, "listener/busy"),
        (
            "down".into(),
            "Address already in use - listen on 127.0.0.1:29685".into()
        )
    );
    assert_eq!(
        status(52, 0, "listener/badport"),
        (
            "down".into(),
            "Servname not supported for ai_socktype - listen on 127.0.0.1:abc".into()
        )
    );
    let connector = &rows(45, 0)[0];
    assert_eq!(connector["port"], "29691");
    assert_eq!(
        (
            &connector["connectionsOpened"],
            &connector["connectionsClosed"]
        ),
        (&json!(2), &json!(1))
    );

    // The multi-frame answer reads like any other.
    let listeners = rows(64, 0);
    assert_eq!(
        listeners
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["listener/backend", "listener/badport", "listener/busy"]
    );

    // The router entity and the C agent's connection row.
    let router = &rows(12, 0)[0];
    assert_eq!(router["id"], "demo-0f1e2d3c");
    assert_eq!(router["identity"], "router/demo-0f1e2d3c");
    assert_eq!(rows(21, 0)[0]["identity"], "site/None");
    assert_eq!(
        rows(15, 0)[0]["identity"],
        "sslProfile/skupper-local-server"
    );
    assert_eq!(rows(23, 0)[0]["container"], "mgmt-client");
}

#[test]
fn entity_answers_read_as_entities() {
    let answers = answers();
    let entity = |n: u32, i: usize| {
        let a = answers.iter().filter(|a| a.file == n).nth(i).unwrap();
        entity_body(a.reply.body.clone()).unwrap()
    };
    let read = entity(32, 0);
    assert_eq!(read["port"], "29080");
    assert_eq!(read["connectionMsg"], "");
    assert!(
        !read.contains_key("siteId"),
        "unset attributes are left out"
    );

    let created = entity(34, 0);
    assert_eq!(created["operStatus"], "down");
    assert_eq!(created["connectionMsg"], "");
    assert_eq!(created["observer"], "auto");
    assert_eq!(created["backlog"], 0);
    assert_eq!(created["authenticatePeer"], false);
    assert_eq!(created["multiAddressStrategy"], "none");
    assert_eq!(entity(37, 0)["port"], "abc");
    assert_eq!(
        entity(38, 0)["port"],
        "29682",
        "a long port comes back a string"
    );
    assert_eq!(entity(41, 0)["connectionsOpened"], 1);
    assert_eq!(entity(53, 0)["observer"], "none");
    let profile = entity(56, 0);
    assert_eq!(profile["ordinal"], 1);
    assert_eq!(profile.len(), 7, "only the set attributes: {profile:?}");
    for n in [33, 46, 58, 59, 60] {
        assert!(entity(n, 0).is_empty(), "file {n}");
    }
    let ops = entity(63, 0);
    assert_eq!(
        ops["io.skupper.router.tcpListener"],
        json!(["CREATE", "UPDATE", "DELETE", "READ"])
    );
    assert_eq!(entity(61, 0).len(), 31);
    assert_eq!(
        entity(62, 0)["io.skupper.router.org.amqp.management"],
        json!([
            "io.skupper.router.operationalEntity",
            "io.skupper.router.entity"
        ])
    );
}

// ---------------------------------------------------------------------------
// (c) vanflow

#[test]
fn vanflow_messages_feed_the_network_view() {
    let t = transcripts().into_iter().find(is_vanflow).unwrap();
    let mut view = NetworkView::default();
    let now = Instant::now();
    let mut kinds = Vec::new();
    let mut source: Option<String> = None;
    let mut all_records = Vec::new();
    for message in t.messages_from("router->client") {
        match read_message(&payload(message)).unwrap() {
            VanflowMessage::Beacon(beacon) => {
                kinds.push("BEACON");
                assert_eq!(beacon.id, "llNiF:0");
                assert_eq!(beacon.source_type, "ROUTER");
                assert_eq!(beacon.address, "mc/sfe.llNiF:0");
                assert_eq!(beacon.direct, "sfe.llNiF:0");
                let new = view.on_beacon(beacon.clone(), now);
                assert_eq!(new.is_some(), source.is_none(), "answered once");
                source = Some(beacon.id);
            }
            VanflowMessage::Heartbeat => {
                kinds.push("HEARTBEAT");
                let source = source.as_deref().unwrap();
                view.on_heartbeat(source, now);
                // The recorded collector sent its FLUSH after the first
                // heartbeat, as skupperd's view does.
                if view.awaiting_flush(source).is_some() {
                    view.flush_sent(source);
                }
            }
            VanflowMessage::Records(records) => {
                kinds.push("RECORD");
                all_records.extend(records.iter().cloned());
                view.on_records(source.as_deref().unwrap(), records);
            }
            VanflowMessage::Other => panic!("unexpected message: {message}"),
        }
    }
    assert_eq!(
        kinds,
        [
            "BEACON",
            "HEARTBEAT",
            "RECORD",
            "RECORD",
            "HEARTBEAT",
            "HEARTBEAT",
            "RECORD",
            "HEARTBEAT",
            "HEARTBEAT",
            "BEACON",
            "HEARTBEAT"
        ]
    );
    // The client's FLUSH is no message the view acts on.
    let flush = t.messages_from("client->router");
    assert_eq!(flush.len(), 1);
    assert_eq!(
        read_message(&payload(flush[0])).unwrap(),
        VanflowMessage::Other
    );

    let listener = all_records
        .iter()
        .find(|r| r.get(&vanflow::TYPE) == Some(&json!(vanflow::LISTENER)))
        .expect("a LISTENER record");
    assert_eq!(listener[&vanflow::ADDRESS], "backend");
    assert_eq!(listener[&vanflow::NAME], "listener/backend");
    assert_eq!(view.listener_for("backend"), Some(true));
    assert_eq!(view.listener_for("nope"), Some(false));
    assert_eq!(view.sites_in_network(), Some(1));
    let mut names = view.names(vanflow::LISTENER);
    names.sort();
    assert_eq!(
        names,
        ["listener/backend", "listener/badport", "listener/busy"]
    );

    // parse_records keeps every attribute the transcript lists.
    let recorded = t.doc["vanflow_records"].as_array().unwrap();
    assert_eq!(all_records.len(), recorded.len());
    for (ours, theirs) in all_records.iter().zip(recorded) {
        let theirs = theirs["record"].as_object().unwrap();
        assert_eq!(ours.len(), theirs.len(), "{theirs:?}");
        for (key, attr) in theirs {
            let code: u32 = key
                .rsplit_once('[')
                .and_then(|(_, n)| n.strip_suffix(']'))
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("attribute key {key}"));
            let expected = match &attr["value"] {
                // `"0 (SITE)"`: the number with its name.
                Json::String(s) if code == vanflow::TYPE => {
                    json!(s.split(' ').next().unwrap().parse::<u64>().unwrap())
                }
                other => other.clone(),
            };
            assert_eq!(ours[&code], expected, "{key}");
        }
    }
    // And records from a body parse alone too.
    let first_record = t.messages_from("router->client")[2];
    let body = Message::decode(&payload(first_record)).unwrap();
    assert_eq!(parse_records(body.value().unwrap()).len(), 8);
}

// ---------------------------------------------------------------------------
// (d) re-encoding

/// `["0xd0", []]` (the C agent's empty list32) as the list0 the encoder
/// writes for an empty list.
fn empty_list32_as_list0(t: &mut Json) -> usize {
    match t {
        Json::Array(items) => {
            if items.len() == 2 && items[0] == "0xd0" && items[1] == json!([]) {
                *t = json!(["0x45", []]);
                return 1;
            }
            items.iter_mut().map(empty_list32_as_list0).sum()
        }
        _ => 0,
    }
}

#[test]
fn router_messages_re_encode_to_their_exact_bytes() {
    let mut exact = 0;
    let mut widened = Vec::new();
    for t in transcripts() {
        for (i, message) in t.messages_from("router->client").into_iter().enumerate() {
            let bytes = payload(message);
            let again = Message::decode(&bytes).unwrap().encode();
            if again == bytes {
                exact += 1;
                continue;
            }
            // The one encoding `Value` does not keep: a list32 with no
            // elements decodes to an empty list, which the encoder writes
            // as list0 (as proton and the Python agent do). Everything
            // else must be the same, section by section.
            let ranges = section_ranges(&bytes).unwrap();
            let again_ranges = section_ranges(&again).unwrap();
            assert_eq!(ranges.len(), again_ranges.len());
            let mut replaced = 0;
            for (r, a) in ranges.into_iter().zip(again_ranges) {
                let mut recorded = typed(&bytes[r]).unwrap();
                replaced += empty_list32_as_list0(&mut recorded);
                assert_eq!(recorded, typed(&again[a]).unwrap(), "{} answer {i}", t.file);
            }
            assert!(replaced > 0, "{} answer {i} differs otherwise", t.file);
            widened.push(format!("{}#{i}", &t.file[..2]));
        }
    }
    // Files 22 (router.address rows' remoteHostRouters) and 27 (the empty
    // last page), both from the C agent; nothing else.
    assert_eq!(widened, ["22#0", "27#9"]);
    assert_eq!(
        exact,
        81 + 11 - 2,
        "management answers and vanflow messages"
    );
}
