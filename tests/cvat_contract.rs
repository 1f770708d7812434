//! CVAT's side of the contract, replayed: what its lambda manager sends to
//! list, get and invoke functions through the Nuclio dashboard API, with every
//! reply validated against CVAT's parsing rules (views.py `LambdaFunction`,
//! `parse_labels`, the UI's interactor and tracker handling).

mod common;

use std::collections::HashSet;

use base64::Engine;
use common::{get, post_with, Reply, Server};
use serde_json::{json, Value};

/// The headers `LambdaGateway` always sends (cvat/apps/lambda_manager/views.py).
fn cvat_headers(function: &str) -> Vec<(&'static str, String)> {
    vec![
        ("Content-Type", "application/json".into()),
        ("x-nuclio-project-name", "cvat".into()),
        ("x-nuclio-function-namespace", "nuclio".into()),
        ("x-nuclio-invoke-via", "domain-name".into()),
        ("X-Nuclio-Invoke-Timeout", "120s".into()),
        ("x-nuclio-function-name", function.into()),
        ("x-nuclio-path", "/".into()),
    ]
}

fn cvat_invoke(server: &Server, function: &str, body: &Value) -> Reply {
    let headers = cvat_headers(function);
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    post_with(
        &server.url("/api/function_invocations"),
        &headers,
        body.to_string().as_bytes(),
    )
}

/// Validates one function object as CVAT's `LambdaFunction.__init__` would;
/// returns the parsed label names.
fn validate_function(key: &str, f: &Value) -> HashSet<String> {
    let name = f["metadata"]["name"].as_str().expect("metadata.name");
    assert_eq!(name, key, "list key and metadata.name differ");
    assert!(
        name.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)),
        "{name}: CVAT's id regex"
    );
    let annotations = f["metadata"]["annotations"]
        .as_object()
        .expect("metadata.annotations must exist");
    for (k, v) in annotations {
        assert!(
            v.is_string(),
            "{name}: annotation {k} must be a string, got {v}"
        );
    }
    let kind = annotations["type"].as_str().expect("type");
    assert!(
        ["detector", "interactor", "tracker", "reid"].contains(&kind),
        "{name}: type {kind}"
    );
    let description = f["spec"]["description"]
        .as_str()
        .expect("spec.description is required by CVAT");
    assert!(!description.is_empty());
    assert!(f["spec"]["runtime"].as_str().is_some_and(|r| !r.is_empty()));
    assert_eq!(f["status"]["state"], "ready");
    assert!(f["status"]["httpPort"].as_u64().is_some());
    for flag in ["startswith_box", "startswith_box_optional", "animated_gif"] {
        if let Some(v) = annotations.get(flag) {
            assert_ne!(
                v, "false",
                "{name}: CVAT parses {flag} with bool(): omit false values"
            );
        }
    }
    if kind == "interactor" {
        let version: i64 = annotations
            .get("version")
            .and_then(|v| v.as_str())
            .unwrap_or("1")
            .parse()
            .expect("int version");
        assert!(
            version >= 2,
            "{name}: CVAT disables interactors with version < 2"
        );
        for k in ["min_pos_points", "min_neg_points"] {
            if let Some(v) = annotations.get(k) {
                v.as_str().expect("string").parse::<i64>().expect("int");
            }
        }
    }
    let spec: Value = serde_json::from_str(
        annotations
            .get("spec")
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
            .unwrap_or("[]"),
    )
    .expect("spec annotation parses as JSON");
    let mut names = HashSet::new();
    for label in spec.as_array().expect("spec is a list") {
        let label_name = label["name"].as_str().expect("label name").to_owned();
        assert!(
            names.insert(label_name.clone()),
            "{name}: duplicate label {label_name}"
        );
        if let Some(attributes) = label.get("attributes") {
            let mut seen = HashSet::new();
            for a in attributes.as_array().expect("attributes list") {
                for k in ["name", "input_type", "values"] {
                    assert!(
                        a.get(k).is_some(),
                        "{name}/{label_name}: attribute lacks {k}"
                    );
                }
                assert!(seen.insert(a["name"].as_str().expect("attr name").to_owned()));
            }
        }
    }
    names
}

fn b64(path: &std::path::Path) -> String {
    base64::engine::general_purpose::STANDARD.encode(std::fs::read(path).expect("read image"))
}

#[test]
fn single_detector_is_listed_got_and_invoked_like_nuclio() {
    let Some(shared) = require_shared!() else {
        return;
    };
    let config = format!("{}/function-cpu.yaml", env!("CARGO_MANIFEST_DIR"));
    let model = shared.join("models/yolo11n-coco-640.onnx");
    let server = Server::start(&[
        "--model",
        model.to_str().expect("path"),
        "--function-config",
        &config,
    ]);

    let list = get(&server.url("/api/functions"));
    assert_eq!(list.status, 200);
    let list = list.json();
    let functions = list
        .as_object()
        .expect("CVAT iterates data.values(): an object");
    assert_eq!(functions.len(), 1);
    let (name, function) = functions.iter().next().expect("one function");
    let labels = validate_function(name, function);
    assert_eq!(labels.len(), 80);
    assert_eq!(function["metadata"]["annotations"]["type"], "detector");

    let one = get(&server.url(&format!("/api/functions/{name}")));
    assert_eq!(one.status, 200);
    assert_eq!(one.json(), *function);
    let missing = get(&server.url("/api/functions/not-deployed"));
    assert_eq!(missing.status, 404);
    assert!(missing.json()["error"]
        .as_str()
        .unwrap_or("")
        .contains("not-deployed"));

    let reply = cvat_invoke(
        &server,
        name,
        &json!({"image": b64(&shared.join("images/coffee.jpg")), "threshold": 0.25}),
    );
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let shapes = reply.json();
    let shapes = shapes.as_array().expect("detector reply is a list");
    assert!(!shapes.is_empty());
    for s in shapes {
        assert!(
            labels.contains(s["label"].as_str().expect("label")),
            "label not in the spec: {s}"
        );
        assert_eq!(s["type"], "rectangle");
        assert_eq!(s["points"].as_array().expect("points").len(), 4);
    }

    // What CVAT users hit when names or headers are wrong.
    let unknown = cvat_invoke(&server, "yolo-typo", &json!({"image": ""}));
    assert_eq!(unknown.status, 404);
    assert!(unknown.json()["error"]
        .as_str()
        .unwrap_or("")
        .contains("yolo-typo"));
    let headerless = post_with(
        &server.url("/api/function_invocations"),
        &[("Content-Type", "application/json")],
        b"{}",
    );
    assert_eq!(headerless.status, 400);
    assert!(headerless.json()["error"]
        .as_str()
        .unwrap_or("")
        .contains("x-nuclio-function-name"));
    let timeout = {
        let mut headers = cvat_headers(name);
        headers.retain(|(k, _)| *k != "X-Nuclio-Invoke-Timeout");
        headers.push(("X-Nuclio-Invoke-Timeout", "1ms".into()));
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        post_with(
            &server.url("/api/function_invocations"),
            &headers,
            json!({"image": b64(&shared.join("images/scene-4k.jpg"))})
                .to_string()
                .as_bytes(),
        )
    };
    assert_eq!(timeout.status, 504);

    // No deploy, delete or build through this server.
    for (method, path) in [
        ("POST", "/api/functions"),
        ("DELETE", "/api/functions/x"),
        ("GET", "/api/projects"),
        ("POST", "/api/function_builds"),
        ("PUT", "/api/function_invocations"),
        ("PATCH", "/functions/x"),
        ("POST", "/__internal/health"),
    ] {
        let r = common::agent().run(
            ureq::http::Request::builder()
                .method(method)
                .uri(server.url(path))
                .body(())
                .expect("request"),
        );
        let (status, body) = r
            .map(|mut r| {
                let body = r.body_mut().read_to_string().unwrap_or_default();
                (r.status().as_u16(), body)
            })
            .unwrap_or((0, String::new()));
        assert!(status == 404 || status == 405, "{method} {path}: {status}");
        // CVAT shows the error text: every refusal is the JSON of the error table.
        let json: serde_json::Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("{method} {path}: body {body:?} is not JSON: {e}"));
        assert!(
            json["error"].as_str().is_some_and(|e| e.contains(path)) && json["kind"].is_string(),
            "{method} {path}: {json}"
        );
    }
}

/// One process serving a detector, both SAM modes (sharing one encoder) and
/// the tracker: CVAT lists all four and invokes each through the dashboard API.
#[test]
fn multi_function_process_serves_every_kind_to_cvat() {
    let Some(shared) = require_shared!() else {
        return;
    };
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sam");
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("functions.yaml");
    std::fs::write(
        &config,
        format!(
            r#"functions:
  - name: yolo11n-detector
    kind: detector
    model: {model}
    description: YOLO11n on ONNX Runtime
    annotations: {{name: "YOLO11n"}}
    options: {{threshold: 0.3}}
  - name: pth-facebookresearch-sam-vit-h
    kind: interactor
    encoder: {encoder}
  - name: sam-server
    kind: interactor
    encoder: {encoder}
    decoder: {decoder}
  - name: tracker
    kind: tracker
"#,
            model = shared.join("models/yolo11n-coco-640.onnx").display(),
            encoder = fixtures.join("encoder.onnx").display(),
            decoder = fixtures.join("decoder.onnx").display(),
        ),
    )
    .expect("write functions.yaml");
    let server = Server::start(&["--functions", config.to_str().expect("path")]);

    let list = get(&server.url("/api/functions")).json();
    let functions = list.as_object().expect("object");
    let mut kinds: Vec<(&str, &str)> = functions
        .iter()
        .map(|(name, f)| {
            validate_function(name, f);
            (
                name.as_str(),
                f["metadata"]["annotations"]["type"].as_str().expect("type"),
            )
        })
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        vec![
            ("pth-facebookresearch-sam-vit-h", "interactor"),
            ("sam-server", "interactor"),
            ("tracker", "tracker"),
            ("yolo11n-detector", "detector"),
        ]
    );
    assert_eq!(
        functions["yolo11n-detector"]["metadata"]["annotations"]["name"],
        "YOLO11n"
    );
    let ready = get(&server.health_url("/ready")).json();
    assert_eq!(ready["functions"].as_array().expect("functions").len(), 4);
    // Three model files (YOLO, SAM encoder, SAM decoder): the shared encoder is loaded once.
    let metrics = String::from_utf8(get(&server.metrics_url()).body).expect("utf8");
    assert!(metrics.contains("nuclio_ort_models_loaded 3"), "{metrics}");
    // With several functions, POST / has no default: the reply says where to go.
    assert_eq!(common::post(&server.url("/"), b"{}").status, 404);

    let image = b64(&shared.join("images/chelsea.jpg"));
    let detections = cvat_invoke(&server, "yolo11n-detector", &json!({"image": image}));
    assert_eq!(detections.status, 200);
    assert_eq!(detections.json()[0]["label"], "cat");

    let blob = cvat_invoke(
        &server,
        "pth-facebookresearch-sam-vit-h",
        &json!({"image": image, "pos_points": [[200.0, 150.0]], "neg_points": [], "obj_bbox": null}),
    );
    assert_eq!(blob.status, 200, "{}", String::from_utf8_lossy(&blob.body));
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(blob.json()["blob"].as_str().expect("blob"))
        .expect("base64");
    assert_eq!(bytes.len(), 4 * 256 * 64 * 64);

    let mask = cvat_invoke(
        &server,
        "sam-server",
        &json!({"image": image, "pos_points": [[200.0, 150.0]], "neg_points": [], "obj_bbox": null}),
    );
    assert_eq!(mask.status, 200, "{}", String::from_utf8_lossy(&mask.body));
    let mask = mask.json();
    let rows = mask["mask"].as_array().expect("mask rows");
    let bounds: Vec<f64> = mask["bounds"]
        .as_array()
        .expect("bounds")
        .iter()
        .map(|v| v.as_f64().expect("number"))
        .collect();
    assert_eq!(
        rows.len() as f64,
        bounds[3] - bounds[1] + 1.0,
        "mask rows cover the inclusive bounds"
    );
    assert_eq!(
        rows[0].as_array().expect("row").len() as f64,
        bounds[2] - bounds[0] + 1.0
    );
    assert!(mask["points"].as_array().expect("points").len() >= 3);

    let init = cvat_invoke(
        &server,
        "tracker",
        &json!({"image": image, "shapes": [[95.0, 30.0, 375.0, 290.0]], "states": []}),
    );
    assert_eq!(init.status, 200, "{}", String::from_utf8_lossy(&init.body));
    let init = init.json();
    assert_eq!(init["shapes"], json!([[95.0, 30.0, 375.0, 290.0]]));
    let step = cvat_invoke(
        &server,
        "tracker",
        &json!({"image": image, "shapes": init["shapes"], "states": init["states"]}),
    );
    assert_eq!(step.status, 200);
    assert_eq!(step.json()["shapes"].as_array().expect("shapes").len(), 1);
}
