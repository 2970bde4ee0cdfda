//! `kontiki_idl::breaking`: a table of contract changes, each classified as breaking at the
//! wire level, at the source level only, or safe, and asserted.

use kontiki_idl::breaking::{self, Level, Side};

const BASE: &str = r#"package shop;

/// Not found.
error NOT_FOUND = "not found" [status = 404];
/// Conflict.
error CONFLICT = "conflict" [status = 409];

/// An order id.
type OrderId = string;

/// What callers send.
struct NewOrder {
    /// Item.
    item: string,
    /// Quantity.
    qty: i32,
    /// Note.
    note: string?,
}

/// What the service returns.
struct Order {
    /// Id.
    id: OrderId,
    /// Item.
    item: string,
    /// Quantity.
    qty: i32,
    /// Status.
    status: Status,
}

/// Order status (returned).
enum Status {
    /// Open.
    open,
    /// Closed.
    closed = "CLOSED",
}

/// A filter callers send.
enum Filter {
    /// All.
    all,
    /// Mine.
    mine,
}

/// Payload of `order.placed`.
struct Placed {
    /// Id.
    id: OrderId,
    /// Count.
    count: i32,
}

/// An order was placed.
event order.placed: Placed;
/// An order was shipped.
event order.shipped: Placed;

/// The shop.
service Shop {
    name = "shop";
    version = "1.0.0";
    /// Tenant.
    header tenant: string;

    /// Places an order.
    rpc place(order: NewOrder, priority: i32, tag: string = "none") -> Order raises CONFLICT;
    /// Finds one.
    rpc find(id: OrderId) -> Order? raises NOT_FOUND;
    /// Counts.
    rpc count(filter: Filter) -> i32;
    /// Pings.
    rpc ping();

    emits order.placed, order.shipped;

    /// Handles placed orders.
    on_event on_placed(order.placed) [max_attempts = 3];
    /// Every replica.
    on_event on_shipped(order.shipped) [broadcast];

    /// Gets an order.
    http get_order GET "/orders/{id}" (id: string) query (verbose: bool = false) -> Order raises NOT_FOUND [version = "v1"];

    /// Cleans up.
    task cleanup every 60s;
}
"#;

/// How a change is classified: the most severe finding, or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Wire,
    Source,
    Safe,
}

fn apply(edits: &[(&str, &str)]) -> String {
    let mut text = BASE.to_owned();
    for (from, to) in edits {
        assert!(text.contains(from), "edit target not in the base: {from:?}");
        text = text.replacen(from, to, 1);
    }
    text
}

fn classify(new_text: &str) -> (Class, Vec<breaking::Change>, kontiki_idl::SourceMap) {
    let (old, old_src) =
        kontiki_idl::load_str_with_sources("old/shop.kontiki", BASE, &[]).expect("the base checks");
    let (new, new_src) = kontiki_idl::load_str_with_sources("shop.kontiki", new_text, &[])
        .unwrap_or_else(|e| panic!("the changed contract checks:\n{e}"));
    let changes = breaking::compare(
        Side {
            model: &old,
            sources: &old_src,
        },
        Side {
            model: &new,
            sources: &new_src,
        },
    );
    let class = match changes.iter().map(|c| c.level).max() {
        Some(Level::Wire) => Class::Wire,
        Some(Level::Source) => Class::Source,
        None => Class::Safe,
    };
    (class, changes, new_src)
}

/// (what, edits to BASE, expected class, a word the top finding's message must contain)
#[allow(clippy::type_complexity)]
const TABLE: &[(&str, &[(&str, &str)], Class, &str)] = &[
    // --- wire ---
    (
        "rpc removed",
        &[(
            "    /// Counts.\n    rpc count(filter: Filter) -> i32;\n",
            "",
        )],
        Class::Wire,
        "rpc `count` removed",
    ),
    (
        "rpc renamed",
        &[("rpc count(", "rpc tally(")],
        Class::Wire,
        "rpc `count` removed",
    ),
    (
        "parameter removed",
        &[(
            "(order: NewOrder, priority: i32, tag",
            "(order: NewOrder, tag",
        )],
        Class::Wire,
        "removed",
    ),
    (
        "parameter added without default",
        &[("rpc find(id: OrderId)", "rpc find(id: OrderId, shard: i32)")],
        Class::Wire,
        "without a default",
    ),
    (
        "parameter retyped",
        &[("rpc count(filter: Filter)", "rpc count(filter: i32)")],
        Class::Wire,
        "type of parameter",
    ),
    (
        "parameters swapped",
        &[(
            "(order: NewOrder, priority: i32, tag",
            "(priority: i32, order: NewOrder, tag",
        )],
        Class::Wire,
        "moved",
    ),
    (
        "parameter renamed",
        &[("rpc find(id: OrderId)", "rpc find(order_id: OrderId)")],
        Class::Wire,
        "renamed",
    ),
    (
        "defaulted parameter inserted in the middle",
        &[(
            "(order: NewOrder, priority: i32,",
            "(order: NewOrder, rush: bool = false, priority: i32,",
        )],
        Class::Wire,
        "inserted",
    ),
    (
        "parameter loses its default",
        &[("tag: string = \"none\"", "tag: string")],
        Class::Wire,
        "now required",
    ),
    (
        "return type changed",
        &[(
            "rpc count(filter: Filter) -> i32",
            "rpc count(filter: Filter) -> string",
        )],
        Class::Wire,
        "return type",
    ),
    (
        "return made optional",
        &[("-> Order raises CONFLICT", "-> Order? raises CONFLICT")],
        Class::Wire,
        "return type",
    ),
    (
        "return widened i32 to i64",
        &[(
            "rpc count(filter: Filter) -> i32",
            "rpc count(filter: Filter) -> i64",
        )],
        Class::Wire,
        "return type",
    ),
    (
        "required field added to an input struct",
        &[(
            "    /// Note.\n    note: string?,\n",
            "    /// Note.\n    note: string?,\n    /// Address.\n    address: string,\n",
        )],
        Class::Wire,
        "required field `address` added",
    ),
    (
        "required field removed from an output struct",
        &[("    /// Status.\n    status: Status,\n", "")],
        Class::Wire,
        "required field `status` removed",
    ),
    (
        "event payload field retyped",
        &[(
            "    /// Count.\n    count: i32,",
            "    /// Count.\n    count: i64,",
        )],
        Class::Wire,
        "field `Placed.count`",
    ),
    (
        "event payload type changed",
        &[(
            "event order.shipped: Placed;",
            "event order.shipped: Order;",
        )],
        Class::Wire,
        "payload of event",
    ),
    (
        "error code removed",
        &[
            (
                "/// Conflict.\nerror CONFLICT = \"conflict\" [status = 409];\n",
                "",
            ),
            (" raises CONFLICT;", ";"),
        ],
        Class::Wire,
        "error code `CONFLICT` removed",
    ),
    (
        "error code dropped from raises",
        &[("-> Order? raises NOT_FOUND;", "-> Order?;")],
        Class::Wire,
        "no longer raises",
    ),
    (
        "event removed",
        &[
            (
                "/// An order was shipped.\nevent order.shipped: Placed;\n",
                "",
            ),
            ("emits order.placed, order.shipped;", "emits order.placed;"),
            (
                "    /// Every replica.\n    on_event on_shipped(order.shipped) [broadcast];\n",
                "",
            ),
        ],
        Class::Wire,
        "event `order.shipped` removed",
    ),
    (
        "stops emitting an event",
        &[("emits order.placed, order.shipped;", "emits order.placed;")],
        Class::Wire,
        "no longer emits",
    ),
    (
        "competing handler becomes broadcast",
        &[(
            "on_event on_placed(order.placed) [max_attempts = 3];",
            "on_event on_placed(order.placed) [broadcast];",
        )],
        Class::Wire,
        "mode of event handler",
    ),
    (
        "broadcast handler becomes in_session",
        &[("[broadcast];", "[in_session];")],
        Class::Wire,
        "mode of event handler",
    ),
    (
        "max_attempts changed",
        &[("[max_attempts = 3]", "[max_attempts = 5]")],
        Class::Wire,
        "max_attempts",
    ),
    (
        "handler removed",
        &[(
            "    /// Handles placed orders.\n    on_event on_placed(order.placed) [max_attempts = 3];\n",
            "",
        )],
        Class::Wire,
        "event handler `on_placed` removed",
    ),
    (
        "service wire name changed",
        &[("name = \"shop\";", "name = \"store\";")],
        Class::Wire,
        "wire name",
    ),
    (
        "service removed",
        &[(
            "service Shop {\n    name = \"shop\";",
            "service Other {\n    name = \"other\";",
        )],
        Class::Wire,
        "service `Shop` (`shop`) removed",
    ),
    (
        "http route path changed",
        &[("GET \"/orders/{id}\"", "GET \"/order/{id}\"")],
        Class::Wire,
        "moved",
    ),
    (
        "http success status changed",
        &[("[version = \"v1\"];", "[version = \"v1\", status = 202];")],
        Class::Wire,
        "success status",
    ),
    (
        "required query parameter added",
        &[(
            "query (verbose: bool = false)",
            "query (verbose: bool = false, page: i32)",
        )],
        Class::Wire,
        "required query parameter",
    ),
    (
        "variant added to a returned enum",
        &[(
            "    closed = \"CLOSED\",\n}",
            "    closed = \"CLOSED\",\n    /// Lost.\n    lost,\n}",
        )],
        Class::Wire,
        "variant `lost` added",
    ),
    (
        "variant removed from a sent enum",
        &[("    /// Mine.\n    mine,\n", "")],
        Class::Wire,
        "variant `mine`",
    ),
    (
        "variant wire string changed",
        &[("closed = \"CLOSED\"", "closed = \"closed\"")],
        Class::Wire,
        "variant `closed`",
    ),
    (
        "alias retyped narrower",
        &[("type OrderId = string;", "type OrderId = uuid;")],
        Class::Wire,
        "type alias `OrderId`",
    ),
    (
        "optional field made required in an input",
        &[("    note: string?,", "    note: string,")],
        Class::Wire,
        "note",
    ),
    (
        "alias to string becomes an enum callers send",
        &[(
            "/// An order id.\ntype OrderId = string;",
            "/// An order id.\nenum OrderId {\n    /// A.\n    a,\n}",
        )],
        Class::Wire,
        "changed from type alias to enum",
    ),
    (
        "returned enum becomes a string alias",
        &[(
            "/// Order status (returned).\nenum Status {\n    /// Open.\n    open,\n    /// Closed.\n    closed = \"CLOSED\",\n}",
            "/// Order status (returned).\ntype Status = string;",
        )],
        Class::Wire,
        "changed from enum to type alias",
    ),
    (
        "rpc starts returning a value",
        &[("rpc ping();", "rpc ping() -> string;")],
        Class::Wire,
        "return type of rpc `ping`",
    ),
    (
        "rpc stops returning a required value",
        &[(
            "rpc count(filter: Filter) -> i32;",
            "rpc count(filter: Filter);",
        )],
        Class::Wire,
        "return type of rpc `count`",
    ),
    // --- source only ---
    (
        "rpc added",
        &[(
            "    emits order.placed",
            "    /// New.\n    rpc cancel(id: OrderId);\n\n    emits order.placed",
        )],
        Class::Source,
        "rpc `cancel` added",
    ),
    (
        "defaulted parameter added at the end",
        &[(
            "rpc find(id: OrderId)",
            "rpc find(id: OrderId, shard: i32 = 0)",
        )],
        Class::Source,
        "parameter `shard` added",
    ),
    (
        "optional parameter added at the end",
        &[(
            "rpc count(filter: Filter)",
            "rpc count(filter: Filter, since: string?)",
        )],
        Class::Source,
        "parameter `since` added",
    ),
    (
        "parameter widened i32 to i64",
        &[("priority: i32,", "priority: i64,")],
        Class::Source,
        "type of parameter `priority`",
    ),
    (
        "parameter made optional",
        &[("priority: i32,", "priority: i32?,")],
        Class::Source,
        "type of parameter `priority`",
    ),
    (
        "return narrowed from optional",
        &[(
            "rpc find(id: OrderId) -> Order?",
            "rpc find(id: OrderId) -> Order",
        )],
        Class::Source,
        "return type",
    ),
    (
        "error code added to raises",
        &[(
            "rpc count(filter: Filter) -> i32;",
            "rpc count(filter: Filter) -> i32 raises NOT_FOUND;",
        )],
        Class::Source,
        "now raises",
    ),
    (
        "optional field added to an input struct",
        &[(
            "    note: string?,\n",
            "    note: string?,\n    /// Gift.\n    gift: bool = false,\n",
        )],
        Class::Source,
        "field `gift` added",
    ),
    (
        "optional field added to an output struct",
        &[(
            "    status: Status,\n",
            "    status: Status,\n    /// Eta.\n    eta: string?,\n",
        )],
        Class::Source,
        "field `eta` added",
    ),
    (
        "variant added to a sent enum",
        &[(
            "    /// Mine.\n    mine,\n",
            "    /// Mine.\n    mine,\n    /// Theirs.\n    theirs,\n",
        )],
        Class::Source,
        "variant `theirs` added",
    ),
    (
        "variant renamed, wire string kept",
        &[("    closed = \"CLOSED\",", "    shut = \"CLOSED\",")],
        Class::Source,
        "variant `closed` removed",
    ),
    (
        "service identifier renamed",
        &[("service Shop {", "service Store {")],
        Class::Source,
        "renamed",
    ),
    (
        "handler renamed",
        &[("on_event on_placed(", "on_event handle_placed(")],
        Class::Source,
        "renamed",
    ),
    (
        "task added",
        &[(
            "    task cleanup every 60s;",
            "    task cleanup every 60s;\n    /// More.\n    task sweep every 10s;",
        )],
        Class::Source,
        "task `sweep` added",
    ),
    (
        "task removed",
        &[("    /// Cleans up.\n    task cleanup every 60s;\n", "")],
        Class::Source,
        "task `cleanup` removed",
    ),
    (
        "include_headers added to an rpc",
        &[(
            "rpc count(filter: Filter) -> i32;",
            "rpc count(filter: Filter) -> i32 [include_headers];",
        )],
        Class::Source,
        "include_headers",
    ),
    (
        "header declaration removed",
        &[("    /// Tenant.\n    header tenant: string;\n", "")],
        Class::Source,
        "header `tenant`",
    ),
    (
        "optional query parameter added",
        &[(
            "query (verbose: bool = false)",
            "query (verbose: bool = false, page: i32?)",
        )],
        Class::Source,
        "query parameter `page` added",
    ),
    (
        "struct renamed, same fields",
        &[
            ("struct NewOrder {", "struct OrderRequest {"),
            ("order: NewOrder,", "order: OrderRequest,"),
        ],
        Class::Source,
        "type `NewOrder` removed",
    ),
    (
        "package renamed",
        &[("package shop;", "package store;")],
        Class::Source,
        "package `shop` renamed",
    ),
    (
        "sent enum becomes a string alias",
        &[(
            "/// A filter callers send.\nenum Filter {\n    /// All.\n    all,\n    /// Mine.\n    mine,\n}",
            "/// A filter callers send.\ntype Filter = string;",
        )],
        Class::Source,
        "changed from enum to type alias",
    ),
    (
        "parameter of an optional alias type added at the end",
        &[
            (
                "/// What callers send.",
                "/// Maybe text.\ntype MaybeText = string?;\n\n/// What callers send.",
            ),
            (
                "rpc count(filter: Filter)",
                "rpc count(filter: Filter, note: MaybeText)",
            ),
        ],
        Class::Source,
        "parameter `note` added",
    ),
    (
        "rpc stops returning an optional value",
        &[(
            "rpc find(id: OrderId) -> Order? raises",
            "rpc find(id: OrderId) raises",
        )],
        Class::Source,
        "return type of rpc `find`",
    ),
    // --- safe ---
    (
        "docs changed",
        &[(
            "/// Places an order.",
            "/// Places an order, now with more words.",
        )],
        Class::Safe,
        "",
    ),
    (
        "error message changed",
        &[(
            "error NOT_FOUND = \"not found\"",
            "error NOT_FOUND = \"no such order\"",
        )],
        Class::Safe,
        "",
    ),
    (
        "service version bumped",
        &[("version = \"1.0.0\";", "version = \"2.0.0\";")],
        Class::Safe,
        "",
    ),
    (
        "task schedule changed",
        &[("task cleanup every 60s;", "task cleanup every 120s;")],
        Class::Safe,
        "",
    ),
    (
        "rpc timeout added",
        &[(
            "rpc count(filter: Filter) -> i32;",
            "rpc count(filter: Filter) -> i32 [timeout = 30];",
        )],
        Class::Safe,
        "",
    ),
    (
        "new event and emits added",
        &[
            (
                "/// An order was shipped.",
                "/// Cancelled.\nevent order.cancelled: Placed;\n/// An order was shipped.",
            ),
            (
                "emits order.placed, order.shipped;",
                "emits order.placed, order.shipped, order.cancelled;",
            ),
        ],
        Class::Safe,
        "",
    ),
    (
        "new error code declared",
        &[(
            "/// Conflict.",
            "/// Gone.\nerror GONE = \"gone\";\n/// Conflict.",
        )],
        Class::Safe,
        "",
    ),
    (
        "struct fields reordered",
        &[(
            "    /// Item.\n    item: string,\n    /// Quantity.\n    qty: i32,\n    /// Note.",
            "    /// Quantity.\n    qty: i32,\n    /// Item.\n    item: string,\n    /// Note.",
        )],
        Class::Safe,
        "",
    ),
    (
        "new struct declared",
        &[(
            "/// What callers send.",
            "/// Unused yet.\nstruct Later {\n    /// X.\n    x: i32,\n}\n\n/// What callers send.",
        )],
        Class::Safe,
        "",
    ),
    (
        "path parameter renamed",
        &[(
            "GET \"/orders/{id}\" (id: string)",
            "GET \"/orders/{key}\" (key: string)",
        )],
        Class::Safe,
        "",
    ),
    (
        "http version changed",
        &[("[version = \"v1\"];", "[version = \"v2\"];")],
        Class::Safe,
        "",
    ),
    (
        "alias replaced by its target",
        &[("rpc find(id: OrderId)", "rpc find(id: string)")],
        Class::Safe,
        "",
    ),
    (
        "formatting only",
        &[(
            "rpc count(filter: Filter) -> i32;",
            "rpc count( filter : Filter )->i32 ;",
        )],
        Class::Safe,
        "",
    ),
];

#[test]
fn every_change_of_the_table_is_classified() {
    assert!(TABLE.len() >= 30);
    let mut failures = Vec::new();
    for (what, edits, want, word) in TABLE {
        let text = apply(edits);
        let (got, changes, sources) = classify(&text);
        let shown: Vec<String> = changes
            .iter()
            .map(|c| {
                format!(
                    "[{}] {} ({})",
                    c.level.as_str(),
                    c.message,
                    sources.location(c.span)
                )
            })
            .collect();
        if got != *want {
            failures.push(format!(
                "{what}: expected {want:?}, got {got:?}: {shown:#?}"
            ));
            continue;
        }
        if !word.is_empty() {
            let top = changes
                .iter()
                .filter(|c| Some(c.level) == changes.iter().map(|c| c.level).max())
                .any(|c| c.message.contains(word));
            if !top {
                failures.push(format!(
                    "{what}: no top finding mentions {word:?}: {shown:#?}"
                ));
            }
        }
        for c in &changes {
            let (line, col) = sources.line_col(c.span);
            assert!(line >= 1 && col >= 1, "{what}: finding without a place");
            assert!(!c.why.is_empty() && !c.instead.is_empty(), "{what}: {c:?}");
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows wrong:\n{}",
        failures.len(),
        TABLE.len(),
        failures.join("\n")
    );
}

#[test]
fn the_table_covers_every_class() {
    for class in [Class::Wire, Class::Source, Class::Safe] {
        assert!(
            TABLE.iter().filter(|r| r.2 == class).count() >= 10,
            "{class:?}"
        );
    }
}

#[test]
fn a_contract_against_itself_has_no_change() {
    for entry in std::fs::read_dir("../idl").unwrap() {
        let path = entry.unwrap().path();
        let (m, s) = kontiki_idl::load_with_sources(&path, &[]).unwrap();
        let side = Side {
            model: &m,
            sources: &s,
        };
        assert_eq!(breaking::compare(side, side), vec![], "{}", path.display());
    }
}

#[test]
fn findings_point_at_the_change() {
    let text = apply(&[("rpc find(id: OrderId)", "rpc find(id: OrderId, shard: i32)")]);
    let (_, changes, sources) = classify(&text);
    assert_eq!(changes.len(), 1, "{changes:#?}");
    let c = &changes[0];
    assert_eq!(sources.location(c.span), "shop.kontiki:72:27");
    assert_eq!(sources.slice(c.span), "shard");
    assert_eq!(
        c.message,
        "parameter `shard` added to rpc `find` without a default"
    );
}

#[test]
fn report_renders_with_the_old_place() {
    let text = apply(&[("rpc count(filter: Filter)", "rpc count(filter: i32)")]);
    let (old, old_src) = kontiki_idl::load_str_with_sources("old/shop.kontiki", BASE, &[]).unwrap();
    let (new, new_src) = kontiki_idl::load_str_with_sources("shop.kontiki", &text, &[]).unwrap();
    let changes = breaking::compare(
        Side {
            model: &old,
            sources: &old_src,
        },
        Side {
            model: &new,
            sources: &new_src,
        },
    );
    let report = breaking::report(&changes, &old_src, &new_src, Level::Source);
    let rendered = report.render();
    assert!(rendered.contains("kontiki::breaking::wire"), "{rendered}");
    assert!(rendered.contains("shop.kontiki:74:15]"), "{rendered}");
    assert!(
        rendered.contains("old version at old/shop.kontiki:74:15"),
        "{rendered}"
    );
    let json = report.to_json();
    assert_eq!(json[0].code, "kontiki::breaking::wire");
    assert_eq!(json[0].file.as_deref(), Some("shop.kontiki"));
    // With `fail = Wire`, source-only findings are warnings.
    let text = apply(&[("priority: i32,", "priority: i64,")]);
    let (new, new_src) = kontiki_idl::load_str_with_sources("shop.kontiki", &text, &[]).unwrap();
    let changes = breaking::compare(
        Side {
            model: &old,
            sources: &old_src,
        },
        Side {
            model: &new,
            sources: &new_src,
        },
    );
    let report = breaking::report(&changes, &old_src, &new_src, Level::Wire);
    assert!(
        report
            .diagnostics()
            .iter()
            .all(|d| d.severity == kontiki_idl::Severity::Warning)
    );
}

/// Events and error codes are global on the wire: moving one into an imported file is safe.
#[test]
fn an_event_or_error_moved_to_an_import_is_not_removed() {
    let dir = std::env::temp_dir().join(format!("kontiki-breaking-test-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("old")).unwrap();
    std::fs::create_dir_all(dir.join("new")).unwrap();
    let old = "package a;\n\n/// E.\nerror GONE = \"gone\";\n\n/// P.\nstruct P {\n    /// X.\n    x: i32,\n}\n\n/// Ev.\nevent thing.done: P;\n\n/// S.\nservice S {\n    /// R.\n    rpc r() raises GONE;\n\n    emits thing.done;\n}\n";
    let common = "package common;\n\n/// E.\nerror GONE = \"gone\";\n\n/// P.\nstruct P {\n    /// X.\n    x: i32,\n}\n\n/// Ev.\nevent thing.done: P;\n";
    let new = "package a;\n\nimport \"common.kontiki\";\n\n/// S.\nservice S {\n    /// R.\n    rpc r() raises common.GONE;\n\n    emits thing.done;\n}\n";
    std::fs::write(dir.join("old/a.kontiki"), old).unwrap();
    std::fs::write(dir.join("new/a.kontiki"), new).unwrap();
    std::fs::write(dir.join("new/common.kontiki"), common).unwrap();
    let (om, os) = kontiki_idl::load_with_sources(dir.join("old/a.kontiki"), &[]).unwrap();
    let (nm, ns) = kontiki_idl::load_with_sources(dir.join("new/a.kontiki"), &[]).unwrap();
    let changes = breaking::compare(
        Side {
            model: &om,
            sources: &os,
        },
        Side {
            model: &nm,
            sources: &ns,
        },
    );
    let _ = std::fs::remove_dir_all(&dir);
    // The struct `a.P` is now `common.P`: Rust paths change (source), the wire does not.
    let levels: Vec<(Level, &str)> = changes
        .iter()
        .map(|c| (c.level, c.message.as_str()))
        .collect();
    assert_eq!(
        levels,
        [
            (Level::Source, "type `P` removed"),
            (
                Level::Source,
                "payload of event `thing.done` changed from `a.P` to `common.P`"
            )
        ],
        "{changes:#?}"
    );
}

/// Every contract of idl/ against every other: unrelated versions exercise every kind of
/// finding; none may panic, and each finding points into the new file with a reason.
#[test]
fn every_idl_contract_against_every_other() {
    let mut loaded = Vec::new();
    for entry in std::fs::read_dir("../idl").unwrap() {
        let path = entry.unwrap().path();
        loaded.push((
            path.clone(),
            kontiki_idl::load_with_sources(&path, &[]).unwrap(),
        ));
    }
    let mut total = 0;
    for (old_path, (om, os)) in &loaded {
        for (new_path, (nm, ns)) in &loaded {
            let changes = breaking::compare(
                Side {
                    model: om,
                    sources: os,
                },
                Side {
                    model: nm,
                    sources: ns,
                },
            );
            if old_path != new_path {
                assert!(
                    !changes.is_empty(),
                    "{} -> {}",
                    old_path.display(),
                    new_path.display()
                );
            }
            for c in &changes {
                let file = ns.get(c.span.file).expect("a span in the new files");
                assert!(c.span.end as usize <= file.text.len());
                assert!(!c.why.is_empty() && !c.instead.is_empty());
                if let Some(old) = c.old_span {
                    assert!(old.end as usize <= os.get(old.file).unwrap().text.len());
                }
            }
            let report = breaking::report(&changes, os, ns, Level::Source);
            assert_eq!(report.to_json().len(), changes.len());
            total += changes.len();
        }
    }
    assert!(total > 100, "{total}");
}
