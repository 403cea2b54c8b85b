//! Rust values as SQL parameters.

pub use omen_rowstore::Value;

/// A Rust value that can be bound to a `$n` parameter.
///
/// Implemented for the integer and float types, `bool`, strings, byte
/// vectors and slices, [`Value`] itself, and `Option<T>` (`None` is NULL).
/// The value is converted to the type the statement expects for its
/// parameter (an `i32` works for a BIGINT column); a value that does not
/// convert is an [`crate::Error::Parameter`].
pub trait ToValue {
    /// The SQL value.
    fn to_value(&self) -> Value;
}

macro_rules! to_value {
    ($($t:ty => $v:ident),* $(,)?) => {$(
        impl ToValue for $t {
            fn to_value(&self) -> Value {
                Value::$v((*self).into())
            }
        }
    )*};
}

to_value!(bool => Bool, i8 => Int16, i16 => Int16, u8 => Int16, i32 => Int32, u16 => Int32, i64 => Int64, u32 => Int64, f32 => Float32, f64 => Float64);

impl ToValue for str {
    fn to_value(&self) -> Value {
        Value::Text(self.to_owned())
    }
}

impl ToValue for String {
    fn to_value(&self) -> Value {
        Value::Text(self.clone())
    }
}

impl ToValue for [u8] {
    fn to_value(&self) -> Value {
        Value::Bytes(self.to_vec())
    }
}

impl ToValue for Vec<u8> {
    fn to_value(&self) -> Value {
        Value::Bytes(self.clone())
    }
}

impl ToValue for Value {
    fn to_value(&self) -> Value {
        self.clone()
    }
}

impl<T: ToValue + ?Sized> ToValue for &T {
    fn to_value(&self) -> Value {
        (**self).to_value()
    }
}

impl<T: ToValue> ToValue for Option<T> {
    fn to_value(&self) -> Value {
        self.as_ref().map_or(Value::Null, ToValue::to_value)
    }
}

/// Builds a parameter list for `$1..$n`, as rusqlite's `params!` does.
///
/// ```
/// # use omendb::{params, ToValue};
/// let p: &[&dyn ToValue] = params![1, "two", 3.0, None::<i64>];
/// assert_eq!(p.len(), 4);
/// ```
#[macro_export]
macro_rules! params {
    () => { &[] as &[&dyn $crate::ToValue] };
    ($($p:expr),+ $(,)?) => { &[$(&$p as &dyn $crate::ToValue),+] as &[&dyn $crate::ToValue] };
}

pub(crate) fn to_values(params: &[&dyn ToValue]) -> Vec<Value> {
    params.iter().map(|p| p.to_value()).collect()
}
