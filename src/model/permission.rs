//! Permissions and permission patterns ([`Permission`]), and what a set of them covers: the
//! exact answer to "is there a permission that all of these grant?", which decides whether a
//! personal token (its role limited by its user's) may write at all.
//!
//! A permission is dot-separated segments `<scope>.<area>.<action>.<object>`. A pattern's `*`
//! matches one segment, and a trailing `*` matches the rest (one or more segments). So each
//! pattern, and each predefined role's rule, is a [`Shape`]: constraints on the leading
//! segments (this literal, not this literal, anything) and a range of segment counts. Two
//! shapes share a permission exactly when their count ranges overlap and no segment is asked
//! to be two different literals (or a literal it must not be): segments are arbitrary strings,
//! so a segment only ever excluded can always take a fresh value.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// The longest permission pattern a custom role may list, in bytes.
pub const MAX_PERMISSION_LEN: usize = 128;

/// A permission or permission pattern, e.g. `fin.megabill.write.views`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Permission(pub Arc<str>);

impl Permission {
    /// A permission from its string.
    pub fn new(p: impl Into<Arc<str>>) -> Self {
        Permission(p.into())
    }

    /// Whether this pattern matches `permission`: `*` matches one segment, a trailing `*` the
    /// rest (one or more segments).
    pub fn matches(&self, permission: &str) -> bool {
        let mut pattern = self.0.split('.').peekable();
        let mut actual = permission.split('.');
        while let Some(p) = pattern.next() {
            let last = pattern.peek().is_none();
            match actual.next() {
                None => return false,
                Some(_) if p == "*" && last => return true,
                Some(a) if p == "*" || p == a => {}
                Some(_) => return false,
            }
        }
        actual.next().is_none()
    }

    /// The permissions this pattern matches, as a [`Shape`].
    pub(crate) fn shape(&self) -> Shape<'_> {
        let segments: Vec<&str> = self.0.split('.').collect();
        let n = segments.len();
        let (fixed, open) = match segments.split_last() {
            Some((&"*", rest)) => (rest, true),
            _ => (&segments[..], false),
        };
        Shape {
            segments: fixed
                .iter()
                .map(|s| match *s {
                    "*" => Segment::any(),
                    literal => Segment::is(literal),
                })
                .collect(),
            min_len: n,
            max_len: (!open).then_some(n),
        }
    }
}

impl From<&str> for Permission {
    fn from(p: &str) -> Self {
        Permission::new(p)
    }
}

/// What one segment of a permission must be: this literal (`is`), and none of `not`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Segment<'a> {
    is: Option<&'a str>,
    not: Vec<&'a str>,
}

impl<'a> Segment<'a> {
    fn any() -> Self {
        Segment::default()
    }

    fn is(literal: &'a str) -> Self {
        Segment {
            is: Some(literal),
            not: Vec::new(),
        }
    }

    fn not(literal: &'a str) -> Self {
        Segment {
            is: None,
            not: vec![literal],
        }
    }

    /// Both constraints, or `None` when no segment meets both.
    fn and(&self, other: &Segment<'a>) -> Option<Self> {
        let is = match (self.is, other.is) {
            (Some(a), Some(b)) if a != b => return None,
            (a, b) => a.or(b),
        };
        let mut not = self.not.clone();
        not.extend(&other.not);
        // Exclusions alone never empty a segment: it can take a value none of them names.
        if is.is_some_and(|is| not.contains(&is)) {
            return None;
        }
        Some(Segment { is, not })
    }
}

/// A set of permissions: those whose leading segments meet `segments` and whose segment count
/// is within `min_len..=max_len` (`None`: unbounded). Every constrained segment lies below
/// `min_len`, so a count in range always reaches them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Shape<'a> {
    segments: Vec<Segment<'a>>,
    min_len: usize,
    max_len: Option<usize>,
}

impl<'a> Shape<'a> {
    /// Every permission.
    pub(crate) fn everything() -> Self {
        Shape {
            segments: Vec::new(),
            min_len: 1,
            max_len: None,
        }
    }

    /// Every permission outside the `scope` scope.
    pub(crate) fn outside(scope: &'a str) -> Self {
        Shape {
            segments: vec![Segment::not(scope)],
            min_len: 1,
            max_len: None,
        }
    }

    /// Every permission whose action (third segment) is `action`.
    pub(crate) fn action(action: &'a str) -> Self {
        Shape {
            segments: vec![Segment::any(), Segment::any(), Segment::is(action)],
            min_len: 3,
            max_len: None,
        }
    }

    /// The permissions in both `self` and `other`.
    pub(crate) fn and(&self, other: &Shape<'a>) -> Self {
        let min_len = self.min_len.max(other.min_len);
        let max_len = match (self.max_len, other.max_len) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let (longer, shorter) = if self.segments.len() >= other.segments.len() {
            (&self.segments, &other.segments)
        } else {
            (&other.segments, &self.segments)
        };
        let mut segments = longer.clone();
        for (mine, theirs) in segments.iter_mut().zip(shorter) {
            match mine.and(theirs) {
                Some(both) => *mine = both,
                None => return Shape::none(),
            }
        }
        Shape {
            segments,
            min_len,
            max_len,
        }
    }

    /// Exactly `permission`.
    #[cfg(test)]
    pub(crate) fn exact(permission: &'a str) -> Self {
        let n = permission.split('.').count();
        Shape {
            segments: permission.split('.').map(Segment::is).collect(),
            min_len: n,
            max_len: Some(n),
        }
    }

    /// No permission at all.
    fn none() -> Self {
        Shape {
            segments: Vec::new(),
            min_len: 1,
            max_len: Some(0),
        }
    }

    /// Whether no permission is in the set: only the count range can be empty, as `and`
    /// answers [`none`](Self::none) for conflicting segments.
    pub(crate) fn is_empty(&self) -> bool {
        self.max_len.is_some_and(|max| max < self.min_len)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn permission_patterns_match_segments() {
        let p = Permission::from("fin.*.read.*");
        assert!(p.matches("fin.megabill.read.views"));
        assert!(p.matches("fin.megabill.read.views.extra"));
        assert!(!p.matches("fin.megabill.write.views"));
        assert!(!p.matches("fin.megabill.read"));
        assert!(Permission::from("fin.a").matches("fin.a"));
        assert!(!Permission::from("fin.a").matches("fin.a.b"));
    }

    fn writes(pattern: &str) -> bool {
        !Permission::from(pattern)
            .shape()
            .and(&Shape::action("write"))
            .is_empty()
    }

    #[test]
    fn a_pattern_writes_when_it_can_match_a_write_action() {
        for yes in [
            "fin.megabill.write.views",
            "fin.*.write.*",
            "fin.*",
            "*",
            "fin.megabill.*",
            "fin.megabill.*.views",
            "fin.megabill.write",
            "admin.tokens.write.api",
        ] {
            assert!(writes(yes), "{yes}");
        }
        for no in ["fin.*.read.*", "fin.megabill", "fin", "fin.megabill.read.*"] {
            assert!(!writes(no), "{no}");
        }
    }

    #[test]
    fn shapes_intersect_only_where_a_permission_matches_both() {
        let both = |a: &str, b: &str| {
            let (a, b) = (Permission::from(a), Permission::from(b));
            !a.shape().and(&b.shape()).is_empty()
        };
        assert!(both("fin.a.write.x", "fin.*.write.*"));
        assert!(!both("fin.a.write.x", "fin.b.write.x"));
        assert!(!both("fin.a", "fin.a.b"));
        assert!(both("fin.*", "fin.a.b"));
        assert!(!both("fin.*", "fin"));
        let outside_admin = Shape::outside("admin");
        assert!(
            Permission::from("admin.*")
                .shape()
                .and(&outside_admin)
                .is_empty()
        );
        assert!(!Permission::from("*").shape().and(&outside_admin).is_empty());
    }

    pub(crate) fn segment() -> impl Strategy<Value = String> {
        prop::sample::select(vec!["fin", "admin", "a", "write", "read", "*"]).prop_map(String::from)
    }

    pub(crate) fn dotted(max: usize) -> impl Strategy<Value = String> {
        prop::collection::vec(segment(), 1..=max).prop_map(|s| s.join("."))
    }

    proptest! {
        /// The shape of a pattern intersected with one concrete permission (a shape of
        /// literals only) is non-empty exactly when the pattern matches it.
        #[test]
        fn a_shape_agrees_with_matches(pattern in dotted(5), permission in dotted(5)) {
            let permission = permission.replace('*', "x");
            let p = Permission::from(pattern.as_str());
            let both = p.shape().and(&Shape::exact(&permission));
            prop_assert_eq!(!both.is_empty(), p.matches(&permission));
        }
    }
}
