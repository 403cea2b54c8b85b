//! Quickstart: open a database in a temporary directory, create a table,
//! insert rows in a transaction, run a point query and an aggregate.
//!
//! Run with `cargo run --example quickstart`.

use omendb::arrow::util::pretty::pretty_format_batches;
use omendb::{Database, params};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let db = Database::open(dir.path())?;
    db.execute("CREATE TABLE orders (id BIGINT PRIMARY KEY, region TEXT NOT NULL, amount DOUBLE PRECISION NOT NULL)", params![])?;

    let mut txn = db.begin()?;
    let regions = ["north", "south", "east", "west"];
    for id in 1..=20i64 {
        let region = regions[(id % 4) as usize];
        txn.execute("INSERT INTO orders VALUES ($1, $2, $3)", params![id, region, id as f64 * 12.5])?;
    }
    txn.commit()?;
    db.execute("UPDATE orders SET amount = amount * 2 WHERE region = $1", params!["north"])?;
    db.execute("DELETE FROM orders WHERE id = $1", params![20])?;

    println!("Point query (id = 7):");
    let point = db.query("SELECT * FROM orders WHERE id = $1", params![7])?;
    println!("{}", pretty_format_batches(&point)?);

    println!("Revenue by region:");
    let agg =
        db.query("SELECT region, count(*) AS orders, sum(amount) AS revenue FROM orders GROUP BY region ORDER BY revenue DESC", params![])?;
    println!("{}", pretty_format_batches(&agg)?);

    // The data is on disk: reopen and count.
    db.close()?;
    let db = Database::open(dir.path())?;
    let count = db.query("SELECT count(*) AS orders_after_reopen FROM orders", params![])?;
    println!("{}", pretty_format_batches(&count)?);
    db.close()?;
    Ok(())
}
