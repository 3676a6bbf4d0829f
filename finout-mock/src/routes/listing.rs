//! Long lists answered as they are written: a JSON document whose array items are rendered
//! one at a time as the connection takes them, so an answer never exists whole in memory. The
//! items are shared with the mock's state (a snapshot of pointers), and the bytes they take
//! are reserved from the account's budget of unread answers while the answer is pending.

use std::{
    fmt,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use axum::{
    body::{Body, Bytes, HttpBody},
    http::{HeaderValue, header},
    response::Response,
};
use serde_json::Value;

use finout_auth::AccountId;

use crate::{
    mock::Mock,
    server::tenants::{self, Connection, Reserved},
    state::tags::{AccountTags, StoredTag},
};

/// The parts of a tag list answer besides the tags.
pub(crate) struct TagList {
    /// The document up to the array's `[`, included.
    pub(crate) prefix: String,
    /// How one tag is answered, given the account id.
    pub(crate) render: fn(&StoredTag, &str) -> Value,
    /// The document from the array's `]` on.
    pub(crate) suffix: String,
}

/// `account`'s tags as `list` says, written as they are read; 429 if what they take does not
/// fit the account's budget of unread answers.
pub(crate) fn tags(
    mock: &Mock,
    account: AccountId,
    connection: Option<&Arc<Connection>>,
    list: TagList,
) -> Response {
    let (tags, bytes) = mock.inner.state.tags(account, AccountTags::shared);
    match tenants::reserve(connection, account, bytes) {
        Ok(reserved) => JsonList::answer(
            list.prefix,
            tags,
            list.render,
            account.to_string(),
            list.suffix,
            reserved,
        ),
        Err(refused) => *refused,
    }
}

/// `prefix`, then `items` rendered by `render` and separated by commas, then `suffix`.
pub(crate) struct JsonList<T> {
    prefix: Option<Bytes>,
    items: std::vec::IntoIter<Arc<T>>,
    first: bool,
    render: fn(&T, &str) -> Value,
    /// What `render` is given besides the item (e.g. the account id).
    context: String,
    suffix: Option<Bytes>,
    _reserved: Option<Reserved>,
}

impl<T> fmt::Debug for JsonList<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsonList").finish_non_exhaustive()
    }
}

impl<T: Send + Sync + 'static> JsonList<T> {
    /// The answer: `prefix` (the document up to the array's `[`, included), the items, and
    /// `suffix` (from the array's `]` on), holding `reserved` until it is sent.
    pub(crate) fn answer(
        prefix: String,
        items: Vec<Arc<T>>,
        render: fn(&T, &str) -> Value,
        context: String,
        suffix: String,
        reserved: Option<Reserved>,
    ) -> Response {
        let body = JsonList {
            prefix: Some(Bytes::from(prefix)),
            items: items.into_iter(),
            first: true,
            render,
            context,
            suffix: Some(Bytes::from(suffix)),
            _reserved: reserved,
        };
        let mut response = Response::new(Body::new(body));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
    }
}

impl<T: Send + Sync + 'static> HttpBody for JsonList<T> {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        let chunk = if let Some(prefix) = this.prefix.take() {
            prefix
        } else if let Some(item) = this.items.next() {
            let mut out = Vec::new();
            if !std::mem::take(&mut this.first) {
                out.push(b',');
            }
            // A `Value` always serializes.
            let _ = serde_json::to_writer(&mut out, &(this.render)(&item, &this.context));
            Bytes::from(out)
        } else if let Some(suffix) = this.suffix.take() {
            suffix
        } else {
            return Poll::Ready(None);
        };
        Poll::Ready(Some(Ok(http_body::Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.prefix.is_none() && self.items.len() == 0 && self.suffix.is_none()
    }
}
