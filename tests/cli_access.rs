//! `renda credential` and `renda audit` through the real binary: a token is printed once and
//! stored only hashed, revoking ends it, and bad input names the field and writes nothing.

mod common;

use common::{Node, XIUZHOU};

#[test]
fn credentials_are_created_listed_and_revoked() {
    let node = Node::init(XIUZHOU, "秀洲区人大常委会");
    let token = node.ok(&[
        "credential",
        "add",
        "--name",
        "代表工委 张三",
        "--role",
        "clerk",
    ]);
    let token = token.trim();
    assert!(token.starts_with("renda_") && token.len() == 70, "{token}");
    let db = std::fs::read(node.db()).unwrap();
    assert!(
        !String::from_utf8_lossy(&db).contains(&token["renda_".len()..]),
        "the token is not in the database"
    );
    node.ok(&["credential", "add", "--name", "领导", "--role", "查看"]);

    let table = node.ok(&["credential", "list"]);
    assert!(table.contains("代表工委 张三") && table.contains("办理") && table.contains("有效"));
    let listed = node.json(&["credential", "list"]);
    assert_eq!(listed.as_array().unwrap().len(), 2);
    assert_eq!(listed[1]["role"], "viewer");

    let out = node.ok(&["credential", "revoke", "领导"]);
    assert!(out.contains("已吊销"), "{out}");
    let listed = node.json(&["credential", "list"]);
    assert!(listed[1]["revoked_at"].is_string(), "{listed}");
    assert!(listed[0]["revoked_at"].is_null());
}

#[test]
fn bad_credential_commands_name_the_field_and_write_nothing() {
    let node = Node::init(XIUZHOU, "秀洲区人大常委会");
    let err = node.fails(
        &["credential", "add", "--name", "张三", "--role", "root"],
        2,
    );
    assert!(err.contains("role") && err.contains("root"), "{err}");
    let err = node.fails(
        &["credential", "add", "--name", "  ", "--role", "viewer"],
        2,
    );
    assert!(err.contains("name"), "{err}");
    node.ok(&["credential", "add", "--name", "张三", "--role", "viewer"]);
    let err = node.fails(
        &["credential", "add", "--name", "张三", "--role", "admin"],
        2,
    );
    assert!(err.contains("name") && err.contains("张三"), "{err}");
    let err = node.fails(&["credential", "revoke", "李四"], 2);
    assert!(err.contains("没有"), "{err}");
    let listed = node.json(&["credential", "list"]);
    assert_eq!(
        listed.as_array().unwrap().len(),
        1,
        "nothing partly written"
    );
    assert_eq!(listed[0]["role"], "viewer");
}

#[test]
fn the_audit_log_starts_empty() {
    let node = Node::init(XIUZHOU, "秀洲区人大常委会");
    assert!(node.ok(&["audit"]).contains("没有拒收记录"));
    assert_eq!(node.json(&["audit"]), serde_json::json!([]));
}
