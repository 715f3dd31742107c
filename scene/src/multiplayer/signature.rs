//! What a handler accepts: argument count and types, checked before it runs.

use alloc::vec::Vec;

use crate::variant::{Variant, VariantType};

/// One parameter of an RPC handler.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    /// A value of this type. GDScript's implicit conversions for typed
    /// parameters apply: an `int` is accepted for `float` (converted), a
    /// `String` for `StringName` and the reverse.
    Typed(VariantType),
    /// Any value.
    Any,
    /// May be left out (only at the end): the default is passed instead,
    /// like a GDScript default argument. `Some(t)` checks the type when given.
    Optional(Option<VariantType>, Variant),
}

/// The parameters of an RPC handler. Calls with another argument count or
/// with arguments of other types are dropped and counted, never delivered.
#[derive(Debug, Clone, PartialEq)]
pub struct Signature {
    params: Option<Vec<Param>>,
}

/// Why arguments do not fit a [`Signature`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mismatch {
    Count,
    Type,
}

impl Signature {
    /// Exactly these parameters.
    pub fn new(params: impl IntoIterator<Item = Param>) -> Self {
        Signature {
            params: Some(params.into_iter().collect()),
        }
    }

    /// Parameters of these types, none optional.
    pub fn typed(types: &[VariantType]) -> Self {
        Signature::new(types.iter().map(|&t| Param::Typed(t)))
    }

    /// No arguments.
    pub fn none() -> Self {
        Signature::new([])
    }

    /// Any arguments: the handler checks them itself (serde handlers do).
    pub fn any() -> Self {
        Signature { params: None }
    }

    /// Checks `args` and brings them to the declared form (conversions,
    /// defaults for left-out optional parameters).
    pub(crate) fn apply(&self, args: &mut Vec<Variant>) -> Result<(), Mismatch> {
        let Some(params) = &self.params else {
            return Ok(());
        };
        if args.len() > params.len() {
            return Err(Mismatch::Count);
        }
        for (i, p) in params.iter().enumerate() {
            match (p, args.get_mut(i)) {
                (Param::Any, Some(_)) | (Param::Optional(None, _), Some(_)) => {}
                (Param::Typed(t) | Param::Optional(Some(t), _), Some(arg)) => convert(*t, arg)?,
                (Param::Optional(_, default), None) => args.push(default.clone()),
                (Param::Typed(_) | Param::Any, None) => return Err(Mismatch::Count),
            }
        }
        Ok(())
    }
}

/// GDScript's implicit conversions into a typed parameter.
fn convert(to: VariantType, arg: &mut Variant) -> Result<(), Mismatch> {
    let from = arg.variant_type();
    if from == to {
        return Ok(());
    }
    let converted = match (to, &*arg) {
        (VariantType::Float, Variant::Int(i)) => Variant::Float(*i as f64),
        (VariantType::String, Variant::StringName(s)) => Variant::String(s.clone()),
        (VariantType::StringName, Variant::String(s)) => Variant::StringName(s.clone()),
        _ => return Err(Mismatch::Type),
    };
    *arg = converted;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn counts_types_conversions_and_defaults() {
        let s = Signature::typed(&[VariantType::String, VariantType::Float]);
        let mut ok = vec![Variant::StringName("a".into()), Variant::Int(2)];
        assert_eq!(s.apply(&mut ok), Ok(()));
        assert_eq!(ok, vec![Variant::String("a".into()), Variant::Float(2.0)]);
        assert_eq!(s.apply(&mut vec!["a".into()]), Err(Mismatch::Count));
        assert_eq!(
            s.apply(&mut vec!["a".into(), 1.5.into(), Variant::Nil]),
            Err(Mismatch::Count)
        );
        assert_eq!(
            s.apply(&mut vec![1.into(), 1.5.into()]),
            Err(Mismatch::Type)
        );

        let echo = Signature::new([Param::Optional(None, Variant::PackedByteArray(vec![]))]);
        let mut none = vec![];
        assert_eq!(echo.apply(&mut none), Ok(()));
        assert_eq!(none, vec![Variant::PackedByteArray(vec![])]);
        let mut one = vec![Variant::Nil];
        assert_eq!(echo.apply(&mut one), Ok(()));
        assert_eq!(one, vec![Variant::Nil]);

        assert_eq!(Signature::any().apply(&mut vec![Variant::Nil; 9]), Ok(()));
        assert_eq!(
            Signature::none().apply(&mut vec![Variant::Nil]),
            Err(Mismatch::Count)
        );
    }
}
