//! [`AuthBody`]: the response body of every middleware here, the inner service's body or a
//! rejection's.

use std::{
    convert::Infallible,
    fmt,
    pin::Pin,
    task::{Context, Poll},
};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use pin_project_lite::pin_project;

/// What a body holds while the answer is being sent (a token's in-flight slot); dropped
/// with the body.
pub(crate) type Guard = Box<dyn std::any::Any + Send + Sync>;

pin_project! {
    /// The response body of the middleware: the inner service's body, or a rejection's.
    pub struct AuthBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        Inner { #[pin] body: B },
        // Apart from `Inner`, so that the common answer's body stays as small as before.
        Guarded { #[pin] body: B, guard: Guard },
        Rejection { body: Full<Bytes> },
    }
}

impl<B> AuthBody<B> {
    /// Wrap the inner service's body.
    pub fn inner(body: B) -> Self {
        AuthBody {
            kind: Kind::Inner { body },
        }
    }

    /// Wrap the inner service's body, holding `guard` (an in-flight slot) until the body is
    /// dropped: sent, or abandoned by the client.
    pub(crate) fn guarded(body: B, guard: Option<Guard>) -> Self {
        AuthBody {
            kind: match guard {
                Some(guard) => Kind::Guarded { body, guard },
                None => Kind::Inner { body },
            },
        }
    }

    /// A rejection's body.
    pub fn rejection(body: Full<Bytes>) -> Self {
        AuthBody {
            kind: Kind::Rejection { body },
        }
    }
}

impl<B> fmt::Debug for AuthBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.kind {
            Kind::Inner { .. } | Kind::Guarded { .. } => "AuthBody::Inner",
            Kind::Rejection { .. } => "AuthBody::Rejection",
        })
    }
}

impl<B> Body for AuthBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.project().kind.project() {
            KindProj::Inner { body } | KindProj::Guarded { body, .. } => body.poll_frame(cx),
            KindProj::Rejection { body } => Pin::new(body)
                .poll_frame(cx)
                .map_err(|never: Infallible| match never {}),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Inner { body } | Kind::Guarded { body, .. } => body.is_end_stream(),
            Kind::Rejection { body } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Inner { body } | Kind::Guarded { body, .. } => body.size_hint(),
            Kind::Rejection { body } => body.size_hint(),
        }
    }
}
