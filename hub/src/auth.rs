//! Credentials on the way in: the bearer token of a gRPC call or an HTTP request, checked
//! against the node's store, and the role the call needs.

use renda_node::access::{Credential, Role};
use renda_node::store::{StoreError, StoreHandle};

/// Why a request was not let in.
#[derive(Debug, thiserror::Error)]
pub enum Denied {
    /// No credential, or one this node does not know (or revoked).
    #[error("authorization: {0}")]
    Unauthenticated(&'static str),
    /// A valid credential whose role is below what the request needs.
    #[error("authorization: {name} has the {has} role; this needs {needs}")]
    Forbidden {
        name: String,
        has: Role,
        needs: Role,
    },
    /// A program's credential limited to a subtree, presented where only whole-node ones go.
    #[error(
        "authorization: {name} is limited to the subtree of {within} and reads the Query API only"
    )]
    Limited { name: String, within: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The token of an `Authorization: Bearer <token>` value.
pub fn bearer(value: Option<&str>) -> Option<&str> {
    let value = value?.trim();
    let (scheme, token) = value.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty()).then(|| token.trim())
}

/// The credential `token` proves, if its role allows `needs` and it is not limited to a
/// subtree: the dashboard and the first Query service answer about the whole node.
pub async fn authorize(
    store: &StoreHandle,
    token: Option<&str>,
    needs: Role,
) -> Result<Credential, Denied> {
    let credential = authorize_limited(store, token, needs).await?;
    match credential.within {
        Some(within) => Err(Denied::Limited {
            name: credential.name,
            within: within.to_string(),
        }),
        None => Ok(credential),
    }
}

/// The credential `token` proves, if its role allows `needs`, limited to a subtree or not: the
/// Query API, which narrows every answer to the credential's subtree.
pub async fn authorize_limited(
    store: &StoreHandle,
    token: Option<&str>,
    needs: Role,
) -> Result<Credential, Denied> {
    let token = token
        .ok_or(Denied::Unauthenticated(
            "a credential is required (Authorization: Bearer <token>)",
        ))?
        .to_string();
    let credential = store
        .read(move |s| s.authenticate(&token))
        .await?
        .ok_or(Denied::Unauthenticated("the token is unknown or revoked"))?;
    if !credential.role.allows(needs) {
        return Err(Denied::Forbidden {
            name: credential.name,
            has: credential.role,
            needs,
        });
    }
    Ok(credential)
}

#[cfg(test)]
mod tests {
    use super::bearer;

    #[test]
    fn bearer_tokens_are_read_from_the_header() {
        assert_eq!(bearer(Some("Bearer renda_ab")), Some("renda_ab"));
        assert_eq!(bearer(Some("bearer  renda_ab ")), Some("renda_ab"));
        assert_eq!(bearer(Some("Basic dXNlcg==")), None);
        assert_eq!(bearer(Some("Bearer ")), None);
        assert_eq!(bearer(None), None);
    }
}

/// Adds a credential's bearer token to every call of a gRPC client.
#[derive(Clone)]
pub struct BearerToken(tonic::metadata::MetadataValue<tonic::metadata::Ascii>);

impl BearerToken {
    /// `None` for a token that cannot be a header value (tokens are ASCII).
    pub fn new(token: &str) -> Option<BearerToken> {
        format!("Bearer {}", token.trim())
            .parse()
            .ok()
            .map(BearerToken)
    }
}

impl tonic::service::Interceptor for BearerToken {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        request
            .metadata_mut()
            .insert("authorization", self.0.clone());
        Ok(request)
    }
}

/// A `Query` client that sends `token` with every call.
pub type QueryClient = renda_proto::v1::query_client::QueryClient<
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, BearerToken>,
>;

/// Connects a [`QueryClient`] to a node's plaintext port (`http://host:port`).
pub async fn query_client(endpoint: String, token: &str) -> Result<QueryClient, String> {
    let bearer = BearerToken::new(token).ok_or("the token is not a valid header value")?;
    let channel = tonic::transport::Endpoint::from_shared(endpoint)
        .map_err(|e| e.to_string())?
        .connect()
        .await
        .map_err(|e| e.to_string())?;
    Ok(renda_proto::v1::query_client::QueryClient::with_interceptor(channel, bearer))
}
