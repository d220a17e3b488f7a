//! skupperd's management client against the router double, over real TLS
//! with certificates made at test time: the operations, the router's
//! refusals, authentication, and a lost or silent router.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{attrs, free_port, started, Pki};
use serde_json::json;
use skupperd::router::{connect, Key, Management, MgmtError};

#[tokio::test]
async fn create_read_update_delete_answer_like_the_router() {
    let (_pki, double, mut client) = started().await;
    let port = free_port().to_string();
    let created = client
        .create(
            "tcpListener",
            "listener/web",
            &attrs(json!({"name": "listener/web", "address": "web", "host": "127.0.0.1", "port": port})),
        )
        .await
        .unwrap();
    assert_eq!(created["observer"], "auto", "defaults are filled in");
    assert_eq!(
        created["operStatus"], "down",
        "the socket opens after the reply"
    );
    assert_eq!(
        created["identity"],
        format!("tcpListener/127.0.0.1:{port}:listener/web")
    );

    let read = client
        .read(
            "tcpListener",
            Key::Identity(created["identity"].as_str().unwrap()),
        )
        .await
        .unwrap();
    assert_eq!(read["port"], port.as_str());

    let updated = client
        .update(
            "tcpListener",
            Key::Name("listener/web"),
            &attrs(json!({"observer": "http1"})),
        )
        .await
        .unwrap();
    assert_eq!(updated["observer"], "http1");
    assert_eq!(
        double.entity("listener/web").unwrap().attrs["observer"],
        "http1"
    );
    let mutations: Vec<String> = double
        .mutations()
        .iter()
        .map(|o| o.operation.clone())
        .collect();
    assert_eq!(
        mutations,
        ["CREATE", "UPDATE"],
        "an observer change is an UPDATE, not a re-create"
    );

    client
        .delete("tcpListener", Key::Name("listener/web"))
        .await
        .unwrap();
    assert!(double.entity("listener/web").is_none());
    let gone = client
        .read("tcpListener", Key::Name("listener/web"))
        .await
        .unwrap_err();
    assert_eq!(
        gone,
        MgmtError::Refused {
            code: 404,
            description: "No entity with name=listener/web".into()
        }
    );
}

#[tokio::test]
async fn query_reads_every_page_and_converts_values() {
    let (_pki, double, mut client) = started().await;
    for i in 0..7 {
        let name = format!("profile-{i}");
        client
            .create(
                "sslProfile",
                &name,
                &attrs(json!({"ordinal": i, "caCertFile": "/nonexistent/ca.crt"})),
            )
            .await
            .unwrap();
    }
    client.set_page_size(3);
    let rows = client
        .query("sslProfile", &["name", "ordinal", "certFile"])
        .await
        .unwrap();
    let names: Vec<&str> = rows.iter().filter_map(|r| r["name"].as_str()).collect();
    assert_eq!(names.len(), 7, "{names:?}");
    assert_eq!(rows[4]["ordinal"], 4, "integers come back as numbers");
    assert!(rows[4]["certFile"].is_null(), "unset attributes are null");
    let pages = |entity_type: &str| {
        double
            .operations()
            .into_iter()
            .filter(|o| o.operation == "QUERY" && o.entity_type == entity_type)
            .count()
    };
    // The real router's Python agent (which answers sslProfile) ignores
    // offset and count and sends every row (transcript 28), so one page
    // holds all 7. (This test expected 3 pages of 3 before the double
    // followed the transcripts.)
    assert_eq!(pages("sslProfile"), 1, "the Python agent answers all rows");

    // The C agent (router.address) honours them (transcript 27): pages of
    // 3 until a short one.
    let addresses = client
        .query("router.address", &["key", "subscriberCount"])
        .await
        .unwrap();
    let keys: Vec<&str> = addresses.iter().filter_map(|r| r["key"].as_str()).collect();
    assert!(keys.contains(&"M$management"), "{keys:?}");
    assert!(keys.iter().any(|k| k.starts_with("Ltemp.")), "{keys:?}");
    assert_eq!(pages("router.address"), keys.len() / 3 + 1, "{keys:?}");

    let everything = client.query("sslProfile", &[]).await.unwrap();
    assert!(
        everything[0].contains_key("oldestValidOrdinal"),
        "empty list = all attributes"
    );

    let names = client.attribute_names("tcpListener").await.unwrap();
    assert!(names.iter().any(|n| n == "connectionMsg"), "{names:?}");
    let unknown = client.attribute_names("bogus").await.unwrap_err();
    assert_eq!(
        unknown,
        MgmtError::Refused {
            code: 400,
            description: "No such entity type 'io.skupper.router.bogus'".into()
        }
    );
}

#[tokio::test]
async fn refusals_carry_the_routers_words_and_the_connection_goes_on() {
    let (_pki, _double, mut client) = started().await;
    let port = free_port().to_string();
    let refused = |e: MgmtError| match e {
        MgmtError::Refused { code, description } => (code, description),
        other => panic!("expected a refusal, got {other:?}"),
    };

    let e = client
        .create(
            "tcpListener",
            "listener/a",
            &attrs(json!({"address": "a", "port": port, "bogus": 1})),
        )
        .await
        .unwrap_err();
    assert_eq!(
        refused(e),
        (
            400,
            "Unknown attribute 'bogus' for 'io.skupper.router.tcpListener'".into()
        )
    );

    let e = client
        .create(
            "tcpListener",
            "listener/a",
            &attrs(json!({"address": "a", "port": port, "sslProfile": "nope"})),
        )
        .await
        .unwrap_err();
    assert_eq!(
        refused(e),
        (500, "CError: Not found: sslProfile 'nope' not found".into())
    );

    client
        .create(
            "sslProfile",
            "p-missing",
            &attrs(json!({"certFile": "/nonexistent/tls.crt"})),
        )
        .await
        .expect("a profile's files are read only when something uses it");
    let e = client
        .create(
            "tcpListener",
            "listener/a",
            &attrs(json!({"address": "a", "port": port, "sslProfile": "p-missing"})),
        )
        .await
        .unwrap_err();
    assert_eq!(
        refused(e),
        (
            500,
            "CError: Configuration: Failed to set TLS certFile '/nonexistent/tls.crt' for sslProfile 'p-missing': (-3)".into()
        )
    );

    client
        .create("sslProfile", "west", &attrs(json!({})))
        .await
        .unwrap();
    let (code, description) = refused(
        client
            .create(
                "tcpConnector",
                "west",
                &attrs(json!({"address": "w", "port": "1"})),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 400);
    assert!(
        description.contains("duplicates unique attribute 'name'"),
        "{description}"
    );

    client
        .create(
            "tcpConnector",
            "connector/db@127.0.0.1",
            &attrs(json!({"address": "db", "port": "5432"})),
        )
        .await
        .unwrap();
    let (code, description) = refused(
        client
            .update(
                "tcpConnector",
                Key::Name("connector/db@127.0.0.1"),
                &attrs(json!({"port": "5433"})),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 501);
    assert!(
        description.starts_with("Operation 'UPDATE' not implemented"),
        "{description}"
    );

    client
        .create(
            "tcpListener",
            "listener/b",
            &attrs(json!({"address": "b", "port": port})),
        )
        .await
        .unwrap();
    let e = client
        .update(
            "tcpListener",
            Key::Name("listener/b"),
            &attrs(json!({"port": "1"})),
        )
        .await
        .unwrap_err();
    assert_eq!(
        refused(e),
        (400, "Cannot update attribute 'port' in UPDATE".into())
    );

    let e = client
        .query("tcpListener", &["name", "nope"])
        .await
        .unwrap_err();
    assert_eq!(
        refused(e),
        (
            404,
            "Unknown attributes ['nope'] for type io.skupper.router.tcpListener.".into()
        )
    );

    let rows = client.query("tcpListener", &["name"]).await.unwrap();
    assert_eq!(rows.len(), 1, "only listener/b was created");
}

#[tokio::test]
async fn a_log_level_is_updated_by_identity_like_the_router() {
    let pki = Pki::new("skupper-local-ca");
    let mut config = pki.double_config();
    // As the config file has them; the router lists one per module.
    for (module, enable) in [("ROUTER_CORE", "error+"), ("DEFAULT", "info+")] {
        config.entities.push((
            "log".into(),
            attrs(json!({"module": module, "enable": enable})),
        ));
    }
    let double = router_double::RouterDouble::start(config).await.unwrap();
    let mut client = connect(double.port(), &pki.credentials()).await.unwrap();
    let rows = client
        .query("log", &["name", "module", "enable"])
        .await
        .unwrap();
    assert!(
        rows.iter()
            .any(|r| r["name"] == "log/DEFAULT" && r["enable"] == "info+"),
        "{rows:?}"
    );

    let updated = client
        .update(
            "log",
            Key::Identity("log/DEFAULT"),
            &attrs(json!({"enable": "debug+"})),
        )
        .await
        .unwrap();
    assert_eq!(updated["enable"], "debug+");
    assert_eq!(updated["module"], "DEFAULT");
    assert_eq!(updated["identity"], "log/DEFAULT");
    let op = double.mutations().pop().unwrap();
    assert_eq!(
        (
            op.operation.as_str(),
            op.identity.as_deref(),
            op.status_code
        ),
        ("UPDATE", Some("log/DEFAULT"), 200)
    );
    let rows = client.query("log", &["module", "enable"]).await.unwrap();
    assert!(
        rows.iter()
            .any(|r| r["module"] == "DEFAULT" && r["enable"] == "debug+"),
        "{rows:?}"
    );

    // A log entity can be neither created nor deleted over management.
    let err = client
        .create("log", "log/mine", &attrs(json!({"module": "ROUTER"})))
        .await
        .unwrap_err();
    assert!(
        matches!(err, MgmtError::Refused { code: 501, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_client_without_a_trusted_certificate_is_refused() {
    let pki = Pki::new("skupper-local-ca");
    let double = router_double::RouterDouble::start(pki.double_config())
        .await
        .unwrap();

    // A certificate from another CA: the handshake fails, reported as Lost
    // (the caller retries later; nothing else can be done).
    let stranger = Pki::new("some-other-ca");
    let mut creds = stranger.credentials();
    creds.ca_pem = pki.ca.clone();
    let err = connect(double.port(), &creds)
        .await
        .err()
        .expect("must be refused");
    assert!(matches!(err, MgmtError::Lost(_)), "{err:?}");

    // No certificate at all: the server answers with an alert, never AMQP.
    let mut roots = rustls::RootCertStore::empty();
    for ca in rustls::pki_types::pem::PemObject::pem_slice_iter(&pki.ca) {
        roots.add(ca.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", double.port()))
        .await
        .unwrap();
    let server = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let outcome = async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(server, tcp)
            .await?;
        tls.write_all(b"AMQP\x03\x01\x00\x00").await?;
        let mut header = [0u8; 8];
        tls.read_exact(&mut header).await?;
        Ok::<_, std::io::Error>(header)
    }
    .await;
    assert!(
        outcome.is_err(),
        "a client without a certificate got {outcome:?}"
    );

    // The proper client still gets in.
    let mut client = connect(double.port(), &pki.credentials()).await.unwrap();
    assert_eq!(
        client.query("router", &["id"]).await.unwrap()[0]["id"],
        "router-double"
    );
}

#[tokio::test]
async fn a_stopped_router_is_a_lost_connection() {
    let (_pki, double, mut client) = started().await;
    let router = client
        .query("router", &["id", "mode", "metadata"])
        .await
        .unwrap();
    assert_eq!(router[0]["mode"], "interior");
    let port = double.port();
    double.stop().await;
    let err = client.query("tcpListener", &[]).await.unwrap_err();
    assert!(matches!(err, MgmtError::Lost(_)), "{err:?}");
    assert!(client.is_lost());
    let again = client.read("router", Key::Name("x")).await.unwrap_err();
    assert!(
        matches!(again, MgmtError::Lost(_)),
        "lost stays lost: {again:?}"
    );
    let pki = Pki::new("skupper-local-ca");
    let reconnect = connect(port, &pki.credentials())
        .await
        .err()
        .expect("nobody listens");
    assert!(matches!(reconnect, MgmtError::Lost(_)), "{reconnect:?}");
}

#[tokio::test]
async fn a_request_without_an_answer_times_out_as_lost() {
    let (_pki, double, mut client) = started().await;
    client.set_timeout(Duration::from_millis(300));
    double.set_unresponsive(true);
    let err = client.query("tcpListener", &[]).await.unwrap_err();
    match err {
        MgmtError::Lost(reason) => assert!(reason.contains("no answer"), "{reason}"),
        other => panic!("expected Lost, got {other:?}"),
    }
    double.set_unresponsive(false);
    assert!(
        matches!(
            client.query("tcpListener", &[]).await,
            Err(MgmtError::Lost(_))
        ),
        "a timed-out connection is not reused"
    );
}

#[tokio::test]
async fn unusable_credentials_are_reported_as_such() {
    let pki = Pki::new("skupper-local-ca");
    let mut creds = pki.credentials();
    creds.client_key_pem = b"not a key".to_vec();
    let err = connect(1, &creds).await.err().expect("bad key");
    assert!(matches!(err, MgmtError::Credentials(_)), "{err:?}");
}

#[tokio::test]
async fn the_network_view_learns_listeners_from_vanflow() {
    let (_pki, double, mut client) = started().await;
    client
        .create(
            "tcpListener",
            "listener/web",
            &attrs(json!({"address": "web", "port": free_port().to_string()})),
        )
        .await
        .unwrap();
    double.inject_remote_listener("db", "db");
    let mut network = client.watch_network().await.unwrap();
    assert_eq!(
        network.view.borrow().listener_for("db"),
        None,
        "not available before the flush"
    );
    let view = tokio::time::timeout(
        Duration::from_secs(10),
        network.view.wait_for(|v| v.available()),
    )
    .await
    .expect("the records must arrive")
    .unwrap()
    .clone();
    assert_eq!(
        view.listener_for("db"),
        Some(true),
        "a listener on another router"
    );
    assert_eq!(
        view.listener_for("web"),
        Some(true),
        "a listener on this router"
    );
    assert_eq!(view.listener_for("nobody"), Some(false));
    assert_eq!(view.sites_in_network(), Some(1));
    let rows = client.query("tcpListener", &["name"]).await.unwrap();
    assert_eq!(rows.len(), 1, "management goes on beside the event stream");
}

/// sslProfile UPDATEs as the real router (3.0.0-137) answered them: a
/// lower ordinal is accepted; an oldestValidOrdinal above the ordinal and a
/// negative ordinal are refused with 500 in the core's words; and the
/// refused values stay in the agent's record, so the next UPDATE without
/// an ordinal fails too, until one sets a valid ordinal.
#[tokio::test]
async fn ssl_profile_updates_are_refused_as_the_router_refuses_them() {
    let (_pki, _double, mut client) = started().await;
    client
        .create(
            "sslProfile",
            "p1",
            &attrs(json!({"certFile": "/tmp/x.crt", "privateKeyFile": "/tmp/x.key"})),
        )
        .await
        .unwrap();
    let update = |v: serde_json::Value| attrs(v);
    let ok = client
        .update(
            "sslProfile",
            Key::Name("p1"),
            &update(json!({"ordinal": 2})),
        )
        .await
        .unwrap();
    assert_eq!(ok["ordinal"], 2);
    let lower = client
        .update(
            "sslProfile",
            Key::Name("p1"),
            &update(json!({"ordinal": 1})),
        )
        .await
        .unwrap();
    assert_eq!(lower["ordinal"], 1, "a lower ordinal is accepted");
    let refused = |e: MgmtError| match e {
        MgmtError::Refused { code, description } => (code, description),
        other => panic!("not a refusal: {other:?}"),
    };
    let err = client
        .update(
            "sslProfile",
            Key::Name("p1"),
            &update(json!({"oldestValidOrdinal": 5})),
        )
        .await
        .unwrap_err();
    assert_eq!(
        refused(err),
        (
            500,
            "CError: Configuration: ordinal must be >= oldestValidOrdinal (sslProfile 'p1')".into()
        )
    );
    let err = client
        .update(
            "sslProfile",
            Key::Name("p1"),
            &update(json!({"ordinal": -1})),
        )
        .await
        .unwrap_err();
    let negative =
        "CError: Configuration: Negative ordinal field values are invalid (sslProfile 'p1')";
    assert_eq!(refused(err), (500, negative.into()));
    let err = client
        .update(
            "sslProfile",
            Key::Name("p1"),
            &update(json!({"certFile": "/tmp/y.crt"})),
        )
        .await
        .unwrap_err();
    assert_eq!(
        refused(err),
        (500, negative.into()),
        "the refused ordinal stayed"
    );
    let fixed = client
        .update(
            "sslProfile",
            Key::Name("p1"),
            &update(json!({"ordinal": 6, "certFile": "/tmp/z.crt"})),
        )
        .await
        .unwrap();
    assert_eq!(fixed["ordinal"], 6);
    assert_eq!(
        fixed["oldestValidOrdinal"], 5,
        "the refused oldestValidOrdinal stayed too"
    );
}
