use super::*;
use crate::input::parse_file;

fn decode_text(text: &str) -> (Vec<InputResource>, Vec<Problem>) {
    let parsed = parse_file("input/resources/r.yaml", text.as_bytes());
    let mut problems = parsed.problems;
    let resources = parsed
        .documents
        .iter()
        .filter_map(|d| decode(d, &mut problems))
        .collect();
    (resources, problems)
}

const LISTENER: &str = "apiVersion: skupper.io/v2alpha1
kind: Listener
metadata:
  name: backend
spec:
  routingKey: backend
  host: 0.0.0.0
  port: eighty
";

#[test]
fn wrong_type_keeps_the_resource_with_its_raw_spec() {
    let (rs, ps) = decode_text(LISTENER);
    assert_eq!(rs.len(), 1);
    assert!(rs[0].spec.is_none());
    assert_eq!(rs[0].raw_spec()["port"], "eighty");
    assert_eq!(ps.len(), 1);
    assert_eq!(
        ps[0].message,
        "spec.port: invalid type: string \"eighty\", expected an integer at line 8 column 9"
    );
    assert_eq!((ps[0].line, ps[0].column), (Some(8), Some(9)));
    assert_eq!(ps[0].name.as_deref(), Some("backend"));
}

#[test]
fn unknown_field_is_an_error() {
    let text = LISTENER.replace("port: eighty", "port: 8080\n  bogus: 1");
    let (rs, ps) = decode_text(&text);
    assert!(rs[0].spec.is_none());
    assert!(
        ps[0].message.starts_with("spec: unknown field `bogus`"),
        "{}",
        ps[0].message
    );
}

#[test]
fn kubectl_metadata_is_accepted() {
    let text = LISTENER
        .replace("port: eighty", "port: 8080")
        .replace("  name: backend", "  name: backend\n  uid: abc\n  resourceVersion: \"7\"\n  generation: 3\n  labels: {app: x}");
    let (rs, ps) = decode_text(&text);
    assert!(ps.is_empty(), "{ps:?}");
    assert_eq!(rs[0].labels["app"], "x");
}

#[test]
fn other_kinds_are_classified() {
    let text = "apiVersion: skupper.io/v2alpha1\nkind: AccessGrant\nmetadata: {name: g}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n---\napiVersion: skupper.io/v2alpha1\nkind: MultiKeyListener\nmetadata: {name: l}\n---\nmetadata: {name: x}\n";
    let (rs, ps) = decode_text(text);
    assert!(rs.is_empty());
    let msgs: Vec<_> = ps
        .iter()
        .map(|p| (p.severity, p.message.as_str()))
        .collect();
    use crate::problem::Severity::*;
    assert_eq!(
        msgs,
        [
            (
                Warning,
                "accessgrant \"g\": not supported on local sites, ignored"
            ),
            (Warning, "unknown kind \"Deployment\" (apps/v1), ignored"),
            (
                Warning,
                "configmap \"c\": ignored (skupperd does not use ConfigMaps)"
            ),
            (
                Warning,
                "multikeylistener \"l\": not yet supported by this version of skupperd, ignored"
            ),
            (
                Error,
                "document has no kind; every resource needs apiVersion and kind"
            ),
        ]
    );
}

#[test]
fn input_status_is_ignored_with_a_warning() {
    let text = LISTENER.replace("port: eighty", "port: 8080\nstatus:\n  status: Ready");
    let (rs, ps) = decode_text(&text);
    assert!(rs[0].spec.is_some());
    assert_eq!(
        ps[0].message,
        "listener \"backend\": status in input is ignored"
    );
}

#[test]
fn the_input_hash_follows_the_spec_only() {
    let a = decode_text(&LISTENER.replace("port: eighty", "port: 8080")).0;
    let b = decode_text(
        &LISTENER
            .replace("port: eighty", "port: 8080")
            .replace("  name: backend", "  name: backend\n  labels: {a: b}"),
    )
    .0;
    let c = decode_text(&LISTENER.replace("port: eighty", "port: 8081")).0;
    assert_eq!(a[0].input_sha256, b[0].input_sha256);
    assert_ne!(a[0].input_sha256, c[0].input_sha256);
}

mod no_panic {
    use super::*;
    use proptest::prelude::*;

    fn yamlish() -> impl Strategy<Value = String> {
        let atoms = prop::sample::select(vec![
            "apiVersion: skupper.io/v2alpha1\n",
            "kind: Listener\n",
            "kind: Site\n",
            "metadata:\n",
            "  name: a\n",
            "spec:\n",
            "  port: 99999999999999999999\n",
            "  host: [\n",
            "---\n",
            "  settings: {observer: 1}\n",
            "&a [*a]\n",
            "? [a]\n: b\n",
            "\t",
            "- - -\n",
            "'",
            "\"\\u\"\n",
            "%YAML 1.2\n",
            "!!binary x\n",
            "  routingKey: ~\n",
            "...\n",
        ]);
        prop::collection::vec(atoms, 0..24).prop_map(|v| v.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            let parsed = parse_file("f.yaml", &bytes);
            let mut problems = parsed.problems.clone();
            for d in &parsed.documents {
                let _ = decode(d, &mut problems);
            }
        }

        #[test]
        fn yaml_like_input_never_panics(text in yamlish()) {
            let parsed = parse_file("f.yaml", text.as_bytes());
            let mut problems = parsed.problems.clone();
            for d in &parsed.documents {
                let _ = decode(d, &mut problems);
            }
        }
    }
}

#[test]
fn a_spec_written_as_it_serializes_is_kept_once_and_given_back_as_written() {
    let plain = LISTENER.replace("eighty", "8080");
    let (rs, _) = decode_text(&plain);
    assert!(rs[0].spec.is_some());
    assert_eq!(rs[0].written_spec, None);
    assert_eq!(
        *rs[0].raw_spec(),
        serde_json::json!({"routingKey": "backend", "host": "0.0.0.0", "port": 8080})
    );

    // A spec that says more than its typed form (an empty map the typed
    // form leaves out) keeps what was written.
    let (rs, _) = decode_text(&format!("{plain}  settings: {{}}\n"));
    assert!(rs[0].spec.is_some());
    let written = serde_json::json!(
        {"routingKey": "backend", "host": "0.0.0.0", "port": 8080, "settings": {}}
    );
    assert_eq!(rs[0].written_spec.as_ref(), Some(&written));
    assert_eq!(*rs[0].raw_spec(), written);
}

#[test]
fn sha256_hex_is_the_lower_case_digest() {
    assert_eq!(
        sha256_hex(b""),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    assert_eq!(
        sha256_hex(b"abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}

#[test]
fn a_spec_written_as_a_list_is_refused_not_read_field_by_field() {
    for (spec, what) in [
        ("[key, 127.0.0.1, 9000]", "sequence"),
        ("[]", "sequence"),
        ("backend", "string \"backend\""),
    ] {
        let text = format!(
            "apiVersion: skupper.io/v2alpha1\nkind: Listener\nmetadata:\n  name: l\nspec: {spec}\n"
        );
        let (rs, ps) = decode_text(&text);
        assert!(rs[0].spec.is_none(), "{spec}");
        assert_eq!(
            ps[0].message,
            format!("spec: invalid type: {what}, expected struct ListenerSpec at line 5 column 7"),
        );
    }
    let (rs, ps) = decode_text(
        "apiVersion: skupper.io/v2alpha1\nkind: Site\nmetadata: {name: west}\nspec:\n  settings: {}\n---\napiVersion: skupper.io/v2alpha1\nkind: Site\nmetadata: [west]\n",
    );
    assert!(rs[0].spec.is_some(), "{ps:?}");
    assert_eq!(ps.len(), 1);
    assert_eq!(ps[0].message, "site: metadata.name is required");
}
