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
    /// A program's credential (for the Query API only, and perhaps limited to a subtree)
    /// presented where only staff credentials go.
    #[error("authorization: {name} is a program's token and reads the Query API only")]
    ApiOnly { name: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The token of an `Authorization: Bearer <token>` value.
pub fn bearer(value: Option<&str>) -> Option<&str> {
    let value = value?.trim();
    let (scheme, token) = value.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty()).then(|| token.trim())
}

/// The credential `token` proves, if its role allows `needs` and it is not a program's (for
/// the Query API only): the dashboard and the first Query service, which a program's token,
/// read-only whatever its role, never opens.
pub async fn authorize(
    store: &StoreHandle,
    token: Option<&str>,
    needs: Role,
) -> Result<Credential, Denied> {
    let credential = authorize_limited(store, token, needs).await?;
    if credential.api_only || credential.within.is_some() {
        return Err(Denied::ApiOnly {
            name: credential.name,
        });
    }
    Ok(credential)
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
    use super::*;
    use renda_node::region::RegionCode;
    use renda_node::store::Store;

    /// A program's token reads the Query API and nothing else, whatever its role: the
    /// dashboard and the first Query service refuse it. A staff token opens both.
    #[tokio::test]
    async fn a_programs_token_opens_the_query_api_only() {
        let dir = tempfile::tempdir().unwrap();
        let region = RegionCode::parse("region", "330411000000").unwrap();
        let store =
            StoreHandle::spawn(Store::init(dir.path(), region, "秀洲区人大常委会", None).unwrap())
                .unwrap();
        let township = RegionCode::parse("region", "330411101000").unwrap();
        let (program, limited, staff) = store
            .write(move |tx| {
                Ok((
                    tx.add_api_credential("数据中心", Role::Admin, None)?,
                    tx.add_api_credential("王店镇 接口", Role::Viewer, Some(township))?,
                    tx.add_credential("办公室", Role::Admin)?,
                ))
            })
            .await
            .unwrap();
        for token in [&program, &limited] {
            assert!(matches!(
                authorize(&store, Some(token), Role::Viewer).await,
                Err(Denied::ApiOnly { .. })
            ));
            assert!(
                authorize_limited(&store, Some(token), Role::Viewer)
                    .await
                    .is_ok()
            );
        }
        let admin = authorize_limited(&store, Some(&program), Role::Admin)
            .await
            .unwrap();
        assert!(admin.api_only && admin.within.is_none(), "{admin:?}");
        assert!(authorize(&store, Some(&staff), Role::Admin).await.is_ok());
        let outside = RegionCode::parse("region", "330402000000").unwrap();
        let refused = store
            .write(move |tx| tx.add_api_credential("外区", Role::Viewer, Some(outside)))
            .await;
        assert!(matches!(refused, Err(StoreError::Invalid(v)) if v.field == "within"));
    }

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
