//! The example app served end to end: the README's promise.

use std::time::Duration;

use crate::fixture::{app_copy, client, Opts, Server};

#[tokio::test]
async fn the_hello_example_serves_text_json_a_page_static_files_and_echo() {
    let app = app_copy("hello");
    let server = Server::start(app.path(), Opts::default());
    let http = client();

    let root = http.get(server.url("/")).send().await.unwrap();
    assert_eq!(root.status(), 200);
    assert_eq!(root.headers()["content-type"], "text/plain; charset=utf-8");
    assert_eq!(root.text().await.unwrap(), "Hello from capstan!\n");

    let json: serde_json::Value = http
        .get(server.url("/json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(json["message"], "hello");

    let page = http
        .get(server.url("/page"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("<title>Squares</title>") && page.contains("<td>100</td>"),
        "{page}"
    );

    let css = http
        .get(server.url("/static/style.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(css.status(), 200);
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");
    assert_eq!(css.headers()["cache-control"], "public, max-age=2592000");

    let body = vec![b'x'; 3 * 1024 * 1024 + 17];
    let echo = http
        .post(server.url("/echo"))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(echo.status(), 200);
    let expected = sha256_hex(&body);
    assert_eq!(echo.text().await.unwrap().trim(), expected);

    let status = server.stop(Duration::from_secs(30));
    assert!(status.success(), "{status}");
}

fn sha256_hex(bytes: &[u8]) -> String {
    let output = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(bytes)?;
            child.wait_with_output()
        })
        .unwrap();
    String::from_utf8(output.stdout)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}
