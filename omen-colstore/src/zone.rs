//! Zone maps: each segment's minimum, maximum and null count per column,
//! and the predicates a scan gives to skip segments that cannot hold a
//! matching row.
//!
//! A zone map covers every row version in the segment, visible or not, so
//! it can only be wider than the rows a snapshot sees: skipping stays safe.
//! Pruning is by segment only: rows of a segment that is scanned are not
//! filtered by the predicates (the caller filters; DataFusion does, the
//! pushdown being inexact). Minimum and maximum are kept for the types
//! with a natural order: integers, floats (NaN sorts above every number,
//! as in Arrow's kernels), decimals, dates, timestamps, booleans, strings
//! and binary; other types only get null counts.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BooleanArray, Datum, PrimitiveArray, Scalar, StringArray, downcast_primitive_array,
};
use arrow::compute::kernels::aggregate;
use arrow::compute::kernels::cmp;
use arrow::datatypes::DataType;

use crate::error::{Error, Result};

/// One column's zone: `min`/`max` as one-element arrays of the column's
/// type (`None` when every value is null, the type has no order here or
/// the bounds are unknown). Bounds are outer bounds: exact for segments
/// built in memory, from Parquet's statistics for reopened ones (long
/// strings shortened outward).
#[derive(Debug, Clone)]
pub struct Zone {
    /// The least non-null value.
    pub min: Option<ArrayRef>,
    /// The greatest non-null value.
    pub max: Option<ArrayRef>,
    /// Null values.
    pub null_count: usize,
    /// Rows (versions) the zone covers.
    pub rows: usize,
}

impl Zone {
    /// Bytes the zone holds in memory.
    pub(crate) fn bytes(&self) -> usize {
        let bound = |b: &Option<ArrayRef>| b.as_ref().map_or(0, |a| a.get_array_memory_size());
        std::mem::size_of::<Self>() + bound(&self.min) + bound(&self.max)
    }

    /// The zone of `array`.
    pub fn of(array: &dyn Array) -> Self {
        let (min, max) = min_max(array).unzip();
        Self { min, max, null_count: array.null_count(), rows: array.len() }
    }

    /// The zone of a column of `rows` rows from a Parquet file's row
    /// group statistics (`mins`, `maxes` and `nulls`, one per group), if
    /// they can serve: `None` when null counts are missing. Bounds are
    /// left unknown (no pruning by value) when a group's are missing, are
    /// of another type, or the column is floating point: Parquet leaves
    /// NaN out of its bounds, while here NaN sorts above every number.
    /// Parquet truncates long strings' bounds to a lower and an upper one,
    /// which serve as such.
    pub(crate) fn from_statistics(
        data_type: &DataType,
        mins: &dyn Array,
        maxes: &dyn Array,
        nulls: &arrow::array::UInt64Array,
        rows: usize,
    ) -> Option<Zone> {
        if nulls.null_count() > 0 {
            return None;
        }
        let null_count = nulls.values().iter().sum::<u64>() as usize;
        let usable = |a: &dyn Array| a.data_type() == data_type && a.null_count() == 0 && !a.is_empty();
        let float = matches!(data_type, DataType::Float16 | DataType::Float32 | DataType::Float64);
        let (min, max) = match null_count < rows && !float && usable(mins) && usable(maxes) {
            true => (min_max(mins).map(|(lo, _)| lo), min_max(maxes).map(|(_, hi)| hi)),
            false => (None, None),
        };
        Some(Zone { min, max, null_count, rows })
    }

    /// The zone covering both.
    pub fn union(&self, other: &Zone) -> Zone {
        let pick = |a: &Option<ArrayRef>, b: &Option<ArrayRef>, want_less: bool| match (a, b) {
            (Some(a), Some(b)) => {
                let a_less = cmp::lt(a, b).map(|r| r.value(0)).unwrap_or(false);
                Some(if a_less == want_less { Arc::clone(a) } else { Arc::clone(b) })
            }
            (Some(x), None) | (None, Some(x)) => Some(Arc::clone(x)),
            (None, None) => None,
        };
        // Both sides must have known bounds for the union to have them
        // (a side with values but no order makes the bounds unknown).
        let known = |z: &Zone| z.min.is_some() || z.null_count == z.rows;
        let bounded = known(self) && known(other);
        Zone {
            min: pick(&self.min, &other.min, true).filter(|_| bounded),
            max: pick(&self.max, &other.max, false).filter(|_| bounded),
            null_count: self.null_count + other.null_count,
            rows: self.rows + other.rows,
        }
    }

    fn all_null(&self) -> bool {
        self.null_count == self.rows
    }
}

/// The least and greatest non-null values of `array`, if it has an order
/// here and a non-null value.
fn min_max(array: &dyn Array) -> Option<(ArrayRef, ArrayRef)> {
    fn one<T: arrow::datatypes::ArrowPrimitiveType>(v: T::Native, of: &PrimitiveArray<T>) -> ArrayRef {
        Arc::new(PrimitiveArray::<T>::from_iter_values([v]).with_data_type(of.data_type().clone()))
    }
    if array.null_count() == array.len() {
        return None;
    }
    Some(downcast_primitive_array!(
        array => (one(aggregate::min(array)?, array), one(aggregate::max(array)?, array)),
        DataType::Utf8 => {
            let a = array.as_string::<i32>();
            let (lo, hi) = (aggregate::min_string(a)?, aggregate::max_string(a)?);
            (Arc::new(StringArray::from(vec![lo])) as ArrayRef, Arc::new(StringArray::from(vec![hi])) as ArrayRef)
        }
        DataType::Binary => {
            let a = array.as_binary::<i32>();
            let (lo, hi) = (aggregate::min_binary(a)?, aggregate::max_binary(a)?);
            (Arc::new(BinaryArray::from(vec![lo])) as ArrayRef, Arc::new(BinaryArray::from(vec![hi])) as ArrayRef)
        }
        DataType::Boolean => {
            let a = array.as_boolean();
            let (lo, hi) = (aggregate::min_boolean(a)?, aggregate::max_boolean(a)?);
            (Arc::new(BooleanArray::from(vec![lo])) as ArrayRef, Arc::new(BooleanArray::from(vec![hi])) as ArrayRef)
        }
        _ => return None,
    ))
}

/// A comparison with a literal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    /// `=`
    Eq,
    /// `<`
    Lt,
    /// `<=`
    LtEq,
    /// `>`
    Gt,
    /// `>=`
    GtEq,
}

/// What a [`Predicate`] asks of its column. Literals are arrays of the
/// column's type: one element each, any number for [`Test::In`].
#[derive(Debug, Clone)]
pub enum Test {
    /// `column op literal`.
    Cmp(CmpOp, ArrayRef),
    /// `column BETWEEN low AND high` (both included).
    Between(ArrayRef, ArrayRef),
    /// `column IN (values)`.
    In(ArrayRef),
    /// `column IS NULL`.
    IsNull,
    /// `column IS NOT NULL`.
    IsNotNull,
}

/// A condition on one column that a scan may use to skip segments (see
/// the module docs: rows of scanned segments are not filtered).
#[derive(Debug, Clone)]
pub struct Predicate {
    /// The column's index in the table's schema.
    pub column: usize,
    /// The condition.
    pub test: Test,
}

impl Predicate {
    /// Checks the literals against the column's type (`types`: the table's
    /// column types).
    pub(crate) fn validate(&self, types: &[DataType]) -> Result<()> {
        let ty = types.get(self.column).ok_or_else(|| Error::Schema(format!("predicate on column {} of {}", self.column, types.len())))?;
        let literals: Vec<&ArrayRef> = match &self.test {
            Test::Cmp(_, v) => vec![v],
            Test::Between(lo, hi) => vec![lo, hi],
            Test::In(vs) => vec![vs],
            Test::IsNull | Test::IsNotNull => vec![],
        };
        for v in literals {
            if v.data_type() != ty {
                return Err(Error::Schema(format!("predicate literal of type {} on a column of type {ty}", v.data_type())));
            }
            let one = !matches!(self.test, Test::In(_));
            if (one && v.len() != 1) || v.null_count() > 0 {
                return Err(Error::Schema("predicate literals must be non-null, one per operand".into()));
            }
        }
        Ok(())
    }

    /// Whether a segment with this zone (of the predicate's column) may
    /// hold a row that passes. A comparison a kernel cannot make says yes.
    pub(crate) fn may_match(&self, zone: &Zone) -> bool {
        match &self.test {
            Test::IsNull => zone.null_count > 0,
            Test::IsNotNull => !zone.all_null(),
            // Comparisons are false on NULL: a segment of nulls holds no match.
            _ if zone.all_null() => false,
            test => {
                let (Some(min), Some(max)) = (&zone.min, &zone.max) else { return true };
                let any = |r: Mask| r.map_or(true, |b| b.true_count() > 0);
                let all = |r: Mask| r.is_ok_and(|b| b.true_count() == b.len());
                let (min, max) = (Scalar::new(Arc::clone(min)), Scalar::new(Arc::clone(max)));
                match test {
                    // Some value in [min, max] can equal v.
                    Test::Cmp(CmpOp::Eq, v) => any(both(cmp::lt_eq(&min, &scalar(v)), cmp::gt_eq(&max, &scalar(v)))),
                    Test::Cmp(CmpOp::Lt, v) => any(cmp::lt(&min, &scalar(v))),
                    Test::Cmp(CmpOp::LtEq, v) => any(cmp::lt_eq(&min, &scalar(v))),
                    Test::Cmp(CmpOp::Gt, v) => any(cmp::gt(&max, &scalar(v))),
                    Test::Cmp(CmpOp::GtEq, v) => any(cmp::gt_eq(&max, &scalar(v))),
                    Test::Between(lo, hi) => any(both(cmp::lt_eq(&min, &scalar(hi)), cmp::gt_eq(&max, &scalar(lo)))),
                    // Some listed value inside [min, max]; none: every one outside.
                    Test::In(vs) => !all(either(cmp::lt(vs, &min), cmp::gt(vs, &max))),
                    Test::IsNull | Test::IsNotNull => unreachable!("handled above"),
                }
            }
        }
    }
}

fn scalar(v: &ArrayRef) -> impl Datum {
    Scalar::new(Arc::clone(v))
}

type Mask = std::result::Result<BooleanArray, arrow::error::ArrowError>;

fn both(a: Mask, b: Mask) -> Mask {
    arrow::compute::and(&a?, &b?)
}

fn either(a: Mask, b: Mask) -> Mask {
    arrow::compute::or(&a?, &b?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Float64Array, Int64Array};
    use proptest::prelude::*;

    fn lit(v: i64) -> ArrayRef {
        Arc::new(Int64Array::from(vec![v]))
    }

    fn tests(v: i64, w: i64) -> Vec<Test> {
        let (lo, hi) = (v.min(w), v.max(w));
        vec![
            Test::Cmp(CmpOp::Eq, lit(v)),
            Test::Cmp(CmpOp::Lt, lit(v)),
            Test::Cmp(CmpOp::LtEq, lit(v)),
            Test::Cmp(CmpOp::Gt, lit(v)),
            Test::Cmp(CmpOp::GtEq, lit(v)),
            Test::Between(lit(lo), lit(hi)),
            Test::In(Arc::new(Int64Array::from(vec![v, w]))),
            Test::IsNull,
            Test::IsNotNull,
        ]
    }

    fn passes(test: &Test, x: Option<i64>) -> bool {
        let one = |a: &ArrayRef| a.as_primitive::<arrow::datatypes::Int64Type>().value(0);
        match (test, x) {
            (Test::IsNull, x) => x.is_none(),
            (Test::IsNotNull, x) => x.is_some(),
            (_, None) => false,
            (Test::Cmp(op, v), Some(x)) => {
                let v = one(v);
                match op {
                    CmpOp::Eq => x == v,
                    CmpOp::Lt => x < v,
                    CmpOp::LtEq => x <= v,
                    CmpOp::Gt => x > v,
                    CmpOp::GtEq => x >= v,
                }
            }
            (Test::Between(lo, hi), Some(x)) => one(lo) <= x && x <= one(hi),
            (Test::In(vs), Some(x)) => vs.as_primitive::<arrow::datatypes::Int64Type>().values().contains(&x),
        }
    }

    proptest! {
        /// A segment is never skipped when one of its values passes; and
        /// the zone of two halves is the zone of the whole.
        #[test]
        fn pruning_never_skips_a_match(
            values in proptest::collection::vec(proptest::option::weighted(0.8, -50i64..50), 1..40),
            v in -60i64..60,
            w in -60i64..60,
        ) {
            let array = Int64Array::from(values.clone());
            let zone = Zone::of(&array);
            for test in tests(v, w) {
                let p = Predicate { column: 0, test };
                p.validate(&[DataType::Int64]).unwrap();
                if values.iter().any(|x| passes(&p.test, *x)) {
                    prop_assert!(p.may_match(&zone), "{:?} skipped {values:?}", p.test);
                }
            }
            let cut = values.len() / 2;
            let halves = Zone::of(&array.slice(0, cut)).union(&Zone::of(&array.slice(cut, values.len() - cut)));
            prop_assert_eq!((halves.null_count, halves.rows), (zone.null_count, zone.rows));
            prop_assert_eq!(halves.min.is_some(), zone.min.is_some());
            if let (Some(a), Some(b)) = (&halves.min, &zone.min) {
                prop_assert_eq!(a.as_ref(), b.as_ref());
                prop_assert_eq!(halves.max.as_ref().unwrap().as_ref(), zone.max.as_ref().unwrap().as_ref());
            }
        }
    }

    #[test]
    fn ranges_outside_the_zone_are_skipped() {
        let zone = Zone::of(&Int64Array::from(vec![10, 20, 30]));
        let skip = |test| !Predicate { column: 0, test }.may_match(&zone);
        assert!(skip(Test::Cmp(CmpOp::Eq, lit(5))) && skip(Test::Cmp(CmpOp::Gt, lit(30))) && skip(Test::Cmp(CmpOp::Lt, lit(10))));
        assert!(skip(Test::Between(lit(31), lit(40))) && skip(Test::In(Arc::new(Int64Array::from(vec![1, 40])))) && skip(Test::IsNull));
        assert!(!skip(Test::Cmp(CmpOp::GtEq, lit(30))) && !skip(Test::Between(lit(0), lit(10))));
    }

    #[test]
    fn floats_strings_and_all_null_columns() {
        let f = Zone::of(&Float64Array::from(vec![1.5, f64::NAN, -2.0]));
        let p = |test| Predicate { column: 0, test };
        let flit = |v: f64| -> ArrayRef { Arc::new(Float64Array::from(vec![v])) };
        assert!(p(Test::Cmp(CmpOp::Eq, flit(1.5))).may_match(&f));
        assert!(!p(Test::Cmp(CmpOp::Lt, flit(-3.0))).may_match(&f));
        let s = Zone::of(&StringArray::from(vec!["b", "d"]));
        let slit = |v: &str| -> ArrayRef { Arc::new(StringArray::from(vec![v])) };
        assert!(!p(Test::Cmp(CmpOp::Eq, slit("a"))).may_match(&s) && p(Test::Cmp(CmpOp::Eq, slit("c"))).may_match(&s));
        let nulls = Zone::of(&Int64Array::from(vec![None, None]));
        assert!(!p(Test::Cmp(CmpOp::Eq, lit(1))).may_match(&nulls) && p(Test::IsNull).may_match(&nulls));
        // Literals must match the column's type.
        assert!(p(Test::Cmp(CmpOp::Eq, slit("a"))).validate(&[DataType::Int64]).is_err());
        assert!(p(Test::In(Arc::new(Int64Array::from(vec![Some(1), None])))).validate(&[DataType::Int64]).is_err());
    }
}
