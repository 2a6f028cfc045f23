//! Statement parameters with their Postgres types: statements are unnamed (nothing left on
//! a pooled session), so each parameter's type travels with it (`typed![&a, &b]`).

use tokio_postgres::types::{ToSql, Type};

/// The Postgres type a parameter is sent as: statements are unnamed, so their parameters'
/// types travel with them.
pub(super) trait PgType {
    /// The type of a value.
    const TYPE: Type;
    /// The type of an array of such values.
    const ARRAY: Type;
}

macro_rules! pg_type {
    ($($rust:ty => $scalar:ident, $array:ident;)*) => {
        $(impl PgType for $rust {
            const TYPE: Type = Type::$scalar;
            const ARRAY: Type = Type::$array;
        })*
    };
}

pg_type! {
    str => TEXT, TEXT_ARRAY;
    String => TEXT, TEXT_ARRAY;
    i64 => INT8, INT8_ARRAY;
    i32 => INT4, INT4_ARRAY;
    bool => BOOL, BOOL_ARRAY;
}

impl<T: PgType + ?Sized> PgType for &T {
    const TYPE: Type = T::TYPE;
    const ARRAY: Type = T::ARRAY;
}

impl<T: PgType> PgType for Option<T> {
    const TYPE: Type = T::TYPE;
    const ARRAY: Type = T::ARRAY;
}

impl<T: PgType> PgType for Vec<T> {
    const TYPE: Type = T::ARRAY;
    const ARRAY: Type = T::ARRAY;
}

/// A parameter with its type.
pub(super) fn typed<T: PgType + ToSql + Sync>(value: &T) -> (&(dyn ToSql + Sync), Type) {
    (value, T::TYPE)
}

/// A statement's parameters with their types: `typed![&a, &b]`.
macro_rules! typed {
    ($($value:expr),* $(,)?) => {
        &[$($crate::coordinator::postgres::params::typed($value)),*]
    };
}
