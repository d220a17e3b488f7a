//! SASL EXTERNAL over the TLS stream, before the AMQP library takes it.
//!
//! fe2o3-amqp only runs its SASL profiles when it also owns TLS (it refuses
//! EXTERNAL on a plain `amqp` stream), and its TLS features would pull a
//! second TLS stack into the tree. So skupperd runs the four SASL steps
//! itself (header, mechanisms, init, outcome) and then hands the stream to
//! the library as if no SASL layer existed. Frames are read with exact
//! lengths, so no byte of the AMQP layer is consumed here.

use fe2o3_amqp::types::primitives::{Binary, Symbol};
use fe2o3_amqp::types::sasl::{SaslCode, SaslInit, SaslMechanisms, SaslOutcome};
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::MgmtError;

/// The protocol header of the SASL layer (AMQP 1.0 part 5.3.1).
const SASL_HEADER: [u8; 8] = *b"AMQP\x03\x01\x00\x00";
/// Frame type of SASL frames.
const SASL_FRAME_TYPE: u8 = 1;
/// SASL frames are small; anything bigger is not a SASL peer.
const MAX_SASL_FRAME: usize = 64 * 1024;

/// Authenticates with SASL EXTERNAL (empty initial response): the identity
/// is the client certificate the TLS layer already presented.
pub(crate) async fn external<S>(stream: &mut S) -> Result<(), MgmtError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    stream.write_all(&SASL_HEADER).await.map_err(lost)?;
    stream.flush().await.map_err(lost)?;
    let mut header = [0u8; 8];
    stream.read_exact(&mut header).await.map_err(lost)?;
    if header != SASL_HEADER {
        return Err(MgmtError::Protocol(format!(
            "expected the SASL protocol header, got {header:?}"
        )));
    }
    let mechanisms: SaslMechanisms = read_frame(stream).await?;
    let external = Symbol::from("EXTERNAL");
    if !mechanisms.sasl_server_mechanisms.0.contains(&external) {
        let offered: Vec<&str> = mechanisms
            .sasl_server_mechanisms
            .0
            .iter()
            .map(|s| s.0.as_str())
            .collect();
        return Err(MgmtError::Protocol(format!(
            "router offers SASL mechanisms {offered:?}, not EXTERNAL"
        )));
    }
    let init = SaslInit {
        mechanism: external,
        initial_response: Some(Binary::from(Vec::new())),
        hostname: None,
    };
    write_frame(stream, &init).await?;
    let outcome: SaslOutcome = read_frame(stream).await?;
    match outcome.code {
        SaslCode::Ok => Ok(()),
        code => Err(MgmtError::Protocol(format!(
            "router refused SASL EXTERNAL: {code:?}"
        ))),
    }
}

fn lost(e: std::io::Error) -> MgmtError {
    MgmtError::Lost(format!("SASL negotiation: {e}"))
}

async fn read_frame<S, T>(stream: &mut S) -> Result<T, MgmtError>
where
    S: AsyncRead + Unpin,
    T: DeserializeOwned,
{
    let mut head = [0u8; 8];
    stream.read_exact(&mut head).await.map_err(lost)?;
    let [s0, s1, s2, s3, doff, frame_type, _, _] = head;
    let size = u32::from_be_bytes([s0, s1, s2, s3]) as usize;
    let body_start = usize::from(doff) * 4;
    if frame_type != SASL_FRAME_TYPE || body_start < 8 || size < body_start || size > MAX_SASL_FRAME
    {
        return Err(MgmtError::Protocol(format!(
            "bad SASL frame header {head:?}"
        )));
    }
    let mut rest = vec![0u8; size - 8];
    stream.read_exact(&mut rest).await.map_err(lost)?;
    let body = rest.get(body_start - 8..).unwrap_or_default();
    serde_amqp::from_slice(body)
        .map_err(|e| MgmtError::Protocol(format!("unexpected SASL frame: {e}")))
}

async fn write_frame<S, T>(stream: &mut S, body: &T) -> Result<(), MgmtError>
where
    S: AsyncWrite + Unpin,
    T: serde::Serialize,
{
    let body = serde_amqp::to_vec(body)
        .map_err(|e| MgmtError::Protocol(format!("encoding SASL frame: {e}")))?;
    let size = u32::try_from(body.len() + 8)
        .map_err(|_| MgmtError::Protocol("SASL frame too large".into()))?;
    let mut frame = Vec::with_capacity(body.len() + 8);
    frame.extend_from_slice(&size.to_be_bytes());
    frame.extend_from_slice(&[2, SASL_FRAME_TYPE, 0, 0]);
    frame.extend_from_slice(&body);
    stream.write_all(&frame).await.map_err(lost)?;
    stream.flush().await.map_err(lost)
}
