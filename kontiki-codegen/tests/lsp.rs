//! `kontiki-codegen lsp`, driven over stdio with real JSON-RPC messages as an editor sends
//! them: initialize, didOpen with an error, didChange, definition, hover, document symbols,
//! formatting, shutdown and exit.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

use serde_json::{Value, json};

struct Client {
    child: Child,
    stdin: ChildStdin,
    rx: Receiver<Value>,
    next_id: i64,
}

impl Client {
    fn start(dir: &std::path::Path) -> Client {
        let mut child = Command::new(env!("CARGO_BIN_EXE_kontiki-codegen"))
            .arg("lsp")
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            loop {
                let mut len = None;
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let line = line.trim_end();
                    if line.is_empty() {
                        break;
                    }
                    if let Some(n) = line.strip_prefix("Content-Length: ") {
                        len = n.parse::<usize>().ok();
                    }
                }
                let mut body = vec![0; len.expect("a Content-Length header")];
                r.read_exact(&mut body).unwrap();
                if tx.send(serde_json::from_slice(&body).unwrap()).is_err() {
                    return;
                }
            }
        });
        Client {
            child,
            stdin,
            rx,
            next_id: 0,
        }
    }

    fn send(&mut self, msg: &Value) {
        let body = serde_json::to_string(msg).unwrap();
        write!(self.stdin, "Content-Length: {}\r\n\r\n{body}", body.len()).unwrap();
        self.stdin.flush().unwrap();
    }

    fn notify(&mut self, method: &str, params: Value) {
        self.send(&json!({"jsonrpc": "2.0", "method": method, "params": params}));
    }

    /// Sends a request and returns its result (other messages before it are skipped).
    fn request(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        loop {
            let msg = self.recv();
            if msg["id"] == json!(id) {
                assert!(msg.get("error").is_none(), "{method}: {msg}");
                return msg["result"].clone();
            }
        }
    }

    /// The next notification with this method.
    fn expect_notification(&mut self, method: &str) -> Value {
        loop {
            let msg = self.recv();
            if msg["method"] == method {
                return msg["params"].clone();
            }
        }
    }

    fn recv(&self) -> Value {
        self.rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the server answers within 30 s")
    }
}

const COMMON: &str = "package common;\n\n/// A point shared by every service.\nstruct Point {\n    /// X.\n    x: i32,\n}\n";

const BROKEN: &str = "package main;\n\nimport \"common.kontiki\";\n\n/// Api.\nservice Api {\n    /// Gets.\n    rpc get(p: common.Pointt) -> Local;\n}\n";

const VALID: &str = "package main;\n\nimport \"common.kontiki\";\n\n/// A local type.\nstruct Local {\n    /// Y.\n    y: string,\n}\n\n/// Api.\nservice Api {\n    /// Gets.\n    rpc get(p: common.Point) -> Local;\n}\n";

fn pos(line: u32, character: u32) -> Value {
    json!({"line": line, "character": character})
}

#[test]
fn lsp_session_over_stdio() {
    let dir = tempfile::tempdir().unwrap();
    let d = std::fs::canonicalize(dir.path()).unwrap();
    std::fs::write(d.join("common.kontiki"), COMMON).unwrap();
    std::fs::write(d.join("main.kontiki"), BROKEN).unwrap();
    let uri = format!("file://{}/main.kontiki", d.display());
    let common_uri = format!("file://{}/common.kontiki", d.display());
    let doc = json!({"uri": uri});

    let mut c = Client::start(&d);
    let init = c.request(
        "initialize",
        json!({"processId": null, "rootUri": null, "capabilities": {}}),
    );
    let caps = &init["capabilities"];
    assert_eq!(caps["textDocumentSync"], 1, "{init}");
    for cap in [
        "definitionProvider",
        "hoverProvider",
        "documentSymbolProvider",
        "documentFormattingProvider",
    ] {
        assert_eq!(caps[cap], true, "{cap}: {init}");
    }
    c.notify("initialized", json!({}));

    // An unknown type: one diagnostic on `common.Pointt` (line 8, columns 15..28, 0-based 7).
    c.notify(
        "textDocument/didOpen",
        json!({"textDocument": {"uri": uri, "languageId": "kontiki", "version": 1, "text": BROKEN}}),
    );
    let diags = c.expect_notification("textDocument/publishDiagnostics");
    assert_eq!(diags["uri"], uri);
    assert_eq!(diags["version"], 1);
    let list = diags["diagnostics"].as_array().unwrap();
    let unknown: Vec<&Value> = list
        .iter()
        .filter(|d| d["code"] == "kontiki::idl::unknown_type")
        .collect();
    assert_eq!(unknown.len(), 2, "{diags:#}");
    assert_eq!(
        unknown[0]["range"],
        json!({"start": pos(7, 15), "end": pos(7, 28)}),
        "{diags:#}"
    );
    assert_eq!(unknown[0]["severity"], 1);
    assert!(
        unknown[0]["message"]
            .as_str()
            .unwrap()
            .contains("unknown type")
    );

    // Fixed as you type: the diagnostics are cleared.
    c.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": uri, "version": 2}, "contentChanges": [{"text": VALID}]}),
    );
    let diags = c.expect_notification("textDocument/publishDiagnostics");
    assert_eq!(diags["version"], 2);
    assert_eq!(diags["diagnostics"], json!([]), "{diags:#}");

    // Definition of an imported type: `Point` in `common.kontiki` (line 4, col 8 -> 3, 7).
    let def = c.request(
        "textDocument/definition",
        json!({"textDocument": doc, "position": pos(13, 22)}),
    );
    assert_eq!(def["uri"], common_uri, "{def}");
    assert_eq!(def["range"], json!({"start": pos(3, 7), "end": pos(3, 12)}));
    // Of a local type, and of the import itself.
    let def = c.request(
        "textDocument/definition",
        json!({"textDocument": doc, "position": pos(13, 34)}),
    );
    assert_eq!(def["uri"], uri, "{def}");
    assert_eq!(def["range"], json!({"start": pos(5, 7), "end": pos(5, 12)}));
    let def = c.request(
        "textDocument/definition",
        json!({"textDocument": doc, "position": pos(2, 10)}),
    );
    assert_eq!(def["uri"], common_uri, "{def}");

    // Hover: the declaration line and its docs.
    let hover = c.request(
        "textDocument/hover",
        json!({"textDocument": doc, "position": pos(13, 22)}),
    );
    assert_eq!(hover["contents"]["kind"], "markdown");
    assert_eq!(
        hover["contents"]["value"],
        "```kontiki\nstruct Point {\n```\n\nA point shared by every service."
    );
    assert_eq!(
        hover["range"],
        json!({"start": pos(13, 15), "end": pos(13, 27)})
    );
    // On a member: its own line and docs.
    let hover = c.request(
        "textDocument/hover",
        json!({"textDocument": doc, "position": pos(13, 9)}),
    );
    assert_eq!(
        hover["contents"]["value"],
        "```kontiki\nrpc get(p: common.Point) -> Local;\n```\n\nGets."
    );
    let hover = c.request(
        "textDocument/hover",
        json!({"textDocument": doc, "position": pos(7, 4)}),
    );
    assert_eq!(
        hover["contents"]["value"],
        "```kontiki\ny: string\n```\n\nY."
    );
    let hover = c.request(
        "textDocument/hover",
        json!({"textDocument": doc, "position": pos(0, 0)}),
    );
    assert_eq!(hover, Value::Null);

    // Document symbols, nested.
    let symbols = c.request("textDocument/documentSymbol", json!({"textDocument": doc}));
    let names: Vec<&str> = symbols
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Local", "Api"]);
    assert_eq!(symbols[0]["kind"], 23); // Struct
    assert_eq!(symbols[0]["children"][0]["name"], "y");
    assert_eq!(symbols[1]["children"][0]["name"], "get");
    assert_eq!(symbols[1]["children"][0]["kind"], 6); // Method

    // Formatting goes through `fmt`.
    let messy = "package main;\n/// A.\nstruct A{x:i32}\n";
    c.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": uri, "version": 3}, "contentChanges": [{"text": messy}]}),
    );
    // It checks, so the lint rules run: `A` is never used.
    let diags = c.expect_notification("textDocument/publishDiagnostics");
    assert_eq!(
        diags["diagnostics"],
        json!([{
            "range": {"start": pos(2, 7), "end": pos(2, 8)},
            "severity": 2,
            "code": "kontiki::lint::unused-type",
            "source": "kontiki",
            "message": "type `A` is never used in this file\nhelp: remove it, or `// kontiki:allow(unused-type)` if other contracts import it"
        }]),
        "{diags:#}"
    );
    let edits = c.request(
        "textDocument/formatting",
        json!({"textDocument": doc, "options": {"tabSize": 4, "insertSpaces": true}}),
    );
    assert_eq!(
        edits,
        json!([{
            "range": {"start": pos(0, 0), "end": pos(3, 0)},
            "newText": "package main;\n/// A.\nstruct A {\n    x: i32,\n}\n"
        }])
    );

    // Shutdown, exit: the process ends with 0.
    assert_eq!(c.request("shutdown", Value::Null), Value::Null);
    c.notify("exit", Value::Null);
    let status = c.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}
