//! `memfit audit`'s full-base-image rule on the runtimes beside Node: the size a public page
//! gives for the image and its lighter variant, where one was found, and the Go toolchain
//! shipped as a runtime (issue 15).

mod common;

use common::audit::audit;
use common::*;
use serde_json::Value;

fn base_image_message(dockerfile: &str) -> Option<String> {
    let dir = project(&[("Dockerfile", dockerfile)]);
    let (_, report) = audit(dir.path(), &[]);
    let found: Vec<&Value> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["rule"] == "full-base-image")
        .collect();
    assert!(found.len() <= 1, "{}", report["findings"]);
    found
        .first()
        .map(|f| f["message"].as_str().unwrap().to_string())
}

#[test]
fn python_and_rust_bases_say_the_published_sizes_of_their_lighter_variants() {
    let python = base_image_message(
        "FROM python:3.12 AS build\nCOPY . /src\nRUN pip wheel -w /wheels /src\n\nFROM python:3.12\nCOPY --from=build /wheels /wheels\nCMD [\"python\", \"-m\", \"app\"]\n",
    )
    .expect("python:3.12 shipped");
    assert!(
        python.contains("884 MB") && python.contains("113 MB") && python.contains("2021"),
        "{python}"
    );
    let rust = base_image_message(
        "FROM rust:1.83 AS build\nWORKDIR /src\nCOPY . .\nRUN cargo build --release\n\nFROM rust:1.83\nCOPY --from=build /src/target/release/api /usr/local/bin/api\nCMD [\"api\"]\n",
    )
    .expect("rust:1.83 shipped");
    assert!(
        rust.contains("124 MB") && rust.contains("23 MB") && rust.contains("2022"),
        "{rust}"
    );
}

#[test]
fn a_go_binary_shipped_on_the_golang_image_is_reported_and_distroless_is_not() {
    let go = base_image_message(
        "FROM golang:1.23 AS build\nWORKDIR /src\nCOPY . .\nRUN CGO_ENABLED=0 go build -o /api ./cmd/api\n\nFROM golang:1.23\nCOPY --from=build /api /api\nENTRYPOINT [\"/api\"]\n",
    )
    .expect("golang:1.23 shipped");
    assert!(
        go.contains("Go toolchain") && go.contains("gcr.io/distroless/static-debian12"),
        "{go}"
    );
    assert_eq!(
        base_image_message(
            "FROM golang:1.23 AS build\nWORKDIR /src\nCOPY . .\nRUN CGO_ENABLED=0 go build -o /api ./cmd/api\n\nFROM gcr.io/distroless/static-debian12\nCOPY --from=build /api /api\nENTRYPOINT [\"/api\"]\n",
        ),
        None
    );
}
