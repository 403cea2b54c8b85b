//! Random and mutated SQL never panics, never kills a statement's task
//! (which would surface as `Closed`) and never reports an internal error:
//! every input gets a result or a clear error, and the database still works.

use omendb::{Database, Error, params};
use proptest::prelude::*;

const SEEDS: &[&str] = &[
    "SELECT k, v FROM t WHERE k = 1",
    "SELECT v * 2, upper(s) FROM t WHERE k = $1 AND v > 3",
    "INSERT INTO t VALUES (5, 6, 'x')",
    "UPDATE t SET v = v + 1 WHERE k = 2",
    "DELETE FROM t WHERE s IS NULL",
    "SELECT s, count(*) FROM t GROUP BY s HAVING count(*) > 1 ORDER BY 1 LIMIT 3",
    "SELECT a.k FROM t a JOIN t b ON a.k = b.v WHERE a.v IN (SELECT v FROM t)",
    "WITH c AS (SELECT k FROM t) SELECT sum(k) OVER (ORDER BY k) FROM c",
    "CREATE TABLE u (a INT PRIMARY KEY, b TEXT DEFAULT 'd')",
    "SELECT CAST(s AS INT), 1 / 0, NULLIF(k, 2) FROM t",
];

const TOKENS: &[&str] = &[
    "SELECT",
    "FROM",
    "WHERE",
    "(",
    ")",
    ",",
    "NULL",
    "$1",
    "$0",
    "$99",
    "1e309",
    "''",
    "'",
    "::",
    "CAST",
    "AS",
    "*",
    "-",
    "9223372036854775808",
    "ORDER BY",
    "GROUP BY",
    "JOIN",
    "t",
    "k",
    ";",
    "BEGIN",
    "COMMIT",
    "DROP TABLE t",
    "\u{0}",
    "é",
];

fn mutated() -> impl Strategy<Value = String> {
    let edit = (0usize..3, any::<prop::sample::Index>(), any::<prop::sample::Index>(), 0usize..TOKENS.len());
    (0..SEEDS.len(), proptest::collection::vec(edit, 0..4)).prop_map(|(seed, edits)| {
        let mut words: Vec<String> = SEEDS[seed].split(' ').map(str::to_owned).collect();
        for (op, at, other, token) in edits {
            let i = at.index(words.len().max(1));
            match op {
                0 if !words.is_empty() => {
                    let last = words.len() - 1;
                    words.remove(i.min(last));
                }
                1 => words.insert(i.min(words.len()), TOKENS[token].to_owned()),
                _ if !words.is_empty() => {
                    let (j, last) = (other.index(words.len()), words.len() - 1);
                    words.swap(i.min(last), j);
                }
                _ => {}
            }
        }
        words.join(" ")
    })
}

fn check(db: &Database, sql: &str) {
    let mut conn = db.connect().unwrap();
    for params in [&[][..], &[&7i64 as &dyn omendb::ToValue][..]] {
        match conn.run(sql, params) {
            Ok(_) => {}
            Err(e @ (Error::Closed | Error::Internal(_))) => panic!("{sql:?}: {e}"),
            Err(_) => {}
        }
        // Whatever happened, leave no transaction open for the next input.
        let _ = conn.run("ROLLBACK", params![]);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn mutated_sql_gets_an_answer_or_a_clear_error(sql in mutated(), noise in "\\PC{0,40}") {
        let db = Database::open_in_memory().unwrap();
        db.execute("CREATE TABLE t (k BIGINT PRIMARY KEY, v INT, s TEXT)", params![]).unwrap();
        db.execute("INSERT INTO t VALUES (1, 2, 'a'), (2, 3, NULL), (3, 1, '7')", params![]).unwrap();
        check(&db, &sql);
        check(&db, &noise);
        // Still works.
        prop_assert!(db.execute("SELECT * FROM t WHERE k = 1", params![]).is_ok());
    }
}
