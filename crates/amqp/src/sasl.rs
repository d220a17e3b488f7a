//! The SASL layer (AMQP 1.0 part 5.3), both ends: a client that
//! authenticates with one mechanism, and a server that offers a list and
//! accepts what its caller allows.

use tokio::io::{AsyncRead, AsyncWrite};

use crate::frame::{
    self, encode_frame, init_mechanism, offered_mechanisms, outcome_code, read_frame, SASL_FRAME,
    SASL_HEADER,
};
use crate::Error;

/// SASL frames are small; anything bigger is not a SASL peer.
const MAX_SASL_FRAME: u32 = 64 * 1024;

/// Authenticates with `mechanism` and `initial_response` (EXTERNAL: empty,
/// the identity is the TLS client certificate; ANONYMOUS: any text).
pub async fn client<S>(
    stream: &mut S,
    mechanism: &str,
    initial_response: &[u8],
) -> Result<(), Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    frame::exchange_header(stream, SASL_HEADER).await?;
    let mechanisms = read_frame(stream, MAX_SASL_FRAME).await?;
    let offered = mechanisms
        .body
        .as_ref()
        .and_then(offered_mechanisms)
        .ok_or_else(|| Error::Protocol("expected sasl-mechanisms".into()))?;
    if !offered.iter().any(|m| m == mechanism) {
        return Err(Error::Refused(format!(
            "the peer offers SASL mechanisms {offered:?}, not {mechanism}"
        )));
    }
    let init = frame::sasl_init(mechanism, initial_response);
    frame::write_all(stream, &encode_frame(SASL_FRAME, 0, Some(&init), &[])).await?;
    let outcome = read_frame(stream, MAX_SASL_FRAME).await?;
    match outcome.body.as_ref().and_then(outcome_code) {
        Some(0) => Ok(()),
        Some(code) => Err(Error::Refused(format!(
            "SASL {mechanism} failed with code {code}"
        ))),
        None => Err(Error::Protocol("expected sasl-outcome".into())),
    }
}

/// Offers `mechanisms`, reads the client's choice, and answers ok when
/// `accept` allows it. Answers the mechanism used.
pub async fn server<S>(
    stream: &mut S,
    mechanisms: &[&str],
    accept: impl Fn(&str) -> bool,
) -> Result<String, Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    frame::expect_header(stream, SASL_HEADER).await?;
    frame::write_all(stream, &SASL_HEADER).await?;
    let offer = frame::sasl_mechanisms(mechanisms);
    frame::write_all(stream, &encode_frame(SASL_FRAME, 0, Some(&offer), &[])).await?;
    let init = read_frame(stream, MAX_SASL_FRAME).await?;
    let chosen = init
        .body
        .as_ref()
        .and_then(init_mechanism)
        .ok_or_else(|| Error::Protocol("expected sasl-init".into()))?;
    let ok = mechanisms.contains(&chosen.as_str()) && accept(&chosen);
    let outcome = frame::sasl_outcome(if ok { 0 } else { 1 });
    frame::write_all(stream, &encode_frame(SASL_FRAME, 0, Some(&outcome), &[])).await?;
    if ok {
        Ok(chosen)
    } else {
        Err(Error::Refused(format!("SASL mechanism {chosen} refused")))
    }
}
