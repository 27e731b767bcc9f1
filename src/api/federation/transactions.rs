//! `PUT /_matrix/federation/v1/send/{txnId}`: a transaction of PDUs and EDUs from another
//! server. EDUs (typing, receipts, presence, to-device, device lists) are not applied yet.

use axum::extract::State;
use ruma::api::federation::transactions::send_transaction_message;

use crate::{
    api::{AppState, Ruma, RumaResponse},
    error::{Error, Result},
};

pub async fn send(
    State(services): State<AppState>,
    request: Ruma<send_transaction_message::v1::Request>,
) -> Result<RumaResponse<send_transaction_message::v1::Response>> {
    let origin = request.origin()?.to_owned();
    let body = request.body;
    if body.origin != origin {
        return Err(Error::forbidden(
            "The transaction names another origin than its signature",
        ));
    }
    let txn_id = body.transaction_id.to_string();
    if let Some(answer) = services.federation.remembered_transaction(&origin, &txn_id)
        && let Ok(pdus) = serde_json::from_value(answer)
    {
        return Ok(RumaResponse(send_transaction_message::v1::Response::new(
            pdus,
        )));
    }
    let results = services
        .receive_transaction(&origin, &body.pdus, body.edus.len())
        .await?;
    let answer = serde_json::to_value(
        results
            .iter()
            .map(|(id, result)| (id.clone(), result.clone()))
            .collect::<std::collections::BTreeMap<_, _>>(),
    )
    .map_err(Error::internal)?;
    services
        .federation
        .remember_transaction(&origin, &txn_id, answer);
    Ok(RumaResponse(send_transaction_message::v1::Response::new(
        results,
    )))
}
