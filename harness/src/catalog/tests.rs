use super::*;
use serde_json::json;

#[test]
fn identical_catalogues_have_no_differences() {
    let v = json!({
        "source": "a", "server_version": "15.18",
        "tables": {"t": {"columns": [{"name": "c", "type": "text"}], "constraints": [], "indexes": [], "triggers": []}},
    });
    let mut w = v.clone();
    w["source"] = json!("b");
    w["server_version"] = json!("15.20 (Debian)");
    assert!(diff_catalogs(&v, &w).is_empty());
}

#[test]
fn reports_readable_differences() {
    let e = json!({
        "server_version": "15.18",
        "extensions": [{"name": "pgcrypto", "version": "1.3"}],
        "enums": {"e": ["a", "b"]},
        "tables": {
            "t": {"columns": [{"name": "c", "type": "text"}, {"name": "d", "type": "int"}],
                  "constraints": [{"name": "t_pkey", "type": "primary key", "definition": "PRIMARY KEY (c)"}],
                  "indexes": [], "triggers": []},
            "gone": {"columns": [], "constraints": [], "indexes": [], "triggers": []},
        },
        "sequences": ["s"],
        "functions": [{"name": "f", "arguments": "x text", "returns": "void", "language": "plpgsql"}],
    });
    let a = json!({
        "server_version": "16.1",
        "extensions": [],
        "enums": {"e": ["b", "a"]},
        "tables": {
            "t": {"columns": [{"name": "c", "type": "varchar"}, {"name": "d", "type": "int"}],
                  "constraints": [],
                  "indexes": [{"name": "t_c_idx", "definition": "CREATE INDEX ..."}], "triggers": []},
        },
        "sequences": [],
        "functions": [{"name": "f", "arguments": "x text", "returns": "text", "language": "plpgsql"}],
    });
    let d = diff_catalogs(&e, &a);
    for want in [
        "server major version: 15 != 16",
        "missing extension pgcrypto",
        "enum e: labels [\"a\",\"b\"] != [\"b\",\"a\"]",
        "missing table gone",
        "column t.c: type text != varchar",
        "missing constraint t.t_pkey",
        "extra index t.t_c_idx",
        "missing sequence s",
        "function f(x text): returns void != text",
    ] {
        assert!(d.iter().any(|x| x == want), "{want:?} not in {d:#?}");
    }
}
