//! The version-1 trace fixture (written by a script from the documented byte layout, not by this crate) must
//! keep reading back as these accesses, and the writer must keep producing its exact bytes.

use omen_tier::trace::{TraceReader, TraceWriter};
use omen_tier::{Access, AccessKind};

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/trace-v1.trace");

fn expected() -> Vec<Access> {
    let scan = |i: u32, segment: u64, bytes: u64, time_us: u64| Access {
        id: (segment << 16) | 2,
        bytes,
        kind: AccessKind::Scan,
        statement: 1,
        time_us,
        scan_position: Some((i, 3)),
    };
    vec![
        scan(0, 7, 65_536, 1_000),
        scan(1, 8, 70_000, 1_100),
        scan(2, 9, 61_000, 1_250),
        Access { id: 42, bytes: 4_096, kind: AccessKind::Point, statement: 2, time_us: 2_000, scan_position: None },
        Access { id: u64::MAX, bytes: 1 << 40, kind: AccessKind::Prefetch, statement: 0, time_us: 2_500, scan_position: None },
    ]
}

#[test]
fn version_1_fixture_reads_back() {
    let read = TraceReader::open(FIXTURE).unwrap().read_all().unwrap();
    assert_eq!(read, expected());
}

#[test]
fn writer_reproduces_the_fixture_bytes() {
    let mut w = TraceWriter::new(Vec::new()).unwrap();
    for a in expected() {
        w.write(&a).unwrap();
    }
    assert_eq!(w.finish().unwrap(), std::fs::read(FIXTURE).unwrap());
}
