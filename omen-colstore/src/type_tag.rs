//! The Arrow types the column store accepts, and how the manifest writes
//! them: a one-byte tag, then the type's parameters as fixed-width fields
//! (a time zone, the one parameter of no fixed width, as a length-prefixed
//! string). The bytes are the crate's own, unlike Arrow's `Display` strings
//! (manifest version 1), which change with Arrow's formatting: arrow 59
//! writes `Timestamp(µs, "UTC")` where earlier ones wrote
//! `Timestamp(Microsecond, Some("UTC"))`.
//!
//! | tag | Arrow type | parameters |
//! |---:|---|---|
//! | 0x01 | `Boolean` | |
//! | 0x02 | `Int8` | |
//! | 0x03 | `Int16` | |
//! | 0x04 | `Int32` | |
//! | 0x05 | `Int64` | |
//! | 0x06 | `UInt8` | |
//! | 0x07 | `UInt16` | |
//! | 0x08 | `UInt32` | |
//! | 0x09 | `UInt64` | |
//! | 0x0A | `Float16` | |
//! | 0x0B | `Float32` | |
//! | 0x0C | `Float64` | |
//! | 0x10 | `Utf8` | |
//! | 0x11 | `LargeUtf8` | |
//! | 0x12 | `Utf8View` | |
//! | 0x13 | `Binary` | |
//! | 0x14 | `LargeBinary` | |
//! | 0x15 | `BinaryView` | |
//! | 0x16 | `FixedSizeBinary(width)` | width: u32, 1 to `i32::MAX` |
//! | 0x20 | `Date32` | |
//! | 0x21 | `Date64` | |
//! | 0x22 | `Time32(unit)` | unit: u8, second or millisecond |
//! | 0x23 | `Time64(unit)` | unit: u8, microsecond or nanosecond |
//! | 0x24 | `Timestamp(unit, None)` | unit: u8 |
//! | 0x25 | `Timestamp(unit, Some(tz))` | unit: u8, tz: str (u32 length, UTF-8) |
//! | 0x26 | `Duration(unit)` | unit: u8 |
//! | 0x30 | `Decimal128(precision, scale)` | precision: u8, 1 to 38; scale: u8, 0 to precision |
//! | 0x31 | `Decimal256(precision, scale)` | precision: u8, 1 to 76; scale: u8, 0 to precision |
//!
//! Units: 0 second, 1 millisecond, 2 microsecond, 3 nanosecond. A tag is
//! never reused for another type; a new type takes a new tag. A type
//! outside the table (nested types, intervals, dictionaries, the 32- and
//! 64-bit decimals) is refused when a table is created. Decimal scales stay
//! within 0 to the precision, as Parquet's DECIMAL requires.

use arrow::datatypes::{DECIMAL128_MAX_PRECISION, DECIMAL256_MAX_PRECISION, DataType, TimeUnit};

use omen_files::codec::{Decoded, Reader, Writer};

const UNITS: [TimeUnit; 4] = [TimeUnit::Second, TimeUnit::Millisecond, TimeUnit::Microsecond, TimeUnit::Nanosecond];

/// The types without parameters, by tag.
const PLAIN: [(u8, DataType); 20] = [
    (0x01, DataType::Boolean),
    (0x02, DataType::Int8),
    (0x03, DataType::Int16),
    (0x04, DataType::Int32),
    (0x05, DataType::Int64),
    (0x06, DataType::UInt8),
    (0x07, DataType::UInt16),
    (0x08, DataType::UInt32),
    (0x09, DataType::UInt64),
    (0x0A, DataType::Float16),
    (0x0B, DataType::Float32),
    (0x0C, DataType::Float64),
    (0x10, DataType::Utf8),
    (0x11, DataType::LargeUtf8),
    (0x12, DataType::Utf8View),
    (0x13, DataType::Binary),
    (0x14, DataType::LargeBinary),
    (0x15, DataType::BinaryView),
    (0x20, DataType::Date32),
    (0x21, DataType::Date64),
];
const FIXED_SIZE_BINARY: u8 = 0x16;
const TIME32: u8 = 0x22;
const TIME64: u8 = 0x23;
const TIMESTAMP: u8 = 0x24;
const TIMESTAMP_TZ: u8 = 0x25;
const DURATION: u8 = 0x26;
const DECIMAL128: u8 = 0x30;
const DECIMAL256: u8 = 0x31;

fn unit_code(unit: TimeUnit) -> u8 {
    match unit {
        TimeUnit::Second => 0,
        TimeUnit::Millisecond => 1,
        TimeUnit::Microsecond => 2,
        TimeUnit::Nanosecond => 3,
    }
}

/// Whether the column store accepts `t`: the types of the tag table with
/// their parameters in range. The reason if not.
pub(crate) fn check(t: &DataType) -> Decoded<()> {
    let decimal = |p: u8, s: i8, max: u8| match (1..=max).contains(&p) && (0..=p as i16).contains(&(s as i16)) {
        true => Ok(()),
        false => Err(format!("{t}: precision must be 1 to {max} and scale 0 to the precision").into()),
    };
    match t {
        t if PLAIN.iter().any(|(_, p)| p == t) => Ok(()),
        DataType::FixedSizeBinary(w) if *w > 0 => Ok(()),
        DataType::Time32(TimeUnit::Second | TimeUnit::Millisecond) => Ok(()),
        DataType::Time64(TimeUnit::Microsecond | TimeUnit::Nanosecond) => Ok(()),
        DataType::Timestamp(..) | DataType::Duration(_) => Ok(()),
        DataType::Decimal128(p, s) => decimal(*p, *s, DECIMAL128_MAX_PRECISION),
        DataType::Decimal256(p, s) => decimal(*p, *s, DECIMAL256_MAX_PRECISION),
        t => Err(format!("type {t} is not one the column store holds").into()),
    }
}

/// Writes `t`'s tag and parameters; a type [`check`] refuses is an error.
pub(crate) fn encode(t: &DataType, w: &mut Writer) -> Decoded<()> {
    check(t)?;
    let with_unit = |w: &mut Writer, tag: u8, unit: TimeUnit| {
        w.u8(tag);
        w.u8(unit_code(unit));
    };
    let decimal = |w: &mut Writer, tag: u8, precision: u8, scale: i8| {
        w.u8(tag);
        w.u8(precision);
        w.u8(scale.unsigned_abs());
    };
    match t {
        DataType::FixedSizeBinary(width) => {
            w.u8(FIXED_SIZE_BINARY);
            w.u32(width.unsigned_abs());
        }
        DataType::Time32(unit) => with_unit(w, TIME32, *unit),
        DataType::Time64(unit) => with_unit(w, TIME64, *unit),
        DataType::Duration(unit) => with_unit(w, DURATION, *unit),
        DataType::Timestamp(unit, None) => with_unit(w, TIMESTAMP, *unit),
        DataType::Timestamp(unit, Some(tz)) => {
            with_unit(w, TIMESTAMP_TZ, *unit);
            w.str32(tz)?;
        }
        DataType::Decimal128(p, s) => decimal(w, DECIMAL128, *p, *s),
        DataType::Decimal256(p, s) => decimal(w, DECIMAL256, *p, *s),
        t => w.u8(PLAIN.iter().find(|(_, p)| p == t).map(|(tag, _)| *tag).ok_or_else(|| format!("type {t} has no tag"))?),
    }
    Ok(())
}

/// Reads a type [`encode`] wrote; an unknown tag, or parameters out of
/// range, is an error.
pub(crate) fn decode(r: &mut Reader<'_>) -> Decoded<DataType> {
    let unit = |r: &mut Reader<'_>| -> Decoded<TimeUnit> {
        let code = r.u8()?;
        UNITS.get(code as usize).copied().ok_or_else(|| format!("unknown time unit {code}").into())
    };
    let decimal = |r: &mut Reader<'_>| -> Decoded<(u8, i8)> {
        let (p, s) = (r.u8()?, r.u8()?);
        Ok((p, i8::try_from(s).map_err(|_| format!("decimal scale {s}"))?))
    };
    let tag = r.u8()?;
    let t = match tag {
        FIXED_SIZE_BINARY => {
            let width = r.u32()?;
            DataType::FixedSizeBinary(i32::try_from(width).map_err(|_| format!("fixed-size binary of {width} bytes"))?)
        }
        TIME32 => DataType::Time32(unit(r)?),
        TIME64 => DataType::Time64(unit(r)?),
        TIMESTAMP => DataType::Timestamp(unit(r)?, None),
        TIMESTAMP_TZ => DataType::Timestamp(unit(r)?, Some(r.str32()?.into())),
        DURATION => DataType::Duration(unit(r)?),
        DECIMAL128 => decimal(r).map(|(p, s)| DataType::Decimal128(p, s))?,
        DECIMAL256 => decimal(r).map(|(p, s)| DataType::Decimal256(p, s))?,
        tag => PLAIN.iter().find(|(t, _)| *t == tag).map(|(_, p)| p.clone()).ok_or_else(|| format!("unknown type tag {tag:#04x}"))?,
    };
    check(&t)?;
    Ok(t)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// One of each tag, with parameters at their edges.
    pub(crate) fn every_type() -> Vec<DataType> {
        let mut out: Vec<DataType> = PLAIN.iter().map(|(_, t)| t.clone()).collect();
        out.extend([DataType::FixedSizeBinary(1), DataType::FixedSizeBinary(i32::MAX)]);
        out.extend([DataType::Time32(TimeUnit::Second), DataType::Time32(TimeUnit::Millisecond)]);
        out.extend([DataType::Time64(TimeUnit::Microsecond), DataType::Time64(TimeUnit::Nanosecond)]);
        for unit in UNITS {
            out.extend([DataType::Timestamp(unit, None), DataType::Timestamp(unit, Some("Europe/Oslo".into())), DataType::Duration(unit)]);
        }
        out.extend([DataType::Timestamp(TimeUnit::Microsecond, Some("".into()))]);
        out.extend([DataType::Decimal128(1, 0), DataType::Decimal128(38, 38), DataType::Decimal256(76, 10)]);
        out
    }

    fn round_trip(t: &DataType) -> Decoded<DataType> {
        let mut w = Writer::framed(b"TYPETAG\0");
        encode(t, &mut w)?;
        let bytes = w.seal();
        let mut r = Reader::unseal(&bytes, b"TYPETAG\0")?;
        let back = decode(&mut r)?;
        r.finish()?;
        Ok(back)
    }

    #[test]
    fn every_accepted_type_round_trips_and_others_are_refused() {
        for t in every_type() {
            assert_eq!(round_trip(&t).as_ref(), Ok(&t));
        }
        for t in [
            DataType::Null,
            DataType::Decimal128(0, 0),
            DataType::Decimal128(39, 0),
            DataType::Decimal128(10, 11),
            DataType::Decimal128(10, -1),
            DataType::Decimal256(77, 0),
            DataType::FixedSizeBinary(0),
            DataType::FixedSizeBinary(-1),
            DataType::Time32(TimeUnit::Microsecond),
            DataType::Time64(TimeUnit::Second),
            DataType::Decimal64(10, 2),
            DataType::new_list(DataType::Int64, true),
            DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
            DataType::Interval(arrow::datatypes::IntervalUnit::DayTime),
        ] {
            assert!(check(&t).is_err(), "{t}");
            assert!(round_trip(&t).is_err(), "{t}");
        }
    }

    #[test]
    fn bad_bytes_are_errors() {
        let decode_all = |bytes: &[u8]| {
            let mut r = Reader::unseal(bytes, b"TYPETAG\0")?;
            decode(&mut r).and_then(|t| r.finish().map(|()| t))
        };
        let framed = |body: &[u8]| {
            let mut w = Writer::framed(b"TYPETAG\0");
            body.iter().for_each(|b| w.u8(*b));
            w.seal()
        };
        for body in [
            &[0x00][..],
            &[0x0D],
            &[0xFF],
            &[TIME32, 2],
            &[TIMESTAMP, 4],
            &[DECIMAL128, 38, 39],
            &[DECIMAL128, 10, 0x80],
            &[DECIMAL256, 77, 0],
            &[FIXED_SIZE_BINARY, 0, 0, 0, 0x80],
            &[TIMESTAMP_TZ, 2, 5, 0, 0, 0, b'U'],
            &[TIMESTAMP_TZ, 2, 1, 0, 0, 0, 0xFF],
            &[0x05, 0x05],
            &[],
        ] {
            assert!(decode_all(&framed(body)).is_err(), "{body:?}");
        }
    }
}
