//! RETURNING and ON CONFLICT through the facade, with `$n` parameters and
//! prepared statements (the SQL shapes are in `tests/slt/upsert.slt`).

use omendb::{Database, Output, params};

use crate::{rows, strs};

#[test]
fn prepared_upsert_with_parameters_returns_what_it_wrote() {
    let db = Database::open_in_memory().unwrap();
    db.execute("CREATE TABLE stock (sku TEXT PRIMARY KEY, qty INT NOT NULL, note TEXT)", params![]).unwrap();
    let mut conn = db.connect().unwrap();
    let upsert = db
        .prepare(
            "INSERT INTO stock VALUES ($1, $2, $3) ON CONFLICT (sku) DO UPDATE SET qty = stock.qty + excluded.qty, note = $3 \
             WHERE stock.qty + excluded.qty >= $4 RETURNING sku, qty, note",
        )
        .unwrap();
    assert!(!upsert.is_fast_path());
    let mut run = |sku: &str, qty: i32, note: &str, floor: i32| match conn.run_prepared(&upsert, params![sku, qty, note, floor]).unwrap() {
        Output::Rows { tag, batches, .. } => {
            assert_eq!(tag, "INSERT");
            rows(&batches)
        }
        other => panic!("no rows: {other:?}"),
    };
    assert_eq!(run("a", 5, "new", 0), strs(&[&["a", "5", "new"]]));
    assert_eq!(run("a", 3, "more", 0), strs(&[&["a", "8", "more"]]));
    // The WHERE of DO UPDATE refuses: nothing written, nothing returned.
    assert_eq!(run("a", -7, "less", 5), Vec::<Vec<String>>::new());
    assert_eq!(run("b", 1, "other", 100), strs(&[&["b", "1", "other"]]));
    assert_eq!(crate::q(&db, "SELECT sku, qty, note FROM stock ORDER BY sku"), strs(&[&["a", "8", "more"], &["b", "1", "other"]]));

    // RETURNING counts as the statement's rows.
    assert_eq!(db.execute("UPDATE stock SET qty = qty * $1 RETURNING qty", params![2]).unwrap(), 2);
    assert_eq!(db.execute("DELETE FROM stock WHERE qty > $1 RETURNING sku", params![10]).unwrap(), 1);
}
